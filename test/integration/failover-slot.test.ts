/**
 * listener.failoverSlot (issue 13 #5): on PostgreSQL 17+ the slot is created with FAILOVER (and an
 * existing slot is altered to it); an older server is refused at start, before anything is created.
 * PostgreSQL 18: a private embedded server (so this runs in the PostgreSQL 15 run too); the older
 * server: the machine's PostgreSQL 15 (in the PostgreSQL 18 run of the suite that case is skipped).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startEmbeddedPostgres, type EmbeddedServer } from '../../scripts/embedded-postgres.js';
import { databaseSection, runCli, startDaemon, writeConfig, type DaemonProcess } from '../support/daemon.js';
import { waitFor } from '../support/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

let db: TestDatabase;
let pg18: EmbeddedServer | undefined;
const daemons = new Set<DaemonProcess>();

before(async () => {
  db = await createTestDatabase('wl_ha_failover');
  await db.sql('CREATE TABLE t (id int PRIMARY KEY)');
});

after(async () => {
  for (const d of daemons) await d.kill();
  await pg18?.destroy();
  await db?.drop();
});

async function daemon(config: Record<string, unknown>, waitForStreaming = true): Promise<DaemonProcess> {
  const d = await startDaemon(config, { waitForStreaming });
  daemons.add(d);
  void d.exited.then(() => daemons.delete(d));
  return d;
}

test('PostgreSQL before 17: listener.failoverSlot is refused at start with WAL_PG_FAILOVER_SLOT, exit 1, no slot created', async (t) => {
  const version = Number((await db.sql<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0]!.v);
  if (version >= 170000) return t.skip(`this server is ${version}: it has failover slots`);
  const slot = db.slotName('old');
  const d = await daemon({ listener: { slotName: slot, failoverSlot: true }, database: databaseSection(db), publisher: { type: 'stdout', topic: 'wl' } }, false);
  assert.equal(await d.exited, 1, d.stderr());
  const fatal = d.logs().find((r) => r.level === 'fatal');
  assert.equal(fatal?.code, 'WAL_PG_FAILOVER_SLOT', d.stderr());
  assert.match(String(fatal?.err), /listener\.failoverSlot is true, but PostgreSQL 15\.[^:]* has no failover slots \(PostgreSQL 17 or later\)/);
  assert.ok(!d.logs().some((r) => r.msg === 'publisher connected'), 'refused before the publisher connects');
  assert.equal((await db.sql('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot])).rowCount, 0);
  // `wal-listener check` says it too.
  const check = await runCli(['check', '-c', writeConfig({ listener: { slotName: slot, failoverSlot: true }, database: databaseSection(db), publisher: { type: 'stdout', topic: 'wl' } })]);
  assert.equal(check.code, 1, check.stdout + check.stderr);
  assert.match(check.stdout, /listener\.failoverSlot.*has no failover slots.*\[WAL_PG_FAILOVER_SLOT\]/);
});

test('PostgreSQL 18: the slot is created with failover = true, and an existing slot is altered to it', async () => {
  pg18 = await startEmbeddedPostgres({ extraFlags: ['-c', 'max_replication_slots=4', '-c', 'max_wal_senders=4'] });
  await pg18.createDatabase('failover');
  const sql = async (text: string, params: unknown[] = []): Promise<Record<string, unknown>[]> => {
    const c = await pg18!.client('failover');
    try {
      return (await c.query(text, params)).rows;
    } finally {
      await c.end();
    }
  };
  await sql('CREATE TABLE t (id int PRIMARY KEY)');
  const database = { host: pg18.host, port: pg18.port, name: 'failover', user: pg18.user, password: pg18.password };
  const failover = async (slot: string): Promise<unknown> => (await sql('SELECT failover FROM pg_replication_slots WHERE slot_name = $1', [slot]))[0]?.failover;

  const created = await daemon({ listener: { slotName: 'created_failover', failoverSlot: true }, database, publisher: { type: 'stdout', topic: 'wl' } });
  assert.equal(await failover('created_failover'), true);
  await sql('INSERT INTO t VALUES (1)');
  await waitFor('the change streamed', () => created.events().some((e) => (e.data as { id: number }).id === 1));
  assert.equal(await created.stop(), 0);

  // A slot made without it (the default) becomes a failover slot when the key is turned on.
  const plain = { listener: { slotName: 'altered', publication: 'p_altered' }, database, publisher: { type: 'stdout', topic: 'wl' } };
  const first = await daemon(plain);
  assert.equal(await failover('altered'), false);
  assert.equal(await first.stop(), 0);
  const second = await daemon({ ...plain, listener: { ...plain.listener, failoverSlot: true } });
  assert.ok(second.logs().some((r) => r.msg === 'replication slot altered to FAILOVER true (listener.failoverSlot)'));
  assert.equal(await failover('altered'), true);
  await sql('INSERT INTO t VALUES (2)');
  await waitFor('the change streamed from the altered slot', () => second.events().some((e) => (e.data as { id: number }).id === 2));
  assert.equal(await second.stop(), 0);
});
