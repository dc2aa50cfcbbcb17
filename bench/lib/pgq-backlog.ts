/** The PgQ benchmarks' shared parts: a backlog of mikkoo-style events, and the rounds with their medians. */
import type { TestDatabase } from '../../test/support/postgres.js';
import { waitFor } from '../../test/support/ports.js';
import { median } from './stats.js';

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

/** One run's figures: events/s, CPU-seconds per 100k events, seconds. */
export interface PgqRun {
  eps: number;
  cpuPer100k: number;
  seconds: number;
}

/**
 * Runs `oneRun` `runs` times, printing each run (`describe` adds run-specific words), then the
 * medians under `title`.
 */
export async function runRounds<R extends PgqRun>(runs: number, events: number, oneRun: (run: number) => Promise<R>, describe: (r: R) => string, title: string): Promise<void> {
  const results: R[] = [];
  for (let run = 1; run <= runs; run++) {
    const r = await oneRun(run);
    results.push(r);
    console.log(`run ${run}: ${events} events in ${r.seconds.toFixed(2)} s = ${Math.round(r.eps)} events/s, ${describe(r)}`);
  }
  console.log(`${title}: median ${Math.round(median(results.map((r) => r.eps))!)} events/s, ${median(results.map((r) => r.cpuPer100k))!.toFixed(2)} CPU-s per 100k events`);
}
