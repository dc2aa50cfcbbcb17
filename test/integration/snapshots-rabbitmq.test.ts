/**
 * Snapshots end to end with RabbitMQ: real PostgreSQL → the daemon (child process) → RabbitMQ.
 *   - a backfill while 4 writers run: a consumer applying the queue in order ends with exactly the table;
 *   - --where limits the rows read; a composite key; refusals (no key, identity, publication, --where);
 *   - a second backfill of a table queues behind the first; a cancelled backfill stops and says so;
 *   - the initial snapshot while 4 writers run.
 * (A PostgreSQL 15 run is enough: nothing here depends on the server version beyond what
 * snapshots-nats.test.ts covers on both.)
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { databaseSection, runCli, startDaemon, writeConfig, type DaemonProcess } from '../support/daemon.js';
import { waitFor } from '../support/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import { cleanup, declareBoundQueue, QueueReader, RABBIT_URL, uniqueName } from '../support/rabbitmq.js';
import { backfillRow, createRowsTable, requestBackfill, startWriters, TableModel, waitConfirmed, type BackfillRow } from '../support/snapshot-workload.js';

let db: TestDatabase;
let daemon: DaemonProcess | undefined;
let reader: QueueReader | undefined;
let configPath: string;
let slot: string;
const exchange = uniqueName('wl_snap_x');
const queue = uniqueName('wl_snap_q');

before(async () => {
  db = await createTestDatabase('wl_snap');
  await createRowsTable(db, 'rb_t', 20_000);
  await createRowsTable(db, 'where_t', 5_000);
  await createRowsTable(db, 'queue_t', 40_000);
  await db.sql(`CREATE TABLE comp_t (a int, b text, v int, PRIMARY KEY (a, b));
    INSERT INTO comp_t SELECT g / 7, 'k' || (g % 7), g FROM generate_series(0, 2999) g`);
  await declareBoundQueue(exchange, queue);
  reader = new QueueReader(queue);
  slot = db.slotName('wl_snap_r');
  const config = {
    listener: { slotName: slot, publication: 'wl_snap_rabbit', filter: { tables: { 'public.rb_t': null, 'public.where_t': null, 'public.queue_t': null, 'public.comp_t': null } } },
    database: databaseSection(db),
    publisher: { type: 'rabbitmq', address: RABBIT_URL, topic: exchange },
  };
  configPath = writeConfig(config);
  daemon = await startDaemon(config);
});

after(async () => {
  await daemon?.kill();
  await reader?.stop();
  await cleanup({ queues: [queue], exchanges: [exchange] });
  await db?.drop();
});

const events = (table: string): Record<string, unknown>[] =>
  reader!.messages.map((m) => JSON.parse(m.content.toString()) as Record<string, unknown>).filter((e) => e.table === table);

/** Waits until the reader got nothing new for 500 ms (everything confirmed was delivered). */
async function settled(): Promise<void> {
  for (let count = -1; count !== reader!.messages.length; ) {
    count = reader!.messages.length;
    await new Promise((r) => setTimeout(r, 500));
  }
}

const request = (...args: string[]): Promise<string> => requestBackfill(configPath, ...args);
const row = async (id: string): Promise<BackfillRow> => (await backfillRow(db, id))!;

test('a backfill while 4 writers run: the consumer applying the queue in order ends with exactly the table', async () => {
  const writers = await startWriters(db, 'rb_t', 4, 20_000);
  try {
    const id = await request('public.rb_t', '--chunk', '1000');
    await waitFor('backfill done', async () => (await row(id)).status === 'done', 60_000, 250);
  } finally {
    await writers.stop();
  }
  await waitConfirmed(db, slot);
  await settled();
  const model = new TableModel();
  for (const event of events('rb_t')) model.apply(event, 'rb_t');
  assert.ok((model.actions.SNAPSHOT ?? 0) > 15_000, `SNAPSHOT events: ${model.actions.SNAPSHOT}`);
  await model.assertEquals(db, 'rb_t');
});

test('--where limits the rows read', async () => {
  const id = await request('public.where_t', '--where', 'grp = 3 AND id <= 2000');
  await waitFor('backfill done', async () => (await row(id)).status === 'done', 30_000, 250);
  await waitConfirmed(db, slot);
  await settled();
  const read = events('where_t');
  assert.ok(read.every((e) => e.action === 'SNAPSHOT'));
  assert.deepEqual(read.map((e) => (e.data as { id: number }).id), Array.from({ length: 200 }, (_, i) => i * 10 + 3));
  assert.equal((await row(id)).rows, '200');
});

