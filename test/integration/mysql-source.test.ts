/**
 * The MySQL source against the machine's MariaDB, with a recording sink: transactions over several
 * tables, keys, positions and ids, database filtering and the daemon's own writes, TRUNCATE and
 * DDL, pausing on a full window, and confirmations written only as told and resumed from.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pino from 'pino';
import type { Config } from '../../src/config/schema.js';
import { comparePositions, formatPosition, type MysqlPosition } from '../../src/sources/mysql/position.js';
import { createMysqlSource, type MysqlSourceObserver } from '../../src/sources/mysql/source.js';
import type { Source, SourceSession } from '../../src/sources/source.js';
import { binlogEndNow, createMysqlDatabase, forgetPosition, mysqlSourceConfig, query, requireRowBinlog, transactionOf, type MysqlTestDatabase } from '../support/mysql.js';
import { waitFor } from '../support/ports.js';
import { json, RecordingSink } from '../support/recording-sink.js';

const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

let db: MysqlTestDatabase;
let other: MysqlTestDatabase;
const cleanup: (() => Promise<void>)[] = [];

before(async () => {
  await requireRowBinlog();
  db = await createMysqlDatabase('wl_src');
  other = await createMysqlDatabase('wl_src_other');
  await db.sql(`
    CREATE TABLE users (id INT PRIMARY KEY, email VARCHAR(100) NOT NULL, n INT NOT NULL DEFAULT 0);
    CREATE TABLE orders (k1 INT, k2 VARCHAR(10), note TEXT, PRIMARY KEY (k2, k1));
    CREATE TABLE nokey (a INT, b VARCHAR(10));
    CREATE TABLE bulk (id INT PRIMARY KEY, v INT);`);
  await other.sql('CREATE TABLE t (id INT PRIMARY KEY)');
});

after(async () => {
  for (const step of cleanup.reverse()) await step().catch(() => undefined);
  await db?.drop();
  await other?.drop();
});

async function openSource(config: Config, sink: RecordingSink<MysqlPosition>, observer: MysqlSourceObserver = {}): Promise<{ source: Source<MysqlPosition>; session: SourceSession<MysqlPosition> }> {
  const source = createMysqlSource(config, log, observer, { lagIntervalMs: 100 });
  const session = await source.open(sink, new AbortController().signal);
  cleanup.push(async () => {
    await session.close();
    await source.close();
    await forgetPosition(config);
  });
  return { source, session };
}

async function storedPosition(config: Config): Promise<string | undefined> {
  const rows = await query<{ binlog_file: string; binlog_offset: string }[]>('SELECT binlog_file, binlog_offset FROM wal_listener.positions WHERE server_id = ?', [config.mysql!.serverId]);
  return rows[0] ? `${rows[0].binlog_file}:${rows[0].binlog_offset}` : undefined;
}

test('transactions over several tables: one begin/commit each, changes in order, keys, positions, ids and GTID numbers', async () => {
  const config = mysqlSourceConfig({ databases: [db.name] });
  const sink = new RecordingSink<MysqlPosition>();
  await openSource(config, sink);
  const c = await db.connect();
  const gtids: string[] = [];
  const commitWindows: [number, number][] = [];
  try {
    const commit = async (statements: string): Promise<void> => {
      const started = Math.floor(Date.now() / 1000);
      await c.query(statements);
      commitWindows.push([started, Math.ceil(Date.now() / 1000)]);
      const [[row]] = (await c.query('SELECT @@last_gtid AS gtid')) as unknown as [{ gtid: string }[]];
      gtids.push(row!.gtid);
    };
    await commit("BEGIN; INSERT INTO users VALUES (1, 'a@x', 0), (2, 'b@x', 0); INSERT INTO orders VALUES (7, 'k', 'first'); INSERT INTO nokey VALUES (1, 'x'); COMMIT");
    await commit("BEGIN; UPDATE users SET n = n + 1; UPDATE orders SET note = 'second' WHERE k1 = 7; DELETE FROM nokey; COMMIT");
    await commit('DELETE FROM users WHERE id = 1');
  } finally {
    await c.end();
  }
  await sink.until('three transactions', () => sink.committed.length === 3);
  const [first, second, third] = sink.committed;
  assert.deepEqual(first!.changes.map((ch) => `${ch.action} ${ch.table!.table}`), ['INSERT users', 'INSERT users', 'INSERT orders', 'INSERT nokey']);
  assert.deepEqual(second!.changes.map((ch) => `${ch.action} ${ch.table!.table}`), ['UPDATE users', 'UPDATE users', 'UPDATE orders', 'DELETE nokey']);
  assert.deepEqual(third!.changes.map((ch) => `${ch.action} ${ch.table!.table}`), ['DELETE users']);

  const update = second!.changes[0]!;
  assert.deepEqual(json(update.table!, update.row!), { id: '1', email: '"a@x"', n: '1' });
  assert.deepEqual(json(update.table!, update.old!), { id: '1', email: '"a@x"', n: '0' });
  const deleted = third!.changes[0]!;
  assert.equal(deleted.row, null);
  assert.deepEqual(json(deleted.table!, deleted.old!), { id: '1', email: '"a@x"', n: '1' });

  const orders = first!.changes[2]!.table!.descriptor;
  assert.deepEqual(orders.keyColumns, [1, 0], 'primary key (k2, k1), in key order');
  assert.deepEqual(orders.columns.map((col) => [col.name, col.inIdentity]), [['k1', true], ['k2', true], ['note', false]]);
  assert.deepEqual(first!.changes[3]!.table!.descriptor.keyColumns, [], 'a table without a primary key');
  assert.equal(new Set(sink.tables.map((t) => t.table)).size, sink.tables.length, 'each table described once');

  const [files] = [await query<{ Log_name: string }[]>('SHOW BINARY LOGS')];
  const names = new Set(files.map((f) => f.Log_name));
  sink.committed.forEach((txn, i) => {
    const [file, offset] = txn.info.position.split(':');
    assert.ok(names.has(file!) && Number(offset) > 4, `position ${txn.info.position} is file:offset of this server's binlog`);
    assert.equal(String(txn.info.xid), gtids[i]!.split('-')[2], 'xid is the GTID sequence number');
    const seconds = Date.parse(txn.info.commitTime) / 1000;
    assert.match(txn.info.commitTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000000Z$/);
    assert.ok(seconds >= commitWindows[i]![0] && seconds <= commitWindows[i]![1], `commit time ${txn.info.commitTime} is when it committed`);
    assert.equal(formatPosition(txn.end as MysqlPosition).split(':')[0], file);
    assert.ok(comparePositions(txn.end as MysqlPosition, { file: file!, offset: Number(offset) }) > 0, 'the commit position is after the start');
  });
  for (let i = 1; i < 3; i++) assert.ok(comparePositions(sink.committed[i]!.end as MysqlPosition, sink.committed[i - 1]!.end as MysqlPosition) > 0);
  assert.equal(new Set(sink.committed.map((t) => t.info.idPrefix)).size, 3, 'event id prefixes differ per transaction');
});

test('mysql.databases limits what is read; the daemon\'s own writes are neither published nor confirmed as idle', async () => {
  const config = mysqlSourceConfig({ databases: [db.name] });
  const sink = new RecordingSink<MysqlPosition>();
  await openSource(config, sink);
  await query('CREATE DATABASE IF NOT EXISTS wal_listener');
  await query(`CREATE TABLE IF NOT EXISTS wal_listener.test_own_${config.mysql!.serverId} (id INT PRIMARY KEY)`);
  cleanup.push(async () => {
    await query(`DROP TABLE IF EXISTS wal_listener.test_own_${config.mysql!.serverId}`);
  });
  // Other tests write to the same server meanwhile, and their transactions are idle positions
  // too: the positions that matter are found in the server's binlog, not counted.
  const start = await binlogEndNow();
  await other.sql('INSERT INTO t VALUES (1)');
  const otherTxn = await waitFor('the other database\'s transaction in the binlog', () => transactionOf(start, other.name, 't'), 10_000);
  await sink.until('an idle position at the end of the other database\'s transaction', () => sink.idles.some((p) => formatPosition(p) === `${otherTxn.file}:${otherTxn.end}`));
  await query(`INSERT INTO wal_listener.test_own_${config.mysql!.serverId} VALUES (1)`);
  await db.sql("INSERT INTO users VALUES (10, 'z@x', 0)");
  await sink.until('the users insert', () => sink.changes.some((ch) => ch.table?.table === 'users'));
  const own = await transactionOf(start, 'wal_listener', `test_own_${config.mysql!.serverId}`);
  assert.ok(own, 'the daemon\'s own write is in the binlog');
  assert.ok(!sink.idles.some((p) => formatPosition(p) === `${own.file}:${own.end}`), 'no idle position for the daemon\'s own write');
  assert.deepEqual(sink.changes.map((ch) => `${ch.table!.schema}.${ch.table!.table}`), [`${db.name}.users`]);
});

test('TRUNCATE is a truncate of the table; other DDL is skipped and the table is described again', async () => {
  const config = mysqlSourceConfig({ databases: [db.name] });
  const sink = new RecordingSink<MysqlPosition>();
  await openSource(config, sink);
  await db.sql("INSERT INTO bulk VALUES (1, 1); TRUNCATE TABLE bulk; ALTER TABLE bulk ADD COLUMN extra VARCHAR(10) DEFAULT 'new'; INSERT INTO bulk (id, v) VALUES (2, 2)");
  await sink.until('insert, truncate, insert', () => sink.changes.length === 3);
  assert.deepEqual(sink.changes.map((ch) => ch.action), ['INSERT', 'TRUNCATE', 'INSERT']);
  assert.equal(sink.committed[1]!.changes.length, 1, 'TRUNCATE is a transaction of its own');
  const last = sink.changes[2]!;
  assert.deepEqual(json(last.table!, last.row!), { id: '2', v: '2', extra: '"new"' });
  assert.equal(sink.tables.filter((t) => t.table === 'bulk').length, 3, 'described at the first insert, the truncate and after the ALTER');

  // CREATE TABLE … SELECT writes its rows in the DDL's own group; MyISAM (non-transactional) ends with a COMMIT query.
  await db.sql('CREATE TABLE copy ENGINE=InnoDB AS SELECT id, v FROM bulk; CREATE TABLE plain (id INT PRIMARY KEY) ENGINE=MyISAM; INSERT INTO plain VALUES (5), (6)');
  await sink.until('the copied row and the MyISAM rows', () => sink.changes.length === 6);
  assert.deepEqual(sink.changes.slice(3).map((ch) => `${ch.action} ${ch.table!.table} ${json(ch.table!, ch.row!).id}`), ['INSERT copy 2', 'INSERT plain 5', 'INSERT plain 6']);
});

test('a full window pauses the binlog until the sink has room; nothing is lost or reordered', async () => {
  const config = mysqlSourceConfig({ databases: [db.name] });
  const sink = new RecordingSink<MysqlPosition>(100);
  await openSource(config, sink);
  const rows = 5000;
  await db.sql(`INSERT INTO bulk (id, v) SELECT seq + 1000, seq FROM seq_1_to_${rows}`);
  const handedOver = (): number => sink.transactions.reduce((n, t) => n + t.changes.length, 0);
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  const deadline = Date.now() + 30_000;
  let pauses = 0;
  while (handedOver() < rows) {
    assert.ok(Date.now() < deadline, `only ${handedOver()} of ${rows} rows handed over`);
    if (!sink.full) {
      await sleep(5);
      continue;
    }
    // While full, the source must not go on reading: the count stays where it is.
    const seen = handedOver();
    await sleep(50);
    assert.equal(handedOver(), seen, 'no change handed over while the window stayed full');
    pauses++;
    sink.drain();
  }
  assert.ok(pauses >= rows / 100 - 1, `the window filled again and again (${pauses} times)`);
  sink.drain();
  await sink.until('the commit', () => sink.committed.length === 1);
  assert.equal(sink.changes.filter((ch) => ch.whileFull).length, 0, 'not one change handed over past a full window');
  assert.deepEqual(sink.changes.map((ch) => Number(json(ch.table!, ch.row!).id)), Array.from({ length: rows }, (_, i) => i + 1001));
});

test('positions are stored only when confirmed, never backwards, and a new session resumes from the confirmed one', async () => {
  const config = mysqlSourceConfig({ databases: [db.name] });
  const sink = new RecordingSink<MysqlPosition>();
  const { source, session } = await openSource(config, sink);
  const initial = await storedPosition(config);
  assert.ok(initial, 'the first start stores the end of the binlog at once');
  await db.sql("INSERT INTO users VALUES (20, 'p@x', 0)");
  await db.sql("INSERT INTO users VALUES (21, 'q@x', 0)");
  await sink.until('two transactions', () => sink.committed.length === 2);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await storedPosition(config), initial, 'nothing confirmed, nothing stored');
  const [first, second] = sink.committed.map((t) => t.end as MysqlPosition);
  session.confirm(second!);
  session.confirm(first!);
  await session.close();
  assert.equal(await storedPosition(config), formatPosition(second!), 'the newer position stays');

  // Back to the first: a restart replays what follows it (the second transaction), and only that.
  await query('UPDATE wal_listener.positions SET binlog_file = ?, binlog_offset = ? WHERE server_id = ?', [first!.file, first!.offset, config.mysql!.serverId]);
  await source.close();
  const again = new RecordingSink<MysqlPosition>();
  await openSource(config, again);
  await db.sql("INSERT INTO users VALUES (22, 'r@x', 0)");
  await again.until('the replayed and the new transaction', () => again.committed.length === 2);
  assert.deepEqual(again.changes.map((ch) => json(ch.table!, ch.row!).id), ['21', '22']);
  assert.equal(again.committed[0]!.info.idPrefix, sink.committed[1]!.info.idPrefix, 'a replayed transaction has the same event ids');
});

test('lag is the binlog bytes between the server\'s end and the confirmed position', async () => {
  const config = mysqlSourceConfig({ databases: [db.name] });
  const sink = new RecordingSink<MysqlPosition>();
  const lags: number[] = [];
  const { session } = await openSource(config, sink, { lag: (bytes) => lags.push(bytes) });
  await db.sql(`INSERT INTO bulk (id, v) SELECT seq + 100000, seq FROM seq_1_to_200`);
  await sink.until('the insert', () => sink.committed.length === 1);
  const [end] = await query<{ File: string; Position: number }[]>('SHOW MASTER STATUS');
  const start = await storedPosition(config);
  const behind = Number(end!.Position) - Number(start!.split(':')[1]);
  await waitFor('a lag report of the unconfirmed transaction', () => lags.some((l) => l >= behind));
  session.confirm(sink.committed[0]!.end as MysqlPosition);
  const confirmedEnd = (sink.committed[0]!.end as MysqlPosition).offset;
  const reports = lags.length;
  // Other tests may write to the shared server meanwhile: the binlog's end only grows, so a report
  // made after the confirmation is at most the end now minus the confirmed position.
  await waitFor('a lag report after the confirmation', async () => {
    if (lags.length <= reports + 1) return false;
    const [now] = await query<{ File: string; Position: number }[]>('SHOW MASTER STATUS');
    return now!.File === end!.File && lags[lags.length - 1]! <= Number(now!.Position) - confirmedEnd;
  });
});
