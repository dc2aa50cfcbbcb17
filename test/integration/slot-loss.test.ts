/**
 * Issue 10 #1: a slot dropped while the daemon was stopped. Before, the daemon re-created the slot
 * at the current WAL position with an info line, and the changes committed in between were lost
 * silently (60 of 170 rows). Now it knows the slot from wal_listener.state, refuses to start
 * (exit 1, WAL_PG_SLOT_LOST, from which LSN, how to recover), and `run --recreate-slot`
 * acknowledges the gap: a warning with the LSN range, a record in wal_listener.state.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { databaseSection, startDaemon, type DaemonProcess } from '../support/daemon.js';
import { waitFor } from '../support/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

let db: TestDatabase;
const daemons: DaemonProcess[] = [];

before(async () => {
  db = await createTestDatabase('wl_slotloss');
  await db.sql('CREATE TABLE t (id int PRIMARY KEY)');
});

after(async () => {
  for (const d of daemons) await d.kill();
  await db?.drop();
});

async function daemon(slot: string, options: { extraArgs?: string[]; waitForStreaming?: boolean } = {}): Promise<DaemonProcess> {
  const d = await startDaemon({ listener: { slotName: slot }, database: databaseSection(db), publisher: { type: 'stdout', topic: 'wl' } }, options);
  daemons.push(d);
  return d;
}

const ids = (d: DaemonProcess): number[] => d.events().map((e) => (e.data as { id: number }).id);

test('a slot dropped while the daemon was stopped: it refuses to start, then --recreate-slot acknowledges the gap', async () => {
  const slot = db.slotName();
  const first = await daemon(slot);
  const before = (await db.sql<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn;
  await db.sql('INSERT INTO t SELECT g FROM generate_series(1, 110) g');
  await waitFor('110 events', () => ids(first).length === 110);
  assert.equal(await first.stop(), 0);

  const record = (await db.sql<{ system_id: string; origin: string; created_lsn: string; confirmed_lsn: string; database: string }>(
    'SELECT system_id, origin, created_lsn::text, confirmed_lsn::text, database FROM wal_listener.state WHERE slot_name = $1', [slot],
  )).rows[0];
  assert.ok(record, 'the slot is recorded in wal_listener.state');
  const systemId = (await db.sql<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()')).rows[0]!.id;
  assert.deepEqual({ system: record.system_id, origin: record.origin, database: record.database }, { system: systemId, origin: 'created', database: db.name });
  // The record: the end of the last transaction confirmed (idle positions after it are not recorded).
  const confirmed = record.confirmed_lsn;
  const bounds = await db.sql<{ ok: boolean }>('SELECT $1::pg_lsn > $2::pg_lsn AND $1::pg_lsn <= $3::pg_lsn AS ok', [confirmed, before, await db.confirmedFlush(slot)]);
  assert.ok(bounds.rows[0]!.ok, `a clean stop records the 110-row transaction as confirmed (${before} < ${confirmed} <= the slot's position)`);

  // An operator's cleanup while the daemon is stopped, and the application goes on writing.
  await db.sql('SELECT pg_drop_replication_slot($1)', [slot]);
  await db.sql('INSERT INTO t SELECT g FROM generate_series(111, 170) g');

  const refused = await daemon(slot, { waitForStreaming: false });
  assert.equal(await refused.exited, 1, refused.stderr());
  const fatal = refused.logs().find((r) => r.level === 'fatal');
  assert.equal(fatal?.code, 'WAL_PG_SLOT_LOST', refused.stderr());
  const message = String(fatal?.err);
  assert.match(message, new RegExp(`replication slot "${slot}" \\(created .* at LSN ${record.created_lsn}\\) no longer exists`));
  assert.match(message, new RegExp(`Changes committed after LSN ${confirmed.replace('/', '\\/')} .*were not published`));
  assert.match(message, new RegExp(`wal-listener run -c ${refused.configPath.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} --recreate-slot`), 'the remedy names this config file');
  assert.match(message, /wal-listener backfill/);
  assert.deepEqual(ids(refused), [], 'nothing published');
  assert.equal(await db.confirmedFlush(slot), null, 'no slot was created behind the operator\'s back');

  const recreated = await daemon(slot, { extraArgs: ['--recreate-slot'] });
  const gap = recreated.logs().find((r) => r.code === 'WAL_PG_SLOT_LOST' && r.level === 'warn');
  assert.ok(gap, recreated.stderr());
  assert.equal(gap.lostFrom, confirmed);
  const newStart = (await db.sql<{ created_lsn: string; gaps: { from: string; to: string; reason: string }[]; origin: string }>(
    'SELECT created_lsn::text, gaps, origin FROM wal_listener.state WHERE slot_name = $1', [slot],
  )).rows[0]!;
  assert.equal(gap.lostTo, newStart.created_lsn);
  assert.equal(newStart.gaps.length, 1);
  assert.deepEqual({ from: newStart.gaps[0]!.from, to: newStart.gaps[0]!.to, reason: newStart.gaps[0]!.reason }, { from: confirmed, to: newStart.created_lsn, reason: 'the slot is gone' });
  await db.sql('INSERT INTO t VALUES (171)');
  await waitFor('the next change', () => ids(recreated).includes(171));
  assert.deepEqual(ids(recreated), [171], 'the 60 rows of the gap are not published by the new slot (backfill re-reads them)');
  assert.equal(await recreated.stop(), 0);

  // The gap is acknowledged once: the next start streams as usual.
  const after = await daemon(slot);
  await db.sql('INSERT INTO t VALUES (172)');
  await waitFor('streams again', () => ids(after).includes(172));
  assert.equal(await after.stop(), 0);
});

test('--recreate-slot with a healthy slot re-creates nothing', async () => {
  const slot = db.slotName();
  const first = await daemon(slot);
  assert.equal(await first.stop(), 0);
  await db.sql('INSERT INTO t VALUES (1000)');
  const again = await daemon(slot, { extraArgs: ['--recreate-slot'] });
  assert.ok(again.logs().some((r) => r.msg === '--recreate-slot: the replication slot is usable and nothing was lost; nothing to re-create'), again.stderr());
  await waitFor('the change written while stopped', () => ids(again).includes(1000));
  assert.equal(await again.stop(), 0);
});

test('an existing slot without a record (made before wal_listener.state existed) is adopted and recorded', async () => {
  const slot = db.slotName();
  await db.sql("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slot]);
  const d = await daemon(slot);
  assert.ok(d.logs().some((r) => r.msg === 'recorded the existing replication slot in wal_listener.state'), d.stderr());
  const row = (await db.sql<{ origin: string }>('SELECT origin FROM wal_listener.state WHERE slot_name = $1', [slot])).rows[0];
  assert.equal(row?.origin, 'adopted');
  assert.equal(await d.stop(), 0);
});
