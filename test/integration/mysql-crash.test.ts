/**
 * kill -9 of the daemon (source.type mysql → NATS JetStream, a private nats-server) in the middle
 * of a 20,000-row transaction and during a stream of single-row transactions. After the restart
 * every change is in the stream and JetStream holds none twice. The position stored in
 * wal_listener.positions never passes a transaction that is not in the stream: checked after the
 * kill, and while the broker is down under a second daemon that had caught up part of the way
 * (sampled, with transactions that publish nothing tempting it to confirm past what is in flight).
 * "Not in the stream" is bounded with the server's SHOW BINLOG EVENTS, not with our reader.
 * Kafka (librdkafka's mock cluster) has no dedup: after a kill -9 there every row arrives, and a
 * redelivered change carries the same id and the same text, so consumers can drop it.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { comparePositions, formatPosition, type MysqlPosition } from '../../src/sources/mysql/position.js';
import { startDaemon, type DaemonProcess } from '../support/daemon.js';
import {
  bigTransaction, binlogEndNow, createItemsTable, createMysqlDatabase, keepWriting, MYSQL_HOST, MYSQL_PORT, MYSQL_USER, nextTransactionOf, query, requireRowBinlog, storedPosition, uniqueServerId, type MysqlTestDatabase,
} from '../support/mysql.js';
import { consumeDistinct, startKafkaMock, type KafkaMock } from '../support/kafka.js';
import { readStream, startNats, streamCount, type NatsServer } from '../support/nats.js';
import { waitFor } from '../support/ports.js';

let db: MysqlTestDatabase;
let other: MysqlTestDatabase;
let nats: NatsServer;
let kafka: KafkaMock;
let nc: NatsConnection;
const daemons: DaemonProcess[] = [];
const serverIds: number[] = [];

before(async () => {
  await requireRowBinlog();
  [db, other, nats, kafka] = await Promise.all([createMysqlDatabase('wl_my_crash'), createMysqlDatabase('wl_my_crash_other'), startNats(), startKafkaMock()]);
  nc = await nats.connect();
  await db.sql('CREATE TABLE noise (id INT AUTO_INCREMENT PRIMARY KEY)');
  await other.sql('CREATE TABLE noise (id INT AUTO_INCREMENT PRIMARY KEY)');
});

after(async () => {
  for (const d of daemons) await d.kill();
  await nc?.close();
  await Promise.all([nats?.stop(), kafka?.stop(), db?.drop(), other?.drop()]);
  for (const id of serverIds) await query('DELETE FROM wal_listener.positions WHERE server_id = ?', [id]).catch(() => undefined);
});

/** A daemon for `table` of the test database, its position in wal_listener.positions under `serverId`. */
async function start(serverId: number, table: string, listener: Record<string, unknown> = {}, publisher: Record<string, unknown> = { type: 'nats', address: nats.url, topic: `wlmy_${table}` }): Promise<DaemonProcess> {
  const daemon = await startDaemon(
    {
      source: { type: 'mysql' },
      mysql: { host: MYSQL_HOST, port: MYSQL_PORT, user: MYSQL_USER, serverId, databases: [db.name] },
      listener: { filter: { tables: { [table]: null } }, refreshConnection: '1s', ...listener },
      publisher: { ackTimeout: '2s', ...publisher },
    },
    { waitForStreaming: false },
  );
  daemons.push(daemon);
  await daemon.waitForLog('binlog streaming', 60_000);
  return daemon;
}

function newServerId(): number {
  const id = uniqueServerId();
  serverIds.push(id);
  return id;
}

const show = (p: MysqlPosition | undefined): string => (p ? formatPosition(p) : 'none');

/** An event's `lsn` ("mariadb-bin.000001:4711") as a position. */
function lsnPosition(lsn: string): MysqlPosition {
  const colon = lsn.lastIndexOf(':');
  return { file: lsn.slice(0, colon), offset: Number(lsn.slice(colon + 1)) };
}

/**
 * A new daemon catches up; once it made progress the broker dies under it, and for a while the
 * stored position is sampled while transactions with nothing to publish (a table outside the
 * filter, a database outside mysql.databases) tempt it to confirm past what is in flight. Then the
 * daemon is killed too and the broker comes back with what it had acknowledged. Returns the samples.
 */