test('a second backfill of the same table queues behind the first; a cancelled backfill stops and says so', async () => {
  // Chunks of 10: 4,000 of them, far longer than the two CLI calls below take, so the cancel lands mid-run
  // (with chunks of 100 a loaded CI machine once finished all 40,000 rows before the cancel).
  const first = await request('public.queue_t', '--chunk', '10');
  const second = await request('public.queue_t', '--where', 'id <= 500');
  await waitFor('first backfill running', async () => Number((await row(first)).rows) > 0, 30_000, 100);
  const status = await runCli(['backfill', '-c', configPath, '--status']);
  assert.match(status.stdout, new RegExp(`${first}\\s+running\\s+public\\.queue_t`));
  assert.match(status.stdout, new RegExp(`${second}\\s+queued\\s+public\\.queue_t`));

  const cancelled = await runCli(['backfill', '-c', configPath, '--cancel', first]);
  assert.equal(cancelled.code, 0, cancelled.stderr);
  assert.match(cancelled.stdout, new RegExp(`cancelled backfill ${first} of public\\.queue_t \\(was running`));
  const log = await daemon!.waitForLog('backfill cancelled', 30_000);
  assert.equal(log.backfill, first);
  await waitFor('second backfill done', async () => (await row(second)).status === 'done', 30_000, 250);
  const [a, b] = [await row(first), await row(second)];
  assert.equal(a.status, 'cancelled');
  assert.ok(Number(a.rows) < 40_000, `cancelled backfill published ${a.rows} rows`);
  assert.ok(b.started_at! >= a.finished_at!, 'the second backfill started only after the first ended');
  assert.equal(b.rows, '500');
  const rowsAtCancel = a.rows;
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal((await row(first)).rows, rowsAtCancel, 'nothing more published for the cancelled backfill');

  const json = await runCli(['backfill', '-c', configPath, '--status', '--json']);
  const listed = json.stdout.trim().split('\n').map((line) => JSON.parse(line) as { id: string; status: string; rows: number; table: string; rowsPerSecond: number | null });
  assert.deepEqual(listed.filter((r) => r.id === first || r.id === second).map((r) => [r.id, r.status, r.table]), [[first, 'cancelled', 'queue_t'], [second, 'done', 'queue_t']]);
  assert.equal(listed.find((r) => r.id === second)!.rows, 500);

  const trouble = daemon!.logs().filter((r) => /progress not stored|interrupted/.test(String(r.msg)));
  assert.deepEqual(trouble, [], 'backfills ran without being interrupted');

  const unknown = await runCli(['backfill', '-c', configPath, '--cancel', '999999']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /no backfill 999999/);
});

test('a composite key: every row once, in key order, across chunk boundaries', async () => {
  const id = await request('public.comp_t', '--chunk', '100');
  await waitFor('backfill done', async () => (await row(id)).status === 'done', 30_000, 250);
  await waitConfirmed(db, slot);
  await settled();
  const read = events('comp_t').map((e) => e.data as { a: number; b: string; v: number });
  const expected = (await db.sql<{ a: number; b: string; v: number }>('SELECT a, b, v FROM comp_t ORDER BY a, b')).rows;
  assert.deepEqual(read, expected);
});

test('tables without a primary key, and a bad --where, are refused clearly', async () => {
  await db.sql('CREATE TABLE nokey (a int)');
  const nokey = await runCli(['backfill', '-c', configPath, 'public.nokey']);
  assert.equal(nokey.code, 1);
  assert.match(nokey.stderr, /cannot snapshot public\.nokey: it has no primary key.*\[WAL_SNAPSHOT_TABLE\]/);
  await db.sql('CREATE TABLE ident_t (id int PRIMARY KEY, u int NOT NULL UNIQUE); ALTER TABLE ident_t REPLICA IDENTITY USING INDEX ident_t_u_key');
  const ident = await runCli(['backfill', '-c', configPath, 'public.ident_t']);
  assert.equal(ident.code, 1);
  assert.match(ident.stderr, /REPLICA IDENTITY is USING INDEX.*\[WAL_SNAPSHOT_TABLE\]/);
  const missing = await runCli(['backfill', '-c', configPath, 'public.no_such_table']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /cannot snapshot public\.no_such_table: there is no such table/);
  await db.sql('CREATE TABLE unpublished_t (id int PRIMARY KEY)');
  const unpublished = await runCli(['backfill', '-c', configPath, 'public.unpublished_t']);
  assert.equal(unpublished.code, 1);
  assert.match(unpublished.stderr, /it is not in publication "wl_snap_rabbit"/);
  const bad = await runCli(['backfill', '-c', configPath, 'public.where_t', '--where', 'no_such_column = 1']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--where is not a valid condition on public\.where_t: column "no_such_column" does not exist/);
  const usage = await runCli(['backfill', '-c', configPath, 'where_t']);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /expected schema\.table/);
});

test('initial snapshot with RabbitMQ: 20,000 rows and 4 writers during it; the consumer ends with exactly the table', async () => {
  await createRowsTable(db, 'initial_r', 20_000);
  const initialExchange = uniqueName('wl_snap_xi');
  const initialQueue = uniqueName('wl_snap_qi');
  await declareBoundQueue(initialExchange, initialQueue);
  const initialReader = new QueueReader(initialQueue);
  const initialSlot = db.slotName('wl_snap_ri');
  let initialDaemon: DaemonProcess | undefined;
  const writers = await startWriters(db, 'initial_r', 4, 20_000);
  try {
    initialDaemon = await startDaemon({
      listener: { slotName: initialSlot, publication: 'wl_snap_rabbit_initial', filter: { tables: { 'public.initial_r': null } }, snapshot: { initial: ['public.initial_r'] } },
      database: databaseSection(db),
      publisher: { type: 'rabbitmq', address: RABBIT_URL, topic: initialExchange },
    });
    await initialDaemon.waitForLog('initial snapshot of table done', 60_000);
    await writers.stop();
    await waitConfirmed(db, initialSlot);
    for (let count = -1; count !== initialReader.messages.length; ) {
      count = initialReader.messages.length;
      await new Promise((r) => setTimeout(r, 500));
    }
    const model = new TableModel();
    for (const m of initialReader.messages) model.apply(JSON.parse(m.content.toString()) as Record<string, unknown>, 'initial_r');
    assert.ok((model.actions.SNAPSHOT ?? 0) >= 15_000, `SNAPSHOT events: ${model.actions.SNAPSHOT}`);
    await model.assertEquals(db, 'initial_r');
  } finally {
    await writers.stop();
    await initialDaemon?.stop();
    await initialReader.stop();
    await cleanup({ queues: [initialQueue], exchanges: [initialExchange] });
  }
});
