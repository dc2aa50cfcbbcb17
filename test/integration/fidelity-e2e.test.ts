/**
 * Data fidelity through the whole daemon (stdout publisher): unchanged TOAST with default and FULL
 * identity, old keys and rows, ALTER TABLE mid-stream, TRUNCATE of two tables in one statement.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { databaseSection, startDaemon, type DaemonProcess } from '../support/daemon.js';
import { waitFor } from '../support/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import type { PublishedEvent } from '../support/workload.js';

let db: TestDatabase;
let daemon: DaemonProcess;
type Event = PublishedEvent & { unchangedToast?: string[] };

/** 12,800 characters of md5 hex: does not compress below the TOAST threshold, so it is stored out of line. */
const BIG = "(SELECT string_agg(md5(i::text), '') FROM generate_series(1, 400) i)";

before(async () => {
  db = await createTestDatabase('wl_fidelity');
  await db.sql(`
    CREATE TABLE docs (id int PRIMARY KEY, title text, body text);
    CREATE TABLE docs_full (id int PRIMARY KEY, title text, body text);
    ALTER TABLE docs_full REPLICA IDENTITY FULL;
    CREATE TABLE by_index (a int NOT NULL, b int NOT NULL, v text);
    CREATE UNIQUE INDEX by_index_ab ON by_index (a, b);
    ALTER TABLE by_index REPLICA IDENTITY USING INDEX by_index_ab;
    CREATE TABLE evolving (id int PRIMARY KEY, a int);
    CREATE TABLE t1 (id int PRIMARY KEY);
    CREATE TABLE t2 (id int PRIMARY KEY);
  `);
  daemon = await startDaemon({ listener: { slotName: db.slotName() }, database: databaseSection(db), publisher: { type: 'stdout', topic: 'wl' } });
});

after(async () => {
  await daemon?.kill();
  await db?.drop();
});

let seen = 0;
/** Waits for `count` more events and returns them. */
async function next(count: number): Promise<Event[]> {
  const events = await waitFor(`${count} more events`, () => {
    const all = daemon.events() as unknown as Event[];
    return all.length >= seen + count ? all : undefined;
  }, 20_000);
  const batch = events.slice(seen, seen + count);
  seen += count;
  return batch;
}

test('unchanged TOAST with default identity: column absent from data, listed in unchangedToast', async () => {
  await db.sql(`INSERT INTO docs VALUES (1, 'a', ${BIG})`);
  await db.sql(`UPDATE docs SET title = 'b' WHERE id = 1`);
  const [insert, update] = await next(2);
  assert.equal((insert!.data.body as string).length, 12_800);
  assert.equal(insert!.unchangedToast, undefined);
  assert.deepEqual(update!.data, { id: 1, title: 'b' });
  assert.deepEqual(update!.unchangedToast, ['body']);
  assert.deepEqual(update!.dataOld, {});
});

test('unchanged TOAST with REPLICA IDENTITY FULL: data carries the old value; dataOld is the old row', async () => {
  await db.sql(`INSERT INTO docs_full VALUES (1, 'a', ${BIG})`);
  await db.sql(`UPDATE docs_full SET title = 'b' WHERE id = 1`);
  await db.sql(`DELETE FROM docs_full WHERE id = 1`);
  const [insert, update, del] = await next(3);
  const body = insert!.data.body as string;
  assert.equal(body.length, 12_800);
  assert.deepEqual(update!.data, { id: 1, title: 'b', body });
  assert.equal(update!.unchangedToast, undefined);
  assert.deepEqual(update!.dataOld, { id: 1, title: 'a', body });
  assert.deepEqual(del!.dataOld, { id: 1, title: 'b', body });
  assert.deepEqual(del!.data, {});
});

test('REPLICA IDENTITY USING INDEX: dataOld holds the index columns only', async () => {
  await db.sql(`INSERT INTO by_index VALUES (1, 2, 'x')`);
  await db.sql(`UPDATE by_index SET b = 3 WHERE a = 1`);
  await db.sql(`DELETE FROM by_index WHERE a = 1`);
  const [, update, del] = await next(3);
  assert.deepEqual(update!.dataOld, { a: 1, b: 2 });
  assert.deepEqual(update!.data, { a: 1, b: 3, v: 'x' });
  assert.deepEqual(del!.dataOld, { a: 1, b: 3 });
});

test('ALTER TABLE mid-stream: added, dropped, renamed and retyped columns take effect for later events', async () => {
  await db.sql(`INSERT INTO evolving VALUES (1, 10)`);
  await db.sql(`ALTER TABLE evolving ADD COLUMN b text DEFAULT 'dflt'`);
  await db.sql(`INSERT INTO evolving VALUES (2, 20, 'two')`);
  await db.sql(`ALTER TABLE evolving RENAME COLUMN a TO alpha`);
  await db.sql(`INSERT INTO evolving VALUES (3, 30, 'three')`);
  await db.sql(`ALTER TABLE evolving ALTER COLUMN alpha TYPE numeric(10,2)`);
  await db.sql(`INSERT INTO evolving VALUES (4, 40, 'four')`);
  await db.sql(`ALTER TABLE evolving DROP COLUMN b`);
  await db.sql(`INSERT INTO evolving VALUES (5, 50)`);
  await db.sql(`UPDATE evolving SET alpha = 1.5 WHERE id = 1`);
  const events = await next(6);
  assert.deepEqual(
    events.map((e) => e.data),
    [
      { id: 1, a: 10 },
      { id: 2, a: 20, b: 'two' },
      { id: 3, alpha: 30, b: 'three' },
      { id: 4, alpha: '40.00', b: 'four' },
      { id: 5, alpha: '50.00' },
      { id: 1, alpha: '1.50' },
    ],
  );
});

test('TRUNCATE of two tables in one statement: one event per table, distinct ids, same transaction', async () => {
  await db.sql('INSERT INTO t1 VALUES (1); INSERT INTO t2 VALUES (1)');
  await db.sql('TRUNCATE t1, t2');
  const [, , a, b] = await next(4);
  assert.deepEqual([a!.action, a!.table, b!.action, b!.table].sort(), ['TRUNCATE', 'TRUNCATE', 't1', 't2']);
  assert.deepEqual(a!.data, {});
  assert.deepEqual(a!.dataOld, {});
  assert.equal(a!.lsn, b!.lsn);
  assert.notEqual(a!.id, b!.id);
  assert.equal(await daemon.stop(), 0);
});
