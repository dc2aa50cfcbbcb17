/**
 * The binlog position stores and the MySQL dead-letter store. File: a reader polling the file while
 * positions are written back to back only ever sees a whole, newer-or-equal position (write, fsync,
 * rename: never a half-written file); unreadable content and unwritable places are the
 * WAL_MYSQL_POSITION_STORE error. Table: one row per mysql.serverId. PositionWriter: in order, newest wins.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { WalListenerError } from '../../src/errors.js';
import type { OutboundMessage } from '../../src/pipeline/message.js';
import { MysqlDeadLetterStore } from '../../src/sources/mysql/dead-letter-store.js';
import { comparePositions, type MysqlPosition } from '../../src/sources/mysql/position.js';
import { FilePositionStore, PositionWriter, TablePositionStore, type PositionStore } from '../../src/sources/mysql/position-store.js';
import { forgetPosition, mysqlSourceConfig, query, requireRowBinlog } from '../support/mysql.js';

let dir: string;
before(async () => {
  await requireRowBinlog();
  dir = mkdtempSync(join(tmpdir(), 'wl-mysql-store-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const at = (n: number): MysqlPosition => ({ file: `mariadb-bin.${String(1 + Math.floor(n / 1000)).padStart(6, '0')}`, offset: 4 + (n % 1000) * 100 });

test('file store: a concurrent reader only ever sees whole positions, never going back; no temporary file is left', async () => {
  const path = join(dir, 'pos.json');
  const store = new FilePositionStore(path, 7);
  await store.save(at(0));
  let stop = false;
  let reads = 0;
  let previous = at(0);
  const reader = (async () => {
    while (!stop) {
      const text = readFileSync(path, 'utf8');
      const parsed = JSON.parse(text) as MysqlPosition; // throws on a half-written file
      assert.ok(comparePositions(parsed, previous) >= 0, `went back from ${JSON.stringify(previous)} to ${text}`);
      previous = parsed;
      reads++;
      await new Promise((r) => setImmediate(r));
    }
  })();
  for (let n = 1; n <= 400; n++) await store.save(at(n));
  stop = true;
  await reader;
  assert.ok(reads > 50, `the reader read while writes went on (${reads} reads)`);
  assert.deepEqual(await store.load(), at(400));
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes('pos.json')), ['pos.json']);
});

test('file store: no file is no position; garbage or an unwritable directory is WAL_MYSQL_POSITION_STORE naming the file', async () => {
  const path = join(dir, 'none.json');
  const store = new FilePositionStore(path, 7);
  assert.equal(await store.load(), undefined);
  writeFileSync(path, '{"file": "mariadb-bin.000001", "offset": ');
  await assert.rejects(store.load(), (err: unknown) => err instanceof WalListenerError && err.code === 'WAL_MYSQL_POSITION_STORE' && err.fatal && err.message.includes(path));
  writeFileSync(path, '{"file": "no-number", "offset": 120}');
  await assert.rejects(store.load(), /does not hold a binlog position/);
  // A directory that is a regular file: unwritable for root too (root ignores permissions).
  const blocked = new FilePositionStore(join(path, 'pos.json'), 7);
  await assert.rejects(blocked.save(at(1)), (err: unknown) => err instanceof WalListenerError && err.code === 'WAL_MYSQL_POSITION_STORE' && err.message.includes('cannot write'));
});

test('PositionWriter: writes one at a time, never an older position after a newer one', async () => {
  // A slow store, so that positions queue up behind a write (the real stores are too quick to show it).
  const saved: MysqlPosition[] = [];
  let inFlight = 0;
  const slow: PositionStore = {
    description: 'test store',
    load: () => Promise.resolve(undefined),
    close: () => Promise.resolve(),
    save: async (position) => {
      inFlight++;
      assert.equal(inFlight, 1, 'one write at a time');
      await new Promise((r) => setTimeout(r, 10));
      saved.push(position);
      inFlight--;
    },
  };
  const writer = new PositionWriter(slow, (err) => assert.fail(String(err)), at(0));
  writer.set(at(5));
  writer.set(at(3)); // older than one waiting: dropped
  writer.set(at(7));
  writer.set(at(6));
  writer.set(at(0)); // the start: nothing to write
  await writer.flush();
  writer.set(at(7)); // equal to one written: nothing to write
  writer.set(at(1500));
  await writer.flush();
  assert.deepEqual(saved, [at(5), at(7), at(1500)]);
  assert.deepEqual(writer.durable, at(1500));
});

test('table store: wal_listener.positions keeps one row per mysql.serverId', async () => {
  const a = mysqlSourceConfig({ databases: ['x'] });
  const b = mysqlSourceConfig({ databases: ['x'] });
  const storeA = new TablePositionStore(a.mysql!);
  const storeB = new TablePositionStore(b.mysql!);
  try {
    assert.equal(await storeA.load(), undefined);
    await storeA.save(at(1));
    await storeB.save(at(2));
    await storeA.save(at(1001));
    assert.deepEqual(await storeA.load(), at(1001));
    assert.deepEqual(await storeB.load(), at(2));
  } finally {
    await storeA.close();
    await storeB.close();
    await forgetPosition(a);
    await forgetPosition(b);
  }
});

test('dead letters in wal_listener.dead_letters: stored whole and in order, listed, removed', async () => {
  const config = mysqlSourceConfig({ databases: ['x'] });
  const store = new MysqlDeadLetterStore(config.mysql!);
  const tag = `dl-${config.mysql!.serverId}`;
  const message = (n: number, payload: string | Buffer, routed: boolean): OutboundMessage => ({
    id: `${tag}-${n}`, subject: `wl.shop_users_${n}`, key: `{"id":${n}}`, payload, lsn: `mariadb-bin.000001:${100 * n}`, schema: 'shop', table: 'users',
    action: routed ? 'MESSAGE' : 'INSERT', headers: routed ? { h: '😀' } : null, properties: routed ? { contentType: 'application/json' } : null, exchange: routed ? 'ex' : null,
  });
  const letters = [
    { message: message(1, '{"a":"😀"}', false), broker: 'nats', reason: 'too large' },
    { message: message(2, Buffer.from([0, 255, 1]), true), broker: 'kafka', reason: 'invalid' },
  ];
  try {
    // Ids that cross a power of ten (…9, …10) show an order by text instead of by number.
    // The first store creates the table: one letter to make it, removed at once.
    await store.store([{ message: message(0, '{}', false), broker: 'nats', reason: 'creates the table' }]);
    await store.remove((await store.list()).filter((l) => l.message.id === `${tag}-0`).map((l) => l.storeId));
    const [row] = await query<{ next: number | null }[]>("SELECT AUTO_INCREMENT AS next FROM information_schema.tables WHERE table_schema = 'wal_listener' AND table_name = 'dead_letters'");
    await query(`ALTER TABLE wal_listener.dead_letters AUTO_INCREMENT = ${10 ** String(row?.next ?? 1).length - 1}`);
    await store.store(letters);
    const mine = (await store.list()).filter((l) => l.message.id.startsWith(tag));
    assert.deepEqual(mine.map(({ message: m, broker, reason }) => ({ message: m, broker, reason })), letters);
    assert.ok(Number(mine[1]!.storeId) > Number(mine[0]!.storeId), 'in the order given');
    assert.ok(mine[0]!.storedAt instanceof Date && Math.abs(mine[0]!.storedAt.getTime() - Date.now()) < 60_000);
    assert.deepEqual((await store.list({ ids: [mine[1]!.storeId] })).map((l) => l.message.id), [`${tag}-2`]);
    await store.remove(mine.map((l) => l.storeId));
    assert.equal((await store.list()).filter((l) => l.message.id.startsWith(tag)).length, 0);
  } finally {
    await store.close();
  }
});
