/**
 * High availability (issue 13 #4), real PostgreSQL and a private JetStream: two daemons with the
 * same config, one leads (advisory lock keyed by the slot), the other waits as a standby.
 *  - kill -9 of the leader mid-stream, five times in a row: a standby streams within 10 s each
 *    time (the takeover times are printed), no change lost, none twice in the stream;
 *  - the leader's database connections cut (its lock backend and its walsender terminated): it is
 *    fenced and goes back to standby, the other takes over; then a clean SIGTERM hands over again;
 *    /ready says "standby" and wal_listener_leader is 0 on the standby, 1 on the leader; `status`
 *    shows the leader and one standby.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { databaseSection, runCli, startDaemon, writeConfig, type DaemonProcess, type StartOptions } from '../support/daemon.js';
import { readStream, startNats, streamCount, type NatsServer } from '../support/nats.js';
import { freePort, waitFor } from '../support/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

let db: TestDatabase;
let nats: NatsServer;
let nc: NatsConnection;
const daemons = new Set<DaemonProcess>();
const writers = new Set<Writer>();

before(async () => {
  db = await createTestDatabase('wl_ha');
  nats = await startNats();
  nc = await nats.connect();
});

after(async () => {
  for (const w of writers) await w.stop().catch(() => {});
  for (const d of daemons) await d.kill();
  await nc?.close();
  await nats?.stop();
  await db?.drop();
});

const STANDBY = 'standby: another daemon leads; waiting for the lock';

function haConfig(table: string, topic: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const slot = db.slotName(table);
  return {
    listener: { slotName: slot, publication: `p_${slot}`, refreshConnection: '2s', filter: { tables: { [table]: null } }, ...extra },
    database: databaseSection(db),
    publisher: { type: 'nats', address: nats.url, topic, ackTimeout: '2s' },
  };
}

async function start(config: Record<string, unknown>, options: StartOptions = {}): Promise<DaemonProcess> {
  const d = await startDaemon(config, options);
  daemons.add(d);
  void d.exited.then(() => daemons.delete(d));
  return d;
}

async function standby(config: Record<string, unknown>): Promise<DaemonProcess> {
  const d = await start(config, { waitForStreaming: false });
  await d.waitForLog(STANDBY, 60_000);
  return d;
}

/** Inserts one row per transaction, about 100 a second, until stopped; knows every committed id. */
class Writer {
  private next = 1;
  private running = true;
  private readonly done: Promise<void>;

  constructor(table: string) {
    writers.add(this);
    this.done = (async () => {
      const client = new pg.Client({ host: db.host, port: db.port, user: db.user, password: db.password, database: db.name });
      await client.connect();
      while (this.running) {
        await client.query(`INSERT INTO ${table} VALUES ($1)`, [this.next]);
        this.next++;
        await new Promise((r) => setTimeout(r, 10));
      }
      await client.end();
    })();
  }

  /** Stops writing; resolves with the number of committed rows (ids 1..n). */
  async stop(): Promise<number> {
    this.running = false;
    writers.delete(this);
    await this.done;
    return this.next - 1;
  }
}

/** Waits until the stream holds every row, then checks each id once (no loss, no duplicate). */
async function assertExactlyOnce(topic: string, rows: number): Promise<void> {
  await waitFor(`${rows} messages in ${topic}`, async () => (await streamCount(nc, topic)) >= rows, 30_000, 200);
  const messages = await readStream(nc, topic);
  const ids = messages.map((m) => (m.json.data as { id: number }).id);
  assert.equal(new Set(ids).size, rows, 'every committed row once');
  assert.equal(messages.length, rows, 'no duplicate in the stream');
  assert.deepEqual([...new Set(ids)].sort((a, b) => a - b), Array.from({ length: rows }, (_, i) => i + 1));
  assert.equal(new Set(messages.map((m) => m.msgId)).size, rows, 'message ids are unique');
}

async function grows(topic: string, by: number): Promise<void> {
  const from = await streamCount(nc, topic);
  await waitFor(`${by} more messages in ${topic}`, async () => (await streamCount(nc, topic)) >= from + by, 30_000, 50);
}

