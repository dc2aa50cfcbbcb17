/**
 * A backfill while transactions are in the WAL, and streamed to the daemon, before other sessions
 * can see them (DESIGN.md "Snapshots"). PostgreSQL makes a commit visible slightly after writing
 * it; a chunk read in that gap would see the old row while the stream has already passed the
 * change, and publishing that row after the change would leave the consumer with the old values.
 *
 * Here the gap is made long on purpose, for real: an embedded PostgreSQL 18 has a synchronous
 * standby (pg_recvlogical on a slot of its own, application_name `lagger`, reporting every second)
 * that the writers' commits wait for. A writer's transaction is written, streamed to the daemon
 * and published, and stays invisible to the backfill's reads for about a second, and for as long
 * as a test keeps the lagger stopped (SIGSTOP). Everything else in the database commits locally
 * (`synchronous_commit = local`), the daemon's backfill included.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import { startEmbeddedPostgres, type EmbeddedServer } from '../../scripts/embedded-postgres.js';
import { KEYS_KEPT } from '../../src/sources/postgres/backfiller.js';
import { databaseSection, startDaemon, writeConfig, type DaemonProcess } from '../support/daemon.js';
import { readStream, startNats, type NatsServer } from '../support/nats.js';
import { waitFor } from '../support/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import { backfillRow, createRowsTable, requestBackfill, startWriters, TableModel, waitConfirmed, type Writers } from '../support/snapshot-workload.js';

const ROWS = 2_000;
let server: EmbeddedServer;
let db: TestDatabase;
let nats: NatsServer;
let nc: NatsConnection;
let lagger: ChildProcess | undefined;
let daemon: DaemonProcess | undefined;

/** pg_recvlogical of the machine's PostgreSQL (the embedded package has only the server). */
function pgRecvlogical(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  const found = versions.map((v) => `${root}/${v}/bin/pg_recvlogical`).find((p) => existsSync(p));
  if (!found) throw new Error(`this test needs pg_recvlogical (PostgreSQL's client programs) under ${root}/<version>/bin`);
  return found;
}

