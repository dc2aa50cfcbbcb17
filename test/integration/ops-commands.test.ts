/**
 * Issue 11's operator commands against real PostgreSQL and a real NATS server:
 *   check      one line per prerequisite, creates nothing (no publication, slot, schema or stream)
 *   status     who streams from the slot, confirmed position, lag, WAL retained; --json parses
 *   slot drop  refused while a daemon streams; then drops the slot and its record, so the next start
 *              is a first start and not a lost slot
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { databaseSection, runCli, startDaemon, writeConfig, type DaemonProcess } from '../support/daemon.js';
import { startNats, type NatsServer } from '../support/nats.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

let db: TestDatabase;
let nats: NatsServer;
const daemons: DaemonProcess[] = [];

before(async () => {
  db = await createTestDatabase('wl_ops');
  await db.sql('CREATE TABLE users (id int PRIMARY KEY); CREATE TABLE nk (a int)');
  nats = await startNats();
});

after(async () => {
  for (const d of daemons) await d.kill();
  await nats?.stop();
  await db?.drop();
});

const config = (slot: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  listener: { slotName: slot, publication: `p_${slot}`, filter: { tables: { users: null, nk: ['insert', 'update'] } } },
  database: databaseSection(db),
  publisher: { type: 'nats', address: nats.url, topic: `t_${slot}` },
  ...extra,
});

interface Finding {
  status: string;
  subject: string;
  detail: string;
  fix?: string;
}

async function checkJson(path: string): Promise<{ code: number | null; findings: Finding[] }> {
  const r = await runCli(['check', '-c', path, '--json']);
  return { code: r.code, findings: JSON.parse(r.stdout) as Finding[] };
}
const find = (findings: Finding[], subject: string | RegExp): Finding => {
  const f = findings.find((x) => (typeof subject === 'string' ? x.subject === subject : subject.test(x.subject)));
  assert.ok(f, `no finding for ${String(subject)} in ${JSON.stringify(findings, null, 1)}`);
  return f;
};

test('check before the first start: every prerequisite on its own line, and nothing is created', async () => {
  const slot = db.slotName();
  const path = writeConfig(config(slot));
  const text = await runCli(['check', '-c', path]);
  assert.equal(text.code, 0, text.stdout + text.stderr);
  assert.match(text.stdout, /^ok {6}PostgreSQL: reachable: PostgreSQL \d+/m);
  assert.match(text.stdout, /^ok {6}wal_level: logical$/m);
  assert.match(text.stdout, /^(no problem|\d+ problem)/m);

  const { code, findings } = await checkJson(path);
  assert.equal(code, 0);
  assert.equal(find(findings, 'replication privilege').status, 'ok');
  assert.match(find(findings, `publication "p_${slot}"`).detail, new RegExp(`absent; the first start creates it, with the slot: CREATE PUBLICATION "p_${slot}" FOR TABLE "public"."nk", "public"."users"`));
  assert.match(find(findings, `replication slot "${slot}"`).detail, /^absent; the first start creates it/);
  const identity = find(findings, 'replica identity');
  assert.equal(identity.status, 'warn');
  assert.match(identity.detail, /without a replica identity \(public\.nk\)/);
  assert.match(find(findings, `NATS stream t_${slot}`).detail, /^absent; the first start creates it/);
  assert.ok(['ok', 'warn'].includes(find(findings, 'max_slot_wal_keep_size').status));

  const created = await db.sql(
    `SELECT (SELECT count(*) FROM pg_publication WHERE pubname = $1)::int AS publications,
            (SELECT count(*) FROM pg_replication_slots WHERE slot_name = $2)::int AS slots,
            (to_regnamespace('wal_listener') IS NOT NULL) AS schema`,
    [`p_${slot}`, slot],
  );
  assert.deepEqual(created.rows[0], { publications: 0, slots: 0, schema: false }, 'check created nothing in PostgreSQL');
  const nc = await nats.connect();
  await assert.rejects((await jetstreamManager(nc)).streams.info(`t_${slot}`), /not found/, 'nor the NATS stream');
  await nc.close();
});

test('status --json, check while streaming, slot drop refused while in use, then a clean decommission', async () => {
  const slot = db.slotName();
  const d = await startDaemon(config(slot));
  daemons.push(d);
  const path = writeConfig(config(slot));
  await db.sql('INSERT INTO users VALUES (1)');

  const streaming = await checkJson(path);
  assert.equal(streaming.code, 0, JSON.stringify(streaming.findings));
  assert.match(find(streaming.findings, `replication slot "${slot}"`).detail, /^present, confirmed up to [0-9A-F]+\/[0-9A-F]+, wal_status reserved; streaming to PID \d+ \(wal-listener from 127\.0\.0\.1\)/);
  assert.match(find(streaming.findings, `publication "p_${slot}"`).detail, /^covers public\.nk, public\.users \(publishes insert, update, delete, truncate\)/);
  assert.match(find(streaming.findings, `NATS stream t_${slot}`).detail, new RegExp(`^exists: subjects t_${slot}\\.>`));

  const status = await runCli(['status', '-c', path, '--json']);
  assert.equal(status.code, 0, status.stderr);
  const s = JSON.parse(status.stdout) as Record<string, unknown> & { streaming: Record<string, unknown> | null; record: Record<string, unknown> | null };
  assert.equal(s.exists, true);
  assert.equal(s.invalidated, null);
  assert.equal(typeof s.activePid, 'number');
  assert.equal(s.streaming?.applicationName, 'wal-listener');
  assert.match(String(s.confirmedLsn), /^[0-9A-F]+\/[0-9A-F]+$/);
  assert.ok(typeof s.lagBytes === 'number' && s.lagBytes >= 0);
  assert.ok(typeof s.retainedBytes === 'number' && s.retainedBytes >= 0);
  assert.equal(s.walStatus, 'reserved');
  assert.equal(s.record?.origin, 'created');

  const refused = await runCli(['slot', 'drop', '-c', path, '--yes']);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, new RegExp(`replication slot ${slot} is in use by PID \\d+ \\(a daemon is streaming from it\\): stop that daemon first \\[WAL_PG_SLOT_IN_USE\\]`));
  assert.equal((await runCli(['slot', 'drop', '-c', path])).code, 2, 'without --yes: a usage error');

  assert.equal(await d.stop(), 0);
  const idle = await runCli(['status', '-c', path]);
  assert.equal(idle.code, 0);
  assert.match(idle.stdout, new RegExp(`^slot {7}${slot} on database ${db.name} \\(pgoutput\\): not streaming`, 'm'));
  assert.match(idle.stdout, /^lag {8}\d+ bytes behind the current WAL/m);

  const dropped = await runCli(['slot', 'drop', '-c', path, '--yes']);
  assert.equal(dropped.code, 0, dropped.stderr);
  assert.match(dropped.stdout, new RegExp(`^dropped replication slot ${slot} \\(confirmed up to [0-9A-F/]+\\) and its record in wal_listener\\.state\\.`, 'm'));
  assert.match(dropped.stdout, /that were not published yet will never be published: consumers miss them unless you re-read the tables \(wal-listener backfill\)/);
  assert.equal(await db.confirmedFlush(slot), null);
  assert.equal((await db.sql('SELECT 1 FROM wal_listener.state WHERE slot_name = $1', [slot])).rowCount, 0);
  assert.equal((await runCli(['status', '-c', path])).code, 1, 'status: no slot is a problem found');

  // Decommissioned on purpose: the next start is a first start, not a lost slot.
  const next = await startDaemon(config(slot));
  daemons.push(next);
  assert.ok(next.logs().some((r) => r.msg === 'created logical replication slot (pgoutput)'), next.stderr());
  assert.equal(await next.stop(), 0);
});

test('check on a slot that is gone since the last run: a problem, exit 1', async () => {
  const slot = db.slotName();
  const d = await startDaemon(config(slot));
  daemons.push(d);
  assert.equal(await d.stop(), 0);
  await db.sql('SELECT pg_drop_replication_slot($1)', [slot]);
  const { code, findings } = await checkJson(writeConfig(config(slot)));
  assert.equal(code, 1);
  const f = find(findings, `replication slot "${slot}"`);
  assert.equal(f.status, 'problem');
  assert.match(f.detail, /no longer exists.*--recreate-slot/);
});
