/**
 * Snapshots end to end with NATS JetStream (DESIGN.md "Snapshots"): real PostgreSQL → the daemon
 * (child process) → a private nats-server; a consumer applies the stream in order (SNAPSHOT,
 * INSERT, UPDATE: upsert; DELETE: delete) and must end with exactly the table's rows.
 *   - initial snapshot of 50,000 rows while 4 writers change the table;
 *   - a backfill on a streaming daemon while 4 writers run, with kill -9 of the daemon twice.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { databaseSection, runCli, startDaemon, writeConfig, type DaemonProcess } from '../support/daemon.js';
import { readStream, startNats, type NatsServer } from '../support/nats.js';
import { waitFor } from '../support/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import { backfillRow as backfillRowOf, createRowsTable, requestBackfill, startWriters, TableModel, waitConfirmed, type BackfillRow } from '../support/snapshot-workload.js';

let db: TestDatabase;
let nats: NatsServer;
let nc: NatsConnection;
let daemon: DaemonProcess | undefined;
const ROWS = 50_000;

before(async () => {
  db = await createTestDatabase('wl_snap');
  nats = await startNats();
  nc = await nats.connect();
});

after(async () => {
  await daemon?.kill();
  await nc?.close();
  await nats?.stop();
  await db?.drop();
});

async function model(stream: string, table: string): Promise<TableModel> {
  const m = new TableModel();
  for (const message of await readStream(nc, stream)) m.apply(message.json, table, message.seq);
  return m;
}

const backfillRow = async (id: string): Promise<BackfillRow> => (await backfillRowOf(db, id))!;

test('initial snapshot: 50,000 rows and 4 writers during it; the consumer ends with exactly the table', async () => {
  await createRowsTable(db, 'initial_t', ROWS);
  const slot = db.slotName('wl_snap_i');
  const topic = 'wl_snap_initial';
  const config = {
    listener: { slotName: slot, publication: 'wl_snap_initial', filter: { tables: { 'public.initial_t': null } }, snapshot: { initial: ['public.initial_t'], chunkSize: 2000 } },
    database: databaseSection(db),
    publisher: { type: 'nats', address: nats.url, topic },
  };
  const writers = await startWriters(db, 'initial_t', 4, ROWS);
  try {
    daemon = await startDaemon(config);
    await daemon.waitForLog('initial snapshot of table done', 80_000);
  } finally {
    await writers.stop();
  }
  assert.ok(writers.count() > 50, `writers made only ${writers.count()} changes`);
  await waitConfirmed(db, slot);
  const m = await model(topic, 'initial_t');
  assert.ok((m.actions.SNAPSHOT ?? 0) >= ROWS * 0.8, `SNAPSHOT events: ${m.actions.SNAPSHOT}`);
  await m.assertEquals(db, 'initial_t');
  const request = (await db.sql<{ status: string; kind: string; rows: string }>("SELECT status, kind, rows::text FROM wal_listener.backfills WHERE table_name = 'initial_t'")).rows;
  assert.deepEqual(request.map((r) => [r.kind, r.status]), [['initial', 'done']]);
  await daemon.stop();
  daemon = undefined;
});

test('a daemon killed during the initial snapshot goes on from the stored last key with watermarks: final state exact', async () => {
  await createRowsTable(db, 'resume_t', ROWS);
  const slot = db.slotName('wl_snap_k');
  const topic = 'wl_snap_resume';
  const config = {
    listener: { slotName: slot, publication: 'wl_snap_resume', filter: { tables: { 'public.resume_t': null } }, snapshot: { initial: ['public.resume_t'], chunkSize: 500 } },
    database: databaseSection(db),
    publisher: { type: 'nats', address: nats.url, topic },
  };
  const writers = await startWriters(db, 'resume_t', 4, ROWS);
  try {
    daemon = await startDaemon(config);
    await waitFor('initial snapshot progress', async () => Number((await db.sql<{ rows: string }>("SELECT rows::text FROM wal_listener.backfills WHERE table_name = 'resume_t'")).rows[0]?.rows ?? 0) >= 5000, 60_000, 50);
    await daemon.kill();
    daemon = await startDaemon(config);
    const resumed = await daemon.waitForLog('backfill resumed', 30_000);
    assert.equal(resumed.kind, 'initial');
    assert.ok(Array.isArray(resumed.from), 'resumed from a stored key');
    await daemon.waitForLog('backfill done', 80_000);
  } finally {
    await writers.stop();
  }
  await waitConfirmed(db, slot);
  const m = await model(topic, 'resume_t');
  await m.assertEquals(db, 'resume_t');
  await daemon.stop();
  daemon = undefined;
});

test('backfill while streaming, with 4 writers and kill -9 of the daemon twice: final state exact, backfill done', async () => {
  await createRowsTable(db, 'bf_t', ROWS);
  const slot = db.slotName('wl_snap_b');
  const topic = 'wl_snap_backfill';
  const config = {
    listener: { slotName: slot, publication: 'wl_snap_backfill', filter: { tables: { 'public.bf_t': null } } },
    database: databaseSection(db),
    publisher: { type: 'nats', address: nats.url, topic },
  };
  daemon = await startDaemon(config);
  const writers = await startWriters(db, 'bf_t', 4, ROWS);
  let id = '';
  try {
    id = await requestBackfill(writeConfig(config), 'public.bf_t', '--chunk', '1000');
    for (const step of [1, 2]) {
      const before = Number((await backfillRow(id)).rows);
      await waitFor(`backfill progress past ${before} rows`, async () => Number((await backfillRow(id)).rows) > before + 2000, 60_000, 100);
      await daemon.kill();
      daemon = await startDaemon(config);
      await daemon.waitForLog('backfill resumed', 30_000);
      assert.ok(step);
    }
    await waitFor('backfill done', async () => (await backfillRow(id)).status === 'done', 80_000, 250);
  } finally {
    await writers.stop();
  }
  await waitConfirmed(db, slot);
  const m = await model(topic, 'bf_t');
  await m.assertEquals(db, 'bf_t');
  assert.deepEqual(daemon.logs().filter((r) => /progress not stored|interrupted/.test(String(r.msg))), []);
  const status = await runCli(['backfill', '-c', writeConfig(config), '--status']);
  assert.match(status.stdout, new RegExp(`${id}\\s+done\\s+public\\.bf_t\\s+rows \\d+`));
  await daemon.stop();
  daemon = undefined;
});

test('listener.snapshot.initial naming a table without a primary key stops the daemon before the slot exists', async () => {
  await db.sql('CREATE TABLE initial_nokey (a int)');
  const slot = db.slotName('wl_snap_n');
  const d = await startDaemon(
    {
      listener: { slotName: slot, publication: 'wl_snap_nokey', filter: { tables: { 'public.initial_nokey': null } }, snapshot: { initial: ['public.initial_nokey'] } },
      database: databaseSection(db),
      publisher: { type: 'nats', address: nats.url, topic: 'wl_snap_nokey' },
    },
    { waitForStreaming: false },
  );
  assert.equal(await d.exited, 1);
  const fatal = d.logs().find((r) => r.code === 'WAL_SNAPSHOT_TABLE');
  assert.ok(fatal, d.stderr());
  assert.match(JSON.stringify(fatal), /cannot snapshot public\.initial_nokey: it has no primary key/);
  assert.equal((await db.sql('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot])).rowCount, 0);
});
