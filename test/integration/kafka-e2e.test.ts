/**
 * PostgreSQL → the daemon (publisher.type kafka) → Kafka (librdkafka's mock cluster, 3 brokers) →
 * a kafkajs consumer. The broker list starts with a dead address. Workload: inserts, many updates
 * of the same rows in separate transactions, deletes. Every change must arrive, each row's changes
 * must share one key (`{"id":N}`) and one partition and arrive in commit order, and every message
 * must carry the event id.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertKeyedOrder, CHANGES_PER_USER, createKeyedTables, ORDER_CHANGES, type PublishedEvent, ROWS, runKeyedWorkload } from '../support/workload.js';
import { databaseSection, startDaemon, type DaemonProcess } from '../support/daemon.js';
import { consumeAll, javaPartition, partitionCount, startKafkaMock, type ConsumedRecord, type KafkaMock } from '../support/kafka.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';


/** "X/Y" LSN as a bigint, for ordering. */

describe('Kafka end to end through the daemon', () => {
  let db: TestDatabase;
  let mock: KafkaMock;
  let daemon: DaemonProcess | undefined;

  before(async () => {
    [db, mock] = await Promise.all([createTestDatabase('wlkafka'), startKafkaMock()]);
    await createKeyedTables(db);
  });

  after(async () => {
    await daemon?.kill();
    await Promise.all([db?.drop(), mock?.stop()]);
  });

  it('delivers inserts, updates and deletes keyed by row, in commit order per row, with the event id', async () => {
    daemon = await startDaemon({
      listener: { slotName: db.slotName('kafka'), publication: 'kafka_pub' },
      database: databaseSection(db),
      publisher: { type: 'kafka', address: `127.0.0.1:1,${mock.bootstrap}`, topic: 'wal' },
    });

    await runKeyedWorkload(db);

    const userChanges = ROWS * CHANGES_PER_USER;
    const orderChanges = ORDER_CHANGES;
    const records = await consumeAll(mock.bootstrap, ['wal.public_users', 'wal.public_orders'], userChanges + orderChanges, 60_000);

    // At least once: a redelivered copy carries the same id and is dropped here, as consumers do.
    const unique = new Map<string, ConsumedRecord>();
    for (const record of records) {
      const event = JSON.parse(record.value) as PublishedEvent;
      assert.ok(event.id, 'every event has an id');
      assert.equal(record.headers.id, event.id, 'the Kafka header id is the event id');
      assert.equal(record.headers.lsn, event.lsn);
      assert.equal(record.headers.table, `public.${event.table}`);
      assert.equal(record.headers.action, event.action);
      const row = event.action === 'DELETE' ? event.dataOld.id : event.data.id;
      assert.equal(record.key, JSON.stringify({ id: row }), `key of ${event.action} ${event.table} ${String(row)}`);
      if (!unique.has(event.id)) unique.set(event.id, record);
    }
    assert.equal(unique.size, userChanges + orderChanges, 'every change arrives');

    const byKey = new Map<string, ConsumedRecord[]>();
    for (const record of unique.values()) {
      const k = `${record.topic} ${record.key}`;
      byKey.set(k, [...(byKey.get(k) ?? []), record]);
    }
    assert.equal(byKey.size, ROWS + 2);
    const partitions = new Map([
      ['wal.public_users', await partitionCount(mock.bootstrap, 'wal.public_users')],
      ['wal.public_orders', await partitionCount(mock.bootstrap, 'wal.public_orders')],
    ]);
    for (const [k, list] of byKey) {
      const partitionsUsed = new Set(list.map((r) => r.partition));
      assert.equal(partitionsUsed.size, 1, `${k}: one partition`);
      assert.equal(list[0]!.partition, javaPartition(list[0]!.key, partitions.get(list[0]!.topic)!), `${k}: the Java client's partition for the key`);
      const events = list.sort((a, b) => a.offset - b.offset).map((r) => JSON.parse(r.value) as PublishedEvent);
      assertKeyedOrder(k, events);
    }

    assert.ok(!daemon.stderr().includes('switched default partitioner'), 'the partitioner is chosen explicitly: no kafkajs warning');
    const code = await daemon.stop();
    daemon = undefined;
    assert.equal(code, 0);
  });
});
