/**
 * Outbox → Kafka (librdkafka's mock cluster; issue 13): goharvest's outbox table, logical messages
 * and the wal-listener/outbox stasher, 1,000 records each (test/support/outbox-workload.ts). The
 * topic column is the Kafka topic, the key the record key (one partition per key), the value the
 * record value byte for byte (NULL: a tombstone), the header arrays Kafka headers; header `id` is
 * the stable id.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { databaseSection, startDaemon, type DaemonProcess } from '../support/daemon.js';
import { consumeAll, startKafkaMock, type KafkaMock } from '../support/kafka.js';
import { assertOutboxDelivery, committed, createOutboxTable, WAYS, writeOutbox, type WrittenRecord } from '../support/outbox-workload.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

const TOPICS = ['wl_obx_orders', 'wl_obx_payments', 'wl_obx_users'] as const;

let db: TestDatabase;
let mock: KafkaMock;
let daemon: DaemonProcess | undefined;

before(async () => {
  [db, mock] = await Promise.all([createTestDatabase('wl_obx_kafka'), startKafkaMock()]);
  await createOutboxTable(db);
});

after(async () => {
  await daemon?.kill();
  await Promise.all([db?.drop(), mock?.stop()]);
});

test('every committed outbox record arrives once per id header with topic, key, value bytes, tombstones and headers, in key order', async () => {
  daemon = await startDaemon({
    listener: { slotName: db.slotName('obx'), publication: 'wl_obx_kafka', outbox: [{ table: 'outbox' }] },
    database: databaseSection(db),
    publisher: { type: 'kafka', address: mock.bootstrap, topic: 'wl_obx' },
  });
  const written: WrittenRecord[] = [];
  for (const way of WAYS) written.push(...(await writeOutbox(db, way, TOPICS)));
  const expected = committed(written);
  const records = await consumeAll(mock.bootstrap, TOPICS, expected, 60_000);
  // Offsets order each partition; one key lives in one partition of one topic.
  records.sort((a, b) => (a.topic === b.topic ? a.partition - b.partition || a.offset - b.offset : a.topic < b.topic ? -1 : 1));
  const byKey = new Map<string, Set<number>>();
  for (const r of records) byKey.set(r.key, (byKey.get(r.key) ?? new Set()).add(r.partition));
  for (const [key, partitions] of byKey) assert.equal(partitions.size, 1, `key ${key}: one partition`);
  assertOutboxDelivery(
    'Kafka',
    written,
    records.map((r) => ({ id: r.headers.id ?? '', topic: r.topic, key: r.key, payload: Buffer.from(r.value, 'utf8'), headers: r.headers, tombstone: r.tombstone })),
    ['id', 'lsn', 'table', 'action'],
  );
  assert.equal(await daemon.stop(), 0);
  daemon = undefined;
});
