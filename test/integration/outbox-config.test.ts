/**
 * listener.outbox problems (issue 13): what can be checked offline (a malformed entry) exits 2
 * before anything connects; a table that does not exist, lacks a named column or has a column of
 * the wrong type is a startup error naming table and column (WAL_OUTBOX_TABLE), exit 1, before
 * the slot is created; so is an existing publication that leaves an outbox table out. Does not need the PostgreSQL 18 run (catalog queries only).
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, before, test } from 'node:test';
import { databaseSection, runCli, startDaemon, writeConfig } from '../support/daemon.js';
import { GOHARVEST_TABLE } from '../support/outbox-workload.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

let db: TestDatabase;
let trap: Server;
let trapPort = 0;
let connections = 0;

before(async () => {
  db = await createTestDatabase('wl_obx_cfg');
  await db.sql(`CREATE TABLE outbox (id bigserial PRIMARY KEY, kafka_topic text NOT NULL, kafka_value text, kafka_header_keys text[], kafka_header_values text[]);
    CREATE TABLE bad_types (id bigserial PRIMARY KEY, kafka_topic text, kafka_key text, kafka_value text, kafka_header_keys text, kafka_header_values text[])`);
  trap = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => trap.listen(0, '127.0.0.1', resolve));
  trapPort = (trap.address() as { port: number }).port;
});

after(async () => {
  trap?.close();
  await db?.drop();
});

async function run(outbox: unknown[], database: Record<string, unknown>, publication = 'wl_obx_cfg'): Promise<{ code: number | null; stderr: string }> {
  const daemon = await startDaemon(
    { listener: { slotName: db.slotName('cfg'), publication, outbox }, database, publisher: { type: 'nats', address: `127.0.0.1:${trapPort}`, topic: 'wl_obx' } },
    { waitForStreaming: false },
  );
  return { code: await daemon.exited, stderr: daemon.stderr() };
}

test('a malformed outbox entry exits 2 before connecting', async () => {
  const before = connections;
  const database = { host: '127.0.0.1', port: trapPort, name: 'x', user: 'postgres' };
  const same = await run([{ table: 'outbox', key: 'kafka_topic' }], database);
  assert.equal(same.code, 2, same.stderr);
  assert.match(same.stderr, /listener\.outbox\.0\.key: names column "kafka_topic" like topic/);
  const twice = await run([{ table: 'outbox' }, { table: 'outbox', value: 'body' }], database);
  assert.equal(twice.code, 2, twice.stderr);
  assert.match(twice.stderr, /listener\.outbox\.1\.table: names outbox a second time/);
  const name = await run([{ table: 'a.b.c' }], database);
  assert.equal(name.code, 2, name.stderr);
  assert.match(name.stderr, /listener\.outbox\.0\.table: expected "table" or "schema\.table"/);
  assert.equal(connections, before, 'nothing connected');
});

test('a missing table, a missing column and a wrong column type exit 1 naming table and column; no slot is created', async () => {
  const database = databaseSection(db);
  const missing = await run([{ table: 'public.nope' }], database);
  assert.equal(missing.code, 1, missing.stderr);
  assert.match(missing.stderr, /WAL_OUTBOX_TABLE/);
  assert.match(missing.stderr, /outbox table public\.nope \(listener\.outbox\) does not exist/);

  const column = await run([{ table: 'outbox' }], database);
  assert.equal(column.code, 1, column.stderr);
  assert.match(column.stderr, /outbox table public\.outbox has no column \\?"kafka_key\\?" \(listener\.outbox key\)/);

  const renamed = await run([{ table: 'outbox', key: 'kafka_keyy' }], database);
  assert.match(renamed.stderr, /outbox table public\.outbox has no column \\?"kafka_keyy\\?"/);

  const types = await run([{ table: 'bad_types' }], database);
  assert.equal(types.code, 1, types.stderr);
  assert.match(types.stderr, /outbox table public\.bad_types: column \\?"kafka_header_keys\\?" \(listener\.outbox headerKeys\) is text; it must be text\[\] or varchar\[\]/);

  // A publication made beforehand (never altered by the daemon) that leaves an outbox table out.
  await db.sql(`${GOHARVEST_TABLE.replace('outbox', 'good_outbox')}; CREATE PUBLICATION wl_obx_cfg_mine FOR TABLE bad_types`);
  const unpublished = await run([{ table: 'good_outbox' }], database, 'wl_obx_cfg_mine');
  assert.equal(unpublished.code, 1, unpublished.stderr);
  assert.match(unpublished.stderr, /publication \\?"wl_obx_cfg_mine\\?" does not publish inserts of outbox table public\.good_outbox .*ALTER PUBLICATION \\?"wl_obx_cfg_mine\\?" ADD TABLE \\?"public\\?"\.\\?"good_outbox\\?"/);

  const check = await runCli(['check', '-c', writeConfig({ listener: { slotName: db.slotName('cfg'), publication: 'wl_obx_cfg', outbox: [{ table: 'outbox' }] }, database, publisher: { type: 'stdout', topic: 'wl_obx' } })]);
  assert.match(check.stdout + check.stderr, /listener\.outbox.*outbox table public\.outbox has no column "kafka_key"/);
  assert.notEqual(check.code, 0, 'wal-listener check reports the problem');

  const slots = await db.sql("SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'wl_obx_cfg%'");
  assert.equal(slots.rowCount, 0, 'no slot was created');
});