before(async () => {
  [server, nats] = await Promise.all([startEmbeddedPostgres(), startNats()]);
  nc = await nats.connect();
  db = await createTestDatabase('wl_bfvis', server);
  await db.sql(`ALTER DATABASE ${db.name} SET synchronous_commit = local`);
  await db.sql("SELECT pg_create_logical_replication_slot('lagger', 'test_decoding')");
  const conninfo = `host=${server.host} port=${server.port} user=${server.user} password=${server.password} dbname=${db.name} application_name=lagger`;
  lagger = spawn(pgRecvlogical(), ['-d', conninfo, '-S', 'lagger', '--start', '-f', '-', '--status-interval', '1', '--fsync-interval', '0'], { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitFor('the lagger streaming', async () => (await db.sql("SELECT 1 FROM pg_stat_replication WHERE application_name = 'lagger'")).rowCount === 1, 10_000, 100);
  await db.sql("ALTER SYSTEM SET synchronous_standby_names = 'lagger'");
  await db.sql('SELECT pg_reload_conf()');
  await db.sql('CREATE TABLE probe (n int)');
  await waitFor('a commit waiting for the lagger', async () => {
    const started = Date.now();
    await db.sql('SET synchronous_commit = on; INSERT INTO probe VALUES (1)');
    return Date.now() - started >= 300;
  }, 10_000, 100);
});

after(async () => {
  await daemon?.kill();
  thawLagger();
  lagger?.kill();
  await nc?.close();
  await nats?.stop();
  await server?.destroy();
});

const thawLagger = (): void => void lagger?.kill('SIGCONT');

/**
 * The writers stop, and their last transactions are held invisible while `meanwhile` runs: the
 * lagger stops reporting (SIGSTOP), so those commits are in the WAL, streamed, and not visible.
 */
async function holdLastWrites(writers: Writers, meanwhile: () => Promise<void>): Promise<void> {
  lagger!.kill('SIGSTOP');
  const stopping = writers.stop();
  try {
    await meanwhile();
  } finally {
    thawLagger();
    await stopping;
  }
}

/** A table of `rows` rows and a daemon streaming it to NATS. */
async function streamTable(table: string, rows = ROWS): Promise<{ config: Record<string, unknown>; slot: string; topic: string }> {
  await createRowsTable(db, table, rows);
  const slot = db.slotName(table);
  const topic = `wl_bfvis_${table}`;
  const config = {
    listener: { slotName: slot, publication: topic, filter: { tables: { [`public.${table}`]: null } } },
    database: databaseSection(db),
    publisher: { type: 'nats', address: nats.url, topic },
  };
  daemon = await startDaemon(config);
  return { config, slot, topic };
}

/** Requests a backfill of `table` in chunks of `size` (20 unless told); returns its id. */
const requestChunks = (config: Record<string, unknown>, table: string, size = 20): Promise<string> => requestBackfill(writeConfig(config), `public.${table}`, '--chunk', String(size));

const backfillStatus = async (id: string): Promise<string | undefined> => (await backfillRow(db, id))?.status;
const backfillDone = async (id: string): Promise<void> => {
  await waitFor('backfill done', async () => (await backfillStatus(id)) === 'done', 60_000, 100);
};
const backfillRows = async (id: string): Promise<number> => Number((await backfillRow(db, id))?.rows ?? 0);

/** Once everything written is confirmed: the consumer, applying the stream in order, has exactly the table. */
async function assertConsumerHasTable(table: string, slot: string, topic: string): Promise<void> {
  await waitConfirmed(db, slot);
  const m = new TableModel();
  for (const message of await readStream(nc, topic)) m.apply(message.json, table, message.seq);
  await m.assertEquals(db, table);
  assert.equal(await daemon!.stop(), 0);
  daemon = undefined;
}

test('rows changed by transactions still invisible to later chunks\' reads are not published with their old values', async () => {
  const { config, slot, topic } = await streamTable('vis_t');
  const writers = await startWriters(db, 'vis_t', 16, ROWS, 'SET synchronous_commit = on');
  try {
    await waitFor('the writers committing', () => writers.count() >= 16, 10_000, 50);
    const id = await requestChunks(config, 'vis_t');
    await waitFor('backfill under way', async () => (await backfillRows(id)) >= 100, 30_000, 50);
    // The writers' last transactions are streamed (many inside one chunk's window) and stay invisible
    // while the backfill goes on over the rows they changed; no later change hides an old row.
    await holdLastWrites(writers, () => delay(1_500));
    await backfillDone(id);
  } finally {
    await writers.stop();
  }
  await assertConsumerHasTable('vis_t', slot, topic);
});

test('a backfill that starts while transactions the stream already passed are invisible reads its first chunk again', async () => {
  const { config, slot, topic } = await streamTable('first_t');
  // Writers on the first chunk's rows only (ids up to 20).
  const writers = await startWriters(db, 'first_t', 16, 18, 'SET synchronous_commit = on');
  try {
    await waitFor('the writers committing', () => writers.count() >= 16, 10_000, 50);
    let id = '';
    await holdLastWrites(writers, async () => {
      await delay(300);
      await waitConfirmed(db, slot); // the daemon has passed the writers' last transactions
      id = await requestChunks(config, 'first_t');
      await waitFor('backfill running', async () => (await backfillStatus(id)) === 'running', 30_000, 50);
      await delay(1_000); // the first chunk is read, and read again, while they are invisible
    });
    await backfillDone(id);
  } finally {
    await writers.stop();
  }
  await assertConsumerHasTable('first_t', slot, topic);
});

test('a transaction changing more rows than the backfill keeps keys for, still invisible to reads, has their chunks read again', async () => {
  const rows = KEYS_KEPT + 2_000;
  const { config, slot, topic } = await streamTable('large_t', rows);
  const id = await requestChunks(config, 'large_t', 50);
  await waitFor('backfill under way', async () => (await backfillRows(id)) >= 200, 30_000, 50);
  // One UPDATE of every row, committed while the lagger is stopped: streamed (more keys than are
  // kept, so it is known by xid only) and invisible to the chunks read meanwhile.
  lagger!.kill('SIGSTOP');
  const client = await db.client();
  let update: Promise<unknown> | undefined;
  try {
    update = client.query('SET synchronous_commit = on; UPDATE large_t SET v = v + 1');
    await daemon!.waitForLog('backfill: more changed rows of the table than the backfill keeps keys for; their transactions are kept by xid, and a chunk read before one is visible is read again', 30_000);
    await delay(1_500); // chunks read, and read again, while it is invisible
  } finally {
    thawLagger();
    await update;
    await client.end();
  }
  await backfillDone(id);
  await assertConsumerHasTable('large_t', slot, topic);
});
