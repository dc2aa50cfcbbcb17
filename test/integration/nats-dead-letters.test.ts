/**
 * Messages NATS will never accept, end to end through the daemon (issue 9 item 4):
 *  - `onReject: deadLetter`: a 2 MB row against a server whose max_payload is 1 MB, and a 16 KB
 *    row against a stream created beforehand with max_msg_size 8 KB. The event lands in
 *    wal_listener.dead_letters with its reason, the next 1,000 changes arrive, nothing is stored
 *    twice; after the limit is raised, `dead-letters replay` delivers it once.
 *  - `onReject: stop` (default): the daemon exits 1 naming table, position and reason, having
 *    confirmed only what came before; started again with the same limit it exits 1 again and
 *    publishes nothing after the poison row.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import YAML from 'yaml';
import { configSchema } from '../../src/config/schema.js';
import type { StoredDeadLetter } from '../../src/pipeline/dead-letters.js';
import { PostgresDeadLetterStore } from '../../src/sources/postgres/dead-letter-store.js';
import { parseLsn } from '../../src/sources/postgres/pgoutput.js';
import { databaseSection, runCli, startDaemon, type DaemonProcess } from '../support/daemon.js';
import { httpGet, metricValue } from '../support/ops.js';
import { readStream, startNats, streamCount, type NatsServer } from '../support/nats.js';
import { freePort, waitFor } from '../support/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

let db: TestDatabase;
const cleanups: (() => Promise<void>)[] = [];
const MiB = 1024 * 1024;

before(async () => {
  db = await createTestDatabase('wl_natsdl');
});

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  await db?.drop();
});

/** A private nats-server with the test's own connection to it. */
class PrivateNats {
  private constructor(
    readonly server: NatsServer,
    public nc: NatsConnection,
  ) {}

  static async start(maxPayload: number): Promise<PrivateNats> {
    const server = await startNats({ maxPayload });
    const broker = new PrivateNats(server, await server.connect());
    cleanups.push(async () => {
      await broker.nc.close();
      await server.stop();
    });
    return broker;
  }

  /** Restarts the server with another max_payload (same store) and reconnects. */
  async restart(maxPayload: number): Promise<void> {
    await this.nc.close();
    await this.server.kill();
    await this.server.restart({ maxPayload });
    this.nc = await this.server.connect();
  }
}

async function currentLsn(): Promise<bigint> {
  return parseLsn((await db.sql<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l);
}

/** The daemon's config, also written to a file for the dead-letters command. */
function daemonConfig(slot: string, table: string, url: string, topic: string, publisher: Record<string, unknown> = {}): { config: Record<string, unknown>; path: string } {
  const config = {
    listener: { slotName: slot, publication: `p_${slot}`, filter: { tables: { [table]: null } } }, // each filter its own publication
    database: databaseSection(db),
    publisher: { type: 'nats', address: url, topic, ackTimeout: '5s', ...publisher },
  };
  const dir = mkdtempSync(join(tmpdir(), 'wl-natsdl-'));
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'config.yml');
  writeFileSync(path, YAML.stringify(config));
  return { config, path };
}

async function start(config: Record<string, unknown>): Promise<DaemonProcess> {
  const daemon = await startDaemon(config);
  cleanups.push(() => daemon.kill());
  return daemon;
}

/** One row with a `size`-byte body, between a small row before and 1,000 rows after (10 transactions). */
async function poisonWorkload(table: string, size: number): Promise<{ beforePoison: bigint }> {
  await db.sql(`INSERT INTO ${table} VALUES (1, 'before')`);
  const beforePoison = await currentLsn();
  await db.sql(`INSERT INTO ${table} VALUES (2, repeat('x', $1::int))`, [size]);
  for (let from = 3; from <= 1_002; from += 100) await db.sql(`INSERT INTO ${table} SELECT g, 'after' FROM generate_series($1::int, $2::int) g`, [from, from + 99]);
  return { beforePoison };
}

/** What wal_listener.dead_letters holds now for the daemon of `slot`, through the daemon's own store. */
async function deadLetters(slot: string): Promise<StoredDeadLetter[]> {
  const store = new PostgresDeadLetterStore(configSchema.parse({ listener: { slotName: slot }, database: databaseSection(db), publisher: { type: 'nats', topic: 'unused' } }).database, slot);
  try {
    return await store.list();
  } finally {
    await store.close();
  }
}

