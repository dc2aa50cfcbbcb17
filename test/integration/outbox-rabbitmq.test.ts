/**
 * Outbox → RabbitMQ (the shared broker; issue 13): goharvest's outbox table, logical messages and
 * the wal-listener/outbox stasher, 1,000 records each (test/support/outbox-workload.ts). The topic
 * column is the routing key on the `publisher.topic` exchange, key and headers are AMQP headers,
 * the value the body byte for byte, messageId the stable id. The config is README's outbox-only
 * one (a filter naming just the outbox's inserts).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { databaseSection, startDaemon, type DaemonProcess } from '../support/daemon.js';
import { assertOutboxDelivery, committed, createOutboxTable, WAYS, writeOutbox, type WrittenRecord } from '../support/outbox-workload.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import { cleanup, consumeMessages, declareBoundQueue, RABBIT_URL, uniqueName } from '../support/rabbitmq.js';

const TOPICS = ['orders.created', 'payments.settled', 'users.renamed'] as const;

let db: TestDatabase;
let daemon: DaemonProcess | undefined;
const exchange = uniqueName('wl_obx_ex');
const queue = uniqueName('wl_obx_q');

before(async () => {
  db = await createTestDatabase('wl_obx_rabbit');
  await createOutboxTable(db);
  await declareBoundQueue(exchange, queue, '#');
});

after(async () => {
  await daemon?.kill();
  await cleanup({ queues: [queue], exchanges: [exchange] });
  await db?.drop();
});

test('every committed outbox record arrives once per messageId with routing key, key header, body bytes and headers, in key order', async () => {
  daemon = await startDaemon({
    listener: { slotName: db.slotName('obx'), publication: 'wl_obx_rabbit', outbox: [{ table: 'public.outbox' }], filter: { tables: { 'public.outbox': ['insert'] } } },
    database: databaseSection(db),
    publisher: { type: 'rabbitmq', address: RABBIT_URL, topic: exchange },
  });
  // README's outbox-only setup: the publication carries the outbox's inserts and nothing else.
  const publication = await db.sql<{ tables: string; publish: string }>(
    "SELECT (SELECT string_agg(tablename, ',') FROM pg_publication_tables WHERE pubname = p.pubname) AS tables, concat_ws(',', CASE WHEN pubinsert THEN 'insert' END, CASE WHEN pubupdate THEN 'update' END, CASE WHEN pubdelete THEN 'delete' END) AS publish FROM pg_publication p WHERE pubname = 'wl_obx_rabbit'",
  );
  assert.deepEqual(publication.rows[0], { tables: 'outbox', publish: 'insert' });
  const written: WrittenRecord[] = [];
  for (const way of WAYS) written.push(...(await writeOutbox(db, way, TOPICS)));
  const expected = committed(written);
  const messages = await consumeMessages(queue, expected, 60_000, 500);
  assert.equal(messages.length, expected, 'each record once');
  assertOutboxDelivery(
    'RabbitMQ',
    written,
    messages.map((m) => {
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries((m.properties.headers ?? {}) as Record<string, unknown>)) headers[name] = Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
      const { key = '', ...rest } = headers;
      assert.equal(m.fields.exchange, exchange);
      return { id: String(m.properties.messageId), topic: m.fields.routingKey, key, payload: m.content, headers: rest };
    }),
  );
  assert.equal(await daemon.stop(), 0);
  daemon = undefined;
});