async function brokerDiesUnderDaemon(serverId: number, table: string, progressed: (count: number) => boolean): Promise<MysqlPosition[]> {
  const topic = `wlmy_${table}`;
  const daemon = await start(serverId, table);
  await waitFor('the new daemon making progress', async () => progressed(await streamCount(nc, topic)) || undefined, 60_000, 5);
  await nc.close();
  await nats.kill();
  const samples: MysqlPosition[] = [];
  for (let i = 0; i < 10; i++) {
    await new Promise((r) => setTimeout(r, 500));
    await db.sql('INSERT INTO noise VALUES ()');
    await other.sql('INSERT INTO noise VALUES ()');
    const stored = await storedPosition(serverId);
    assert.ok(stored, 'a position is stored');
    samples.push(stored);
  }
  assert.equal(daemon.child.exitCode, null, `the daemon keeps running while NATS is down: ${daemon.stderr().slice(-1500)}`);
  await daemon.kill();
  await nats.restart();
  nc = await nats.connect();
  return samples;
}

/** No sample passed `bound`, the first transaction not in the stream. */
function neverPassed(samples: MysqlPosition[], bound: MysqlPosition, what: string): void {
  for (const stored of samples) assert.ok(comparePositions(stored, bound) <= 0, `stored position ${show(stored)} passed ${show(bound)}, ${what}`);
}

/**
 * After the longest run of rows 1..k in the stream: where the next transaction of `table` starts
 * (waits until the writer committed it), or undefined when every row written is in the stream.
 */
async function firstMissing(topic: string, table: string, written: () => number): Promise<{ k: number; bound: MysqlPosition | undefined }> {
  const published = await readStream(nc, topic);
  const ids = new Set(published.map((m) => (m.json.data as { id: number }).id));
  let k = 0;
  while (ids.has(k + 1)) k++;
  if (k === 0) throw new Error('nothing in the stream');
  const last = published.find((m) => (m.json.data as { id: number }).id === k)!;
  if (written() <= k) return { k, bound: undefined };
  const bound = await waitFor(`the transaction after row ${k} in the binlog`, () => nextTransactionOf(lsnPosition(String(last.json.lsn)), db.name, table), 10_000);
  return { k, bound };
}

/** The stream holds exactly ids 1..count of `table`, each once, each with its own event id. */
async function assertEveryRowOnce(topic: string, count: number): Promise<void> {
  await waitFor(`all ${count} changes in ${topic}`, async () => (await streamCount(nc, topic)) >= count, 90_000);
  await new Promise((r) => setTimeout(r, 500)); // late duplicates would show now
  const stored = await readStream(nc, topic);
  assert.equal(stored.length, count, 'JetStream holds no duplicate');
  assert.equal(new Set(stored.map((m) => m.msgId)).size, count, 'every change has its own id');
  const rows = stored.map((m) => (m.json.data as { id: number }).id).sort((a, b) => a - b);
  assert.deepEqual(rows, Array.from({ length: count }, (_, i) => i + 1), 'every row, none twice');
}

async function confirmedThrough(serverId: number, end: MysqlPosition): Promise<void> {
  await waitFor(`the stored position reaches ${show(end)}`, async () => {
    const stored = await storedPosition(serverId);
    return stored !== undefined && comparePositions(stored, end) >= 0;
  }, 30_000);
}