/**
 * The row of `size` bytes is dead-lettered with its reason, the rows around it arrive once each,
 * the slot is confirmed past all of it, and a replay after `raiseLimit` delivers it once.
 */
async function deadLetterCase(o: { table: string; topic: string; size: number; broker: PrivateNats; reason: RegExp; afterStart?(): Promise<void>; raiseLimit(): Promise<void> }): Promise<void> {
  const { table, topic, size, broker } = o;
  await db.sql(`CREATE TABLE ${table} (id int PRIMARY KEY, body text NOT NULL)`);
  const slot = db.slotName(table);
  const promPort = await freePort();
  const { config, path } = daemonConfig(slot, table, broker.server.url, topic, { onReject: 'deadLetter' });
  const daemon = await start({ ...config, monitoring: { promAddr: `127.0.0.1:${promPort}` } });
  await o.afterStart?.();
  await poisonWorkload(table, size);
  await waitFor('the 1,001 other rows in the stream', async () => (await streamCount(broker.nc, topic)) >= 1_001, 60_000);
  const end = await currentLsn();
  await waitFor('the slot confirmed past the dead letter', async () => parseLsn((await db.confirmedFlush(slot)) ?? '0/0') >= end, 30_000);
  await new Promise((r) => setTimeout(r, 500)); // a re-sent copy would show now

  const stored = await readStream(broker.nc, topic);
  const ids = stored.map((m) => (m.json.data as { id: number }).id);
  assert.equal(stored.length, 1_001, 'no duplicate stored');
  assert.deepEqual([...ids].sort((a, b) => a - b), [1, ...Array.from({ length: 1_000 }, (_, i) => i + 3)], 'every row but the rejected one, once');
  const [letter, ...more] = await deadLetters(slot);
  assert.equal(more.length, 0, 'one dead letter');
  assert.ok(letter);
  const { message } = letter;
  const event = JSON.parse(String(message.payload)) as { id: string; data: { id: number; body: string } };
  assert.deepEqual([message.schema, message.table, message.action, letter.broker, event.data.id, event.id], ['public', table, 'INSERT', 'nats', 2, message.id]);
  assert.equal(event.data.body.length, size, 'stored whole');
  assert.match(letter.reason, o.reason);
  // Stored without the memory it lay in (the chunk's lease): a few hundred bytes of fields.
  const row = (await db.sql<{ lease: boolean; bytes: number }>("SELECT message ? 'lease' AS lease, octet_length(message::text) AS bytes FROM wal_listener.dead_letters")).rows[0]!;
  assert.equal(row.lease, false);
  assert.ok(row.bytes < 2_000, `message fields of ${row.bytes} bytes`);
  assert.ok(daemon.logs().some((r) => r.code === 'WAL_PUBLISH_REJECTED' && r.level === 'error' && r.id === message.id), 'an error log names the rejected event');
  const metrics = (await httpGet(promPort, '/metrics')).body;
  assert.equal(metricValue(metrics, 'problematic_events_total', { kind: 'rejected' }), 1);
  assert.equal(await daemon.stop(), 0);

  // After raising the limit, replay delivers it once and removes it.
  await o.raiseLimit();
  const replayed = await runCli(['dead-letters', 'replay', '-c', path, '--all']);
  assert.equal(replayed.code, 0, replayed.stderr);
  assert.match(replayed.stdout, /1 of 1 replayed/);
  const again = await runCli(['dead-letters', 'replay', '-c', path, '--all']);
  assert.equal(again.code, 0, again.stderr);
  const final = await readStream(broker.nc, topic);
  const copies = final.filter((m) => m.msgId === message.id);
  assert.equal(copies.length, 1, 'the replayed event is in the stream once');
  assert.equal((copies[0]!.json.data as { body: string }).body.length, size);
  assert.equal(final.length, 1_002);
  assert.deepEqual(await deadLetters(slot), [], 'removed once acknowledged');
}

test('onReject deadLetter: a 2 MB row against max_payload 1 MB is stored with its reason, the next 1,000 changes arrive, replay delivers it once', async () => {
  const broker = await PrivateNats.start(MiB);
  await deadLetterCase({
    table: 'big_rows',
    topic: 'dl_payload',
    size: 2 * MiB,
    broker,
    reason: /message of \d+ bytes exceeds the \d+-byte limit nats announced/,
    raiseLimit: () => broker.restart(4 * MiB),
  });
});

