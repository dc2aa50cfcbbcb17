/**
 * Kafka cutover from ihippik/wal-listener (issue 11 #5): with `eventFormat: compat` and
 * `messageKeyFrom`, the key is the column's value JSON-encoded as Go encodes it, and the message
 * goes to the partition sarama's hash partitioner (FNV-1a) picks for that key, so a row's
 * partition does not move at the switch. DELETE carries the table name as key, as in Go.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { saramaPartition } from '../../src/publishers/sarama-partitioner.js';
import { databaseSection, startDaemon, type DaemonProcess } from '../support/daemon.js';
import { consumeAll, partitionCount, startKafkaMock, type KafkaMock } from '../support/kafka.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

let db: TestDatabase;
let mock: KafkaMock;
let daemon: DaemonProcess | undefined;

before(async () => {
  [db, mock] = await Promise.all([createTestDatabase('wl_kcompat'), startKafkaMock()]);
  await db.sql('CREATE TABLE accounts (id int PRIMARY KEY, email text, n int)');
});

after(async () => {
  await daemon?.kill();
  await Promise.all([db?.drop(), mock?.stop()]);
});

test('compat + messageKeyFrom: Go-encoded keys on sarama partitions', async () => {
  daemon = await startDaemon({
    listener: { slotName: db.slotName('kc') },
    database: databaseSection(db),
    publisher: { type: 'kafka', address: mock.bootstrap, topic: 'compat', eventFormat: 'compat', messageKeyFrom: 'email' },
  });
  const rows = 40;
  await db.sql(`INSERT INTO accounts SELECT g, 'user' || g || '@example.com', g FROM generate_series(1, ${rows}) g`);
  await db.sql('UPDATE accounts SET n = n + 1');
  await db.sql('DELETE FROM accounts WHERE id <= 5');
  const records = await consumeAll(mock.bootstrap, ['compat.public_accounts'], rows * 2 + 5);
  assert.equal(records.length, rows * 2 + 5);
  const partitions = await partitionCount(mock.bootstrap, 'compat.public_accounts');
  assert.ok(partitions > 1, 'a topic with several partitions');
  for (const record of records) {
    const event = JSON.parse(record.value) as { action: string; data: { email?: string } };
    const expectedKey = event.action === 'DELETE' ? 'accounts' : JSON.stringify(event.data.email);
    assert.equal(record.key, expectedKey, `${event.action} key`);
    assert.equal(record.partition, saramaPartition(Buffer.from(record.key), partitions), `partition of ${record.key}`);
  }
  assert.equal(await daemon.stop(), 0);
});