test('kill -9 of the leader mid-stream, five times: a standby streams within 10 s, no change lost, none twice in JetStream', async () => {
  const table = 'kill';
  const topic = 'wl_ha_kill';
  await db.sql(`CREATE TABLE ${table} (id int PRIMARY KEY)`);
  const config = haConfig(table, topic);
  let leader = await start(config);
  assert.ok(leader.logs().some((r) => r.msg === 'leader acquired'));
  let waiting = await standby(config);
  const writer = new Writer(table);
  const takeovers: number[] = [];
  for (let run = 1; run <= 5; run++) {
    await grows(topic, 30);
    const killedAt = Date.now();
    await leader.kill();
    const streaming = await waiting.waitForLog('replication streaming', 20_000);
    takeovers.push(Date.parse(String(streaming.time)) - killedAt);
    leader = waiting;
    if (run < 5) waiting = await standby(config);
  }
  const rows = await writer.stop();
  console.log(`# takeover after kill -9 (kill to "replication streaming" on the standby), ms: ${takeovers.join(', ')}; ${rows} rows`);
  for (const ms of takeovers) assert.ok(ms < 10_000, `takeover within 10 s (${takeovers.join(', ')} ms)`);
  await assertExactlyOnce(topic, rows);
  await leader.stop();
});

/** The backends of the leader: its lock session and its walsender. */
async function leaderBackends(slot: string): Promise<number[]> {
  const rows = await db.sql<{ pid: number }>(
    `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
     UNION SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`,
    [slot],
  );
  return rows.rows.map((r) => r.pid);
}

async function probe(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
}

const leaderGauge = async (port: number): Promise<number> => Number(/^wal_listener_leader(?:{[^}]*})? (\d+)$/m.exec((await probe(port, '/metrics')).body)?.[1]);

test('cut database connections fence the leader and the standby takes over; SIGTERM hands over again; no change lost', async () => {
  const table = 'cut';
  const topic = 'wl_ha_cut';
  await db.sql(`CREATE TABLE ${table} (id int PRIMARY KEY)`);
  const config = haConfig(table, topic);
  const slot = (config.listener as { slotName: string }).slotName;
  const [portA, portB] = [await freePort(), await freePort()];
  const withPort = (port: number) => ({ ...config, listener: { ...(config.listener as object), serverPort: port }, monitoring: { promAddr: `:${port}` } });
  const a = await start(withPort(portA));
  const b = await standby(withPort(portB));
  assert.deepEqual(await probe(portB, '/ready'), { status: 200, body: 'standby\n' });
  assert.equal(await leaderGauge(portB), 0);
  assert.equal(await leaderGauge(portA), 1);
  assert.equal((await probe(portA, '/ready')).status, 200);
  const status = await runCli(['status', '-c', writeConfig(config), '--json']);
  assert.equal(status.code, 0, status.stderr);
  const daemonsSeen = (JSON.parse(status.stdout) as { daemons: { leader: { pid: number } | null; standbys: number } }).daemons;
  assert.ok(daemonsSeen.leader !== null && daemonsSeen.standbys === 1, `status sees the leader and one standby: ${JSON.stringify(daemonsSeen)}`);

  const writer = new Writer(table);
  await grows(topic, 30);
  const pids = await leaderBackends(slot);
  assert.equal(pids.length, 2, `the leader's lock backend and walsender: ${pids.join(', ')}`);
  await db.sql('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid', [pids]);
  const fenced = await a.waitForLog('leader fenced', 10_000);
  assert.match(String(fenced.reason), /lock connection/);
  await b.waitForLog('leader acquired', 15_000);
  await b.waitForLog('replication streaming', 15_000);
  await waitFor('the fenced daemon is a standby again', async () => (await probe(portA, '/ready')).body === 'standby\n', 15_000);
  assert.equal(await leaderGauge(portA), 0);
  assert.equal(await leaderGauge(portB), 1);
  assert.ok(a.logs().some((r) => r.msg === 'stopped reading and publishing (fenced); the next leader re-sends what was not confirmed'));
  await grows(topic, 30);

  // A clean stop of the leader hands over: it drains, confirms, releases the lock.
  const acquired = a.logs().filter((r) => r.msg === 'leader acquired').length;
  assert.equal(await b.stop(), 0);
  assert.ok(b.logs().some((r) => r.msg === 'leader revoked'), 'leader revoked logged');
  await waitFor('the other daemon leads again', () => a.logs().filter((r) => r.msg === 'leader acquired').length > acquired, 15_000);
  await waitFor('and streams', () => a.logs().filter((r) => r.msg === 'replication streaming').length >= 2, 15_000);
  await grows(topic, 30);
  const rows = await writer.stop();
  await assertExactlyOnce(topic, rows);
  assert.equal(await a.stop(), 0);
});