test('onReject deadLetter: a 16 KB row against a stream created with max_msg_size 8 KB is stored, the next 1,000 changes arrive, replay delivers it once', async () => {
  const broker = await PrivateNats.start(MiB);
  const topic = 'dl_stream';
  const jsm = await jetstreamManager(broker.nc);
  await jsm.streams.add({ name: topic, subjects: [`${topic}.>`], max_msg_size: 8 * 1024, duplicate_window: 3_600 * 1e9 });
  await deadLetterCase({
    table: 'wide_rows',
    topic,
    size: 16 * 1024,
    broker,
    reason: /message of \d+ bytes exceeds the \d+-byte limit nats announced/,
    raiseLimit: async () => {
      await jsm.streams.update(topic, { max_msg_size: 64 * 1024 });
    },
  });
});

test('onReject deadLetter: the stream\'s max_msg_size lowered while the daemon runs: JetStream\'s refusal (10054) after sending finds the row, stored, the rest arrives', async () => {
  const broker = await PrivateNats.start(MiB);
  const topic = 'dl_lowered';
  const jsm = await jetstreamManager(broker.nc);
  await jsm.streams.add({ name: topic, subjects: [`${topic}.>`], max_msg_size: 64 * 1024, duplicate_window: 3_600 * 1e9 });
  await deadLetterCase({
    table: 'lowered_rows',
    topic,
    size: 16 * 1024,
    broker,
    reason: /JetStream rejected a message: message size exceeds maximum allowed .*err_code 10054/,
    // The daemon read 64 KB when it connected; the refusal now comes from JetStream, after sending.
    afterStart: async () => {
      await jsm.streams.update(topic, { max_msg_size: 8 * 1024 });
    },
    raiseLimit: async () => {
      await jsm.streams.update(topic, { max_msg_size: 64 * 1024 });
    },
  });
});

test('onReject stop: exit 1 naming table, position and reason, only what came before confirmed; the same limit again exits 1 and publishes nothing after it', async () => {
  const broker = await PrivateNats.start(MiB);
  const table = 'poison';
  const topic = 'dl_stop';
  await db.sql(`CREATE TABLE ${table} (id int PRIMARY KEY, body text NOT NULL)`);
  const slot = db.slotName(table);
  const { config } = daemonConfig(slot, table, broker.server.url, topic);
  const daemon = await start(config);
  const atStart = await currentLsn();
  const { beforePoison } = await poisonWorkload(table, 2 * MiB);
  assert.equal(await exitCode(daemon), 1);

  const fatal = daemon.logs().find((r) => r.level === 'fatal');
  assert.ok(fatal, 'a fatal log line');
  const text = String(fatal.err);
  assert.equal(fatal.code, 'WAL_PUBLISH_REJECTED');
  assert.match(text, /public\.poison/, 'names the table');
  assert.match(text, /exceeds the \d+-byte limit nats announced/, 'gives the reason');
  const position = /LSN ([0-9A-F]+\/[0-9A-F]+)/.exec(text)?.[1];
  assert.ok(position !== undefined && parseLsn(position) > beforePoison, `names the position (${position})`);
  const confirmed = parseLsn((await db.confirmedFlush(slot)) ?? '0/0');
  assert.ok(confirmed > atStart && confirmed <= beforePoison, 'confirmed the row before, nothing from the poison row on');
  const published = await readStream(broker.nc, topic);
  assert.deepEqual(published.map((m) => (m.json.data as { id: number }).id), [1], 'nothing after the poison row was published');

  // Started again with the same limit: the same refusal, no crash loop that lets later changes through.
  const second = await startDaemon(config, { waitForStreaming: false });
  cleanups.push(() => second.kill());
  assert.equal(await exitCode(second), 1);
  assert.ok(second.logs().some((r) => r.level === 'fatal' && r.code === 'WAL_PUBLISH_REJECTED'));
  assert.equal(await streamCount(broker.nc, topic), 1, 'still nothing after the poison row');
  assert.equal(parseLsn((await db.confirmedFlush(slot)) ?? '0/0'), confirmed, 'the confirmed position did not move');
});

/** The daemon's exit code; fails after 60 s. */
async function exitCode(daemon: DaemonProcess): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the daemon did not exit:\n${daemon.stderr().slice(-3000)}`)), 60_000);
  });
  try {
    return await Promise.race([daemon.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