test('kill -9 in the middle of a 20,000-row transaction: every change once after the restart; the position never passed the transaction', async () => {
  const table = 'big';
  const topic = `wlmy_${table}`;
  await createItemsTable(db, table);
  const serverId = newServerId();
  // A small window slows publishing down enough to kill the daemon mid-transaction.
  const first = await start(serverId, table, { maxInFlight: 64 });
  await bigTransaction(db, 20_000, { table });
  const end = await binlogEndNow();
  await waitFor('part of the transaction in the stream', async () => ((await streamCount(nc, topic)) >= 1000 ? true : undefined), 60_000, 5);
  await first.kill();
  const published = await readStream(nc, topic);
  assert.ok(published.length < 20_000, `killed mid-transaction (had ${published.length} of 20000)`);
  const lsns = new Set(published.map((m) => String(m.json.lsn)));
  assert.equal(lsns.size, 1, 'one transaction');
  const transaction = lsnPosition([...lsns][0]!);
  neverPassed([(await storedPosition(serverId))!], transaction, 'the unfinished transaction');

  const samples = await brokerDiesUnderDaemon(serverId, table, (count) => count >= published.length + 200);
  const inStream = await streamCount(nc, topic);
  assert.ok(inStream < 20_000, `the broker died mid-transaction (had ${inStream} of 20000)`);
  neverPassed(samples, transaction, 'the unfinished transaction (broker down)');

  const last = await start(serverId, table);
  await assertEveryRowOnce(topic, 20_000);
  await confirmedThrough(serverId, end);
  assert.equal(await last.stop(), 0);
});

test('kill -9 during a stream of single-row transactions: every change once after the restart; the position never passed one not in the stream', async () => {
  const table = 'small';
  const topic = `wlmy_${table}`;
  await createItemsTable(db, table);
  const serverId = newServerId();
  const first = await start(serverId, table, { maxInFlight: 16 });
  const writer = keepWriting(db, table);
  try {
    await waitFor('a part of the stream published', async () => ((await streamCount(nc, topic)) >= 200 ? true : undefined), 60_000, 5);
    await first.kill();
    const killed = await firstMissing(topic, table, writer.written);
    assert.ok(killed.bound, `killed mid-stream (rows 1..${killed.k} published, ${writer.written()} written)`);
    neverPassed([(await storedPosition(serverId))!], killed.bound, 'the first transaction not in the stream');

    const samples = await brokerDiesUnderDaemon(serverId, table, (count) => count >= killed.k + 200);
    const down = await firstMissing(topic, table, writer.written);
    assert.ok(down.bound, `the broker died mid-stream (rows 1..${down.k} published, ${writer.written()} written)`);
    neverPassed(samples, down.bound, 'the first transaction not in the stream (broker down)');
  } finally {
    await writer.stop();
  }
  const total = writer.written();
  const end = await binlogEndNow();
  const last = await start(serverId, table);
  await assertEveryRowOnce(topic, total);
  await confirmedThrough(serverId, end);
  assert.equal(await last.stop(), 0);
});

test('Kafka: kill -9 during single-row transactions; after the restart every change arrives, a redelivered one with the same id and text', async (t) => {
  const table = 'kafka_small';
  await createItemsTable(db, table);
  const serverId = newServerId();
  const publisher = { type: 'kafka', address: kafka.bootstrap, topic: 'wlmyk' };
  const first = await start(serverId, table, { maxInFlight: 16 }, publisher);
  const writer = keepWriting(db, table);
  let second: DaemonProcess;
  try {
    await waitFor('rows written', () => writer.written() >= 300 || undefined, 60_000);
    await waitFor('a stored position past the first rows', async () => {
      const stored = await storedPosition(serverId);
      return stored && (await nextTransactionOf(stored, db.name, table)) !== undefined ? true : undefined;
    }, 30_000);
    await first.kill();
    const atKill = writer.written();
    second = await start(serverId, table, {}, publisher);
    await waitFor('rows written after the restart', () => writer.written() >= atKill + 300 || undefined, 60_000);
  } finally {
    await writer.stop();
  }
  const total = writer.written();
  const records = await consumeDistinct(kafka.bootstrap, [`wlmyk.${db.name}_${table}`], total, 90_000);
  const byId = new Map<string, string>();
  for (const r of records) {
    const seen = byId.get(r.headers.id!);
    assert.ok(seen === undefined || seen === r.value, `a redelivered change carries the same id and text (${r.headers.id})`);
    byId.set(r.headers.id!, r.value);
  }
  const rows = [...byId.values()].map((v) => (JSON.parse(v) as { data: { id: number } }).data.id).sort((a, b) => a - b);
  assert.deepEqual(rows, Array.from({ length: total }, (_, i) => i + 1), 'every row once by id');
  t.diagnostic(`${total} rows, ${records.length - byId.size} records redelivered after the kill`);
  await confirmedThrough(serverId, await binlogEndNow());
  assert.equal(await second.stop(), 0);
});
