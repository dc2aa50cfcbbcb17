/**
 * Issue 10 #7 and #3: the publication the daemon creates covers only what it streams. Before, it
 * was always FOR ALL TABLES, and PostgreSQL then refused the application's UPDATE and DELETE on every
 * table without a replica identity. Now: FOR TABLE the filtered tables ("table" in every schema
 * where it exists), FOR TABLES IN SCHEMA for "schema.*", only the filtered actions; published tables
 * without a replica identity are named with the fix; an existing publication that no longer matches
 * the filter is reported with the statement to run, never altered; a filtered table renamed while
 * streaming is said once.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { databaseSection, startDaemon, type DaemonProcess } from '../support/daemon.js';
import { waitFor } from '../support/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

let db: TestDatabase;
const daemons: DaemonProcess[] = [];

before(async () => {
  db = await createTestDatabase('wl_pubscope');
  await db.sql(`
    CREATE TABLE users (id int PRIMARY KEY, name text);
    CREATE TABLE orders (id int PRIMARY KEY);
    CREATE TABLE nk (a int, b text);
    CREATE SCHEMA audit;
    CREATE TABLE audit.users (id int PRIMARY KEY);
    CREATE TABLE audit.log (id int PRIMARY KEY);
    INSERT INTO nk VALUES (1, 'x');`);
});

after(async () => {
  for (const d of daemons) await d.kill();
  await db?.drop();
});

async function daemon(slot: string, publication: string, tables: Record<string, string[] | null> | undefined): Promise<DaemonProcess> {
  const d = await startDaemon({
    listener: { slotName: slot, publication, ...(tables ? { filter: { tables } } : {}) },
    database: databaseSection(db),
    publisher: { type: 'stdout', topic: 'wl' },
  });
  daemons.push(d);
  return d;
}

async function published(publication: string): Promise<string[]> {
  const r = await db.sql<{ t: string }>("SELECT schemaname || '.' || tablename AS t FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1", [publication]);
  return r.rows.map((row) => row.t);
}

test('with a filter: FOR TABLE the filtered tables and actions; an UPDATE on a keyless table outside the filter keeps working', async () => {
  const slot = db.slotName();
  const publication = `p_${slot}`;
  const d = await daemon(slot, publication, { users: ['insert', 'update'] });
  const created = d.logs().find((r) => r.msg === 'created publication');
  assert.equal(created?.statement, `CREATE PUBLICATION "${publication}" FOR TABLE "audit"."users", "public"."users" WITH (publish = 'insert, update')`, d.stderr());
  assert.deepEqual(await published(publication), ['audit.users', 'public.users'], '"users" without a schema: every schema where it exists');
  // The application's writes to a table the daemon does not stream are none of PostgreSQL's concern now.
  await db.sql("UPDATE nk SET b = 'y' WHERE a = 1");
  await db.sql('DELETE FROM nk WHERE a = 1');
  await db.sql("INSERT INTO users VALUES (1, 'ann')");
  await waitFor('the filtered insert', () => d.events().some((e) => e.table === 'users'));
  assert.ok(!d.logs().some((r) => /without a replica identity/.test(String(r.msg))), 'no table of this publication lacks a replica identity');
  assert.equal(await d.stop(), 0);
});

test('FOR ALL TABLES without a filter; published tables without a replica identity are named with the fix', async () => {
  const slot = db.slotName();
  const publication = `p_${slot}`;
  const d = await daemon(slot, publication, undefined);
  assert.equal(d.logs().find((r) => r.msg === 'created publication')?.statement, `CREATE PUBLICATION "${publication}" FOR ALL TABLES`);
  const warning = d.logs().find((r) => /without a replica identity/.test(String(r.msg)));
  assert.ok(warning, d.stderr());
  assert.deepEqual(warning.tables, ['public.nk']);
  assert.match(String(warning.msg), /PostgreSQL refuses UPDATE and DELETE on them .* Fix: add a primary key, or ALTER TABLE "public"\."nk" REPLICA IDENTITY FULL/);
  // What the warning is about, for real.
  await assert.rejects(db.sql("UPDATE nk SET b = 'z'"), /cannot update table "nk" because it does not have a replica identity and publishes updates/);
  assert.equal(await d.stop(), 0);
  await db.sql(`DROP PUBLICATION "${publication}"`); // or it keeps refusing the UPDATEs of the other tests
  await db.sql('SELECT pg_drop_replication_slot($1)', [slot]);
});

test('an existing publication that does not match a changed filter: a warning with the difference and the statement, nothing altered', async () => {
  const slot = db.slotName();
  const publication = `p_${slot}`;
  const first = await daemon(slot, publication, { 'public.users': null });
  assert.equal(await first.stop(), 0);

  const changed = await daemon(slot, publication, { 'public.users': null, orders: ['insert'] });
  const warning = changed.logs().find((r) => r.msg === 'the publication does not match listener.filter.tables; it is not changed by the daemon: run the fix yourself (with the daemon running or stopped)');
  assert.ok(warning, changed.stderr());
  assert.deepEqual(warning.differences, [`publication "${publication}" does not cover public.orders, which listener.filter.tables names: their changes are not published (daemons with different filters need a listener.publication each)`]);
  assert.equal(warning.fix, `ALTER PUBLICATION "${publication}" SET TABLE "public"."orders", "public"."users";`);
  assert.deepEqual(await published(publication), ['public.users'], 'not altered by the daemon');
  assert.equal(await changed.stop(), 0);

  await db.sql(String(warning.fix));
  const fixed = await daemon(slot, publication, { 'public.users': null, orders: ['insert'] });
  assert.ok(!fixed.logs().some((r) => r.msg === warning.msg), 'the fix given is the right one');
  await db.sql('INSERT INTO orders VALUES (1)');
  await waitFor('the newly published table', () => fixed.events().some((e) => e.table === 'orders'));
  assert.equal(await fixed.stop(), 0);
});

test('"schema.*": FOR TABLES IN SCHEMA, so a table created later in it is streamed too', async () => {
  const slot = db.slotName();
  const publication = `p_${slot}`;
  const d = await daemon(slot, publication, { 'audit.*': null });
  assert.equal(d.logs().find((r) => r.msg === 'created publication')?.statement, `CREATE PUBLICATION "${publication}" FOR TABLES IN SCHEMA "audit"`);
  await db.sql('CREATE TABLE audit.later (id int PRIMARY KEY); INSERT INTO audit.later VALUES (7); INSERT INTO users VALUES (7, \'not streamed\')');
  await waitFor('the table created after the publication', () => d.events().some((e) => e.table === 'later'));
  assert.ok(!d.events().some((e) => e.table === 'users' && e.schema === 'public'));
  assert.equal(await d.stop(), 0);
});

test('a filtered table renamed while streaming: one warning with the old and the new name', async () => {
  await db.sql('CREATE TABLE renamed_src (id int PRIMARY KEY)');
  const slot = db.slotName();
  const publication = `p_${slot}`;
  const d = await daemon(slot, publication, { renamed_src: null });
  await db.sql('INSERT INTO renamed_src VALUES (1)');
  await waitFor('first event', () => d.events().length === 1);
  await db.sql('ALTER TABLE renamed_src RENAME TO renamed_dst');
  await db.sql('INSERT INTO renamed_dst VALUES (2)');
  await db.sql('INSERT INTO renamed_dst VALUES (3)');
  const warning = await d.waitForLog(/was renamed to/);
  assert.equal(warning.level, 'warn');
  assert.deepEqual({ from: warning.from, to: warning.to }, { from: 'public.renamed_src', to: 'public.renamed_dst' });
  assert.match(String(warning.msg), /listener.filter.tables names the old name, so its changes are no longer published: add public.renamed_dst to the filter/);
  await db.sql('ALTER TABLE renamed_dst ADD COLUMN note text; INSERT INTO renamed_dst VALUES (4)'); // a new Relation message, same names
  const end = (await db.sql<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn;
  await waitFor('the slot confirmed past the last insert', async () => {
    const r = await db.sql<{ ok: boolean }>('SELECT confirmed_flush_lsn >= $2::pg_lsn AS ok FROM pg_replication_slots WHERE slot_name = $1', [slot, end]);
    return r.rows[0]?.ok;
  }, 20_000);
  assert.equal(d.logs().filter((r) => /was renamed to/.test(String(r.msg))).length, 1, 'said once');
  assert.equal(d.events().length, 1);
  assert.equal(await d.stop(), 0);
});
