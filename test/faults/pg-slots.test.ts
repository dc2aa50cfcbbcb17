/**
 * Fault cases that need a private PostgreSQL (npm run test:faults; an embedded PostgreSQL 18 with
 * max_replication_slots=4, so the machine's server is left alone):
 *   - a slot invalidated by max_slot_wal_keep_size: the daemon refuses to start (WAL_PG_SLOT_LOST),
 *     check and status say so, --recreate-slot recovers (issue 10 #1, issue 11)
 *   - a database restored into another cluster (pg_dump from PostgreSQL 15, restored here): the
 *     different system identifier is noticed and said
 *   - all replication slots in use (53400) and each missing privilege (42501), for real, each with
 *     the remedy that then works (issue 11 #7)
 *   - the confirmed position is recorded while streaming, and an idle daemon stops writing it
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { startEmbeddedPostgres, type EmbeddedServer } from '../../scripts/embedded-postgres.js';
import { runCli, startDaemon, writeConfig, type DaemonProcess } from '../support/daemon.js';
import { waitFor } from '../support/ports.js';
import { createTestDatabase } from '../support/postgres.js';

let server: EmbeddedServer;
const daemons = new Set<DaemonProcess>();
let databases = 0;

before(async () => {
  server = await startEmbeddedPostgres({ extraFlags: ['-c', 'max_replication_slots=4', '-c', 'max_wal_senders=8'] });
});

after(async () => {
  for (const d of daemons) await d.kill();
  await server?.destroy();
});

async function sql<R extends Record<string, unknown> = Record<string, unknown>>(db: string, text: string, params: unknown[] = []): Promise<R[]> {
  const c = await server.client(db);
  try {
    return (await c.query<R>(text, params)).rows;
  } finally {
    await c.end();
  }
}

async function database(): Promise<string> {
  const name = `slots${++databases}`;
  await server.createDatabase(name);
  await sql(name, 'CREATE TABLE t (id int PRIMARY KEY)');
  return name;
}

const config = (db: string, slot: string, user = server.user, password = server.password): Record<string, unknown> => ({
  listener: { slotName: slot },
  database: { host: server.host, port: server.port, name: db, user, password },
  publisher: { type: 'stdout', topic: 'wl' },
});

async function daemon(cfg: Record<string, unknown>, options: { extraArgs?: string[]; waitForStreaming?: boolean } = {}): Promise<DaemonProcess> {
  const d = await startDaemon(cfg, options);
  daemons.add(d);
  void d.exited.then(() => daemons.delete(d));
  return d;
}

async function refusal(cfg: Record<string, unknown>): Promise<{ code: string; err: string; sqlstate: unknown; daemon: DaemonProcess }> {
  const d = await daemon(cfg, { waitForStreaming: false });
  assert.equal(await d.exited, 1, d.stderr());
  const fatal = d.logs().find((r) => r.level === 'fatal');
  assert.ok(fatal, d.stderr());
  return { code: String(fatal.code), err: String(fatal.err), sqlstate: fatal.sqlstate, daemon: d };
}

const ids = (d: DaemonProcess): number[] => d.events().map((e) => (e.data as { id: number }).id);

test('a slot invalidated by max_slot_wal_keep_size: refused with WAL_PG_SLOT_LOST, reported by check and status, recovered by --recreate-slot', async () => {
  const db = await database();
  const slot = 'kept_too_long';
  const cfg = config(db, slot);
  const first = await daemon(cfg);
  await sql(db, 'INSERT INTO t VALUES (1)');
  await waitFor('event 1', () => ids(first).includes(1));
  assert.equal(await first.stop(), 0);

  await sql(db, "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'");
  await sql(db, 'SELECT pg_reload_conf()');
  try {
    // WAL the stopped daemon's slot still needs goes beyond 1 MB, and checkpoints remove it.
    await waitFor('the slot invalidated (wal_status = lost)', async () => {
      await sql(db, "CREATE TABLE IF NOT EXISTS filler (x text); INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 2000)");
      await sql(db, 'SELECT pg_switch_wal()');
      await sql(db, 'CHECKPOINT');
      return (await sql<{ s: string }>(db, 'SELECT wal_status AS s FROM pg_replication_slots WHERE slot_name = $1', [slot]))[0]?.s === 'lost';
    }, 60_000, 10);
  } finally {
    await sql(db, 'ALTER SYSTEM RESET max_slot_wal_keep_size');
    await sql(db, 'SELECT pg_reload_conf()');
  }
  const reason = (await sql<{ r: string | null }>(db, 'SELECT invalidation_reason AS r FROM pg_replication_slots WHERE slot_name = $1', [slot]))[0]?.r;
  assert.equal(reason, 'wal_removed', 'PostgreSQL 17+ names the reason');

  const refused = await refusal(cfg);
  assert.equal(refused.code, 'WAL_PG_SLOT_LOST');
  assert.match(refused.err, new RegExp(`replication slot "${slot}" \\(created .*\\) was invalidated by PostgreSQL: WAL it still needed was removed \\(max_slot_wal_keep_size\\) \\(invalidation_reason = wal_removed\\)\\. Changes committed after LSN [0-9A-F/]+.* cannot be read from it any more`));
  assert.match(refused.err, /--recreate-slot/);

  const path = writeConfig(cfg);
  const checked = await runCli(['check', '-c', path]);
  assert.equal(checked.code, 1);
  assert.match(checked.stdout, new RegExp(`^problem replication slot "${slot}": replication slot "${slot}" .*was invalidated by PostgreSQL`, 'm'));
  const status = await runCli(['status', '-c', path, '--json']);
  assert.equal(status.code, 1);
  assert.match(String((JSON.parse(status.stdout) as { invalidated: string }).invalidated), /invalidation_reason = wal_removed/);

  const recreated = await daemon(cfg, { extraArgs: ['--recreate-slot'] });
  const gap = recreated.logs().find((r) => r.code === 'WAL_PG_SLOT_LOST' && r.level === 'warn');
  assert.match(String(gap?.reason), /^invalidated: WAL it still needed was removed/, recreated.stderr());
  await sql(db, 'INSERT INTO t VALUES (2)');
  await waitFor('streams from the new slot', () => ids(recreated).includes(2));
  assert.equal(await recreated.stop(), 0);
  await sql(db, 'SELECT pg_drop_replication_slot($1)', [slot]);
});

test('the database restored into another cluster (pg_dump from PostgreSQL 15): the changed system identifier is said', async (t) => {
  const origin = await createTestDatabase('wl_restore'); // the machine's PostgreSQL 15: another system
  t.after(() => origin.drop());
  await origin.sql('CREATE TABLE t (id int PRIMARY KEY)');
  const slot = origin.slotName();
  const source = await daemon({ ...config(origin.name, slot), database: { host: origin.host, port: origin.port, name: origin.name, user: origin.user, ...(origin.password ? { password: origin.password } : {}) } });
  await origin.sql('INSERT INTO t VALUES (1)');
  await waitFor('event 1', () => ids(source).includes(1));
  assert.equal(await source.stop(), 0);
  const originSystem = (await origin.sql<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()')).rows[0]!.id;

  const dump = execFileSync('pg_dump', ['-h', origin.host, '-p', String(origin.port), '-U', origin.user, '--no-owner', origin.name], { encoding: 'utf8', env: { ...process.env, ...(origin.password ? { PGPASSWORD: origin.password } : {}) } });
  const restored = `restored${++databases}`;
  await server.createDatabase(restored);
  execFileSync('psql', ['-q', '-v', 'ON_ERROR_STOP=1', '-h', server.host, '-p', String(server.port), '-U', server.user, '-d', restored], { input: dump, env: { ...process.env, PGPASSWORD: server.password } });
  const here = (await sql<{ id: string }>(restored, 'SELECT system_identifier::text AS id FROM pg_control_system()'))[0]!.id;
  assert.notEqual(here, originSystem);

  const refused = await refusal(config(restored, slot));
  assert.equal(refused.code, 'WAL_PG_SLOT_LOST');
  assert.match(refused.err, new RegExp(`was recorded on PostgreSQL system ${originSystem}, but this database now belongs to system ${here}: it was restored or failed over to another cluster, without the slot`));

  const recreated = await daemon(config(restored, slot), { extraArgs: ['--recreate-slot'] });
  const record = (await sql<{ system_id: string }>(restored, 'SELECT system_id FROM wal_listener.state WHERE slot_name = $1', [slot]))[0];
  assert.equal(record?.system_id, here, 'the record now names this system');
  assert.equal(await recreated.stop(), 0);
  await sql(restored, 'SELECT pg_drop_replication_slot($1)', [slot]);
});

test('all replication slots in use (53400): WAL_PG_SLOTS_FULL with the remedy; a freed slot lets it start', async () => {
  const db = await database();
  const used = Number((await sql<{ n: string }>(db, 'SELECT count(*) AS n FROM pg_replication_slots'))[0]!.n);
  const fillers = Array.from({ length: 4 - used }, (_, i) => `filler_${i}`);
  for (const f of fillers) await sql(db, 'SELECT pg_create_physical_replication_slot($1)', [f]);
  try {
    const refused = await refusal(config(db, 'one_too_many'));
    assert.equal(refused.code, 'WAL_PG_SLOTS_FULL');
    assert.equal(refused.sqlstate, '53400');
    assert.match(refused.err, /PostgreSQL has no free replication slot or WAL sender: raise max_replication_slots \/ max_wal_senders \(restart needed\) or drop a stale slot .*all replication slots are in use/);
    const checked = await runCli(['check', '-c', writeConfig(config(db, 'one_too_many'))]);
    assert.equal(checked.code, 1);
    assert.match(checked.stdout, /^problem max_replication_slots: 4 of 4 in use; the daemon needs one more\n {8}fix: raise max_replication_slots/m);

    await sql(db, 'SELECT pg_drop_replication_slot($1)', [fillers.pop()]);
    const started = await daemon(config(db, 'one_too_many'));
    assert.equal(await started.stop(), 0);
    await sql(db, 'SELECT pg_drop_replication_slot($1)', ['one_too_many']);
  } finally {
    for (const f of fillers) await sql(db, 'SELECT pg_drop_replication_slot($1)', [f]).catch(() => {});
  }
});

test('missing privileges (42501), one after the other, each with the remedy that then works', async () => {
  const db = await database();
  const user = 'app_reader';
  const password = 'pw-app-reader';
  await sql(db, `CREATE ROLE ${user} LOGIN PASSWORD '${password}'`);
  await sql(db, `GRANT SELECT ON t TO ${user}`);
  const cfg = config(db, 'least_privilege', user, password);

  const publication = await refusal(cfg);
  assert.equal(publication.code, 'WAL_PG_PRIVILEGE');
  assert.equal(publication.sqlstate, '42501');
  assert.match(publication.err, new RegExp(`user "${user}" may not create the publication \\(FOR ALL TABLES and FOR TABLES IN SCHEMA need a superuser; FOR TABLE needs CREATE on the database and ownership of the tables\\)`));
  assert.match(publication.err, /creating the publication; PostgreSQL said: permission denied for database/);
  await sql(db, 'CREATE PUBLICATION "wal-listener" FOR ALL TABLES'); // as the message says: create it yourself

  const schema = await refusal(cfg);
  assert.equal(schema.code, 'WAL_PG_PRIVILEGE');
  assert.match(schema.err, new RegExp(`user "${user}" may not create schema wal_listener, where the daemon records its slot and dead letters: GRANT CREATE ON DATABASE "${db}" TO "${user}"`));
  await sql(db, `GRANT CREATE ON DATABASE "${db}" TO "${user}"`);

  const replication = await refusal(cfg);
  assert.equal(replication.code, 'WAL_PG_PRIVILEGE');
  assert.match(replication.err, new RegExp(`user "${user}" lacks the REPLICATION attribute needed to create and read replication slots: ALTER ROLE "${user}" REPLICATION`));
  assert.match(replication.err, /permission denied to use replication slots/);
  const checked = await runCli(['check', '-c', writeConfig(cfg)]);
  assert.match(checked.stdout, new RegExp(`^problem replication privilege: ${user} has neither the REPLICATION attribute nor superuser`, 'm'));
  await sql(db, `ALTER ROLE "${user}" REPLICATION`);

  const works = await daemon(cfg);
  await sql(db, 'INSERT INTO t VALUES (1)');
  await waitFor('streams as the least-privileged user', () => ids(works).includes(1));
  assert.equal(await works.stop(), 0);
  await sql(db, 'SELECT pg_drop_replication_slot($1)', ['least_privilege']);
});

test('the confirmed position is recorded while streaming, and an idle daemon stops writing it', async () => {
  const db = await database();
  const slot = 'recorded';
  const d = await daemon(config(db, slot));
  await sql(db, 'INSERT INTO t SELECT generate_series(1, 50)');
  const end = (await sql<{ l: string }>(db, 'SELECT pg_current_wal_lsn()::text AS l'))[0]!.l;
  await waitFor('the record follows the confirmed position while streaming', async () =>
    (await sql<{ ok: boolean }>(db, 'SELECT confirmed_lsn >= $2::pg_lsn - 1000 AND confirmed_lsn <= $2::pg_lsn AS ok FROM wal_listener.state WHERE slot_name = $1', [slot, end]))[0]?.ok, 20_000);
  const writes = async (): Promise<string> => (await sql<{ at: Date }>(db, 'SELECT confirmed_at AS at FROM wal_listener.state WHERE slot_name = $1', [slot]))[0]!.at.toISOString();
  await new Promise((r) => setTimeout(r, 7_000));
  const settled = await writes();
  // Longer than the record interval (5 s) and PostgreSQL's standby snapshot interval (15 s), whose
  // WAL records move the idle position after each write.
  await new Promise((r) => setTimeout(r, 25_000));
  assert.equal(await writes(), settled, 'no write while nothing happens');
  assert.equal(await d.stop(), 0);
  await sql(db, 'SELECT pg_drop_replication_slot($1)', [slot]);
});
