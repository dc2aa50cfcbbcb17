/** A backlog of mikkoo-style PgQ events for the PgQ benchmarks. */
import type { TestDatabase } from '../../test/support/postgres.js';
import { waitFor } from '../../test/support/ports.js';

/**
 * Writes `events` events into `queue` (ev_type order.created, a ~200-byte JSON body, exchange
 * `exchange`, content type, properties and headers JSON) in transactions of 500, then waits until
 * the ticker has ticked all of them into batches.
 */
export async function writeBacklog(db: TestDatabase, queue: string, exchange: string, events: number): Promise<void> {
  const client = await db.client();
  try {
    for (let done = 0; done < events; done += 500) {
      await client.query(
        `SELECT pgq.insert_event($1, 'order.created', json_build_object('id', g, 'customer', 'c-' || (g % 977), 'total', (g % 10000) / 100.0, 'items', json_build_array('sku-' || (g % 31), 'sku-' || (g % 17)), 'note', repeat('x', 80))::text,
                $2, 'application/json', '{"type": "order"}', '{"tenant": "acme"}')
           FROM generate_series($3::int, $4::int) g`,
        [queue, exchange, done, Math.min(done + 500, events) - 1],
      );
    }
  } finally {
    await client.end();
  }
  await waitFor('the ticker to tick the whole backlog', async () => (await db.sql('SELECT ev_new FROM pgq.get_queue_info($1)', [queue])).rows[0]?.ev_new === '0', 60_000);
}
