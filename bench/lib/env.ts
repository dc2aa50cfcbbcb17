/**
 * What every workload uses: a private database on the machine's PostgreSQL with one publication,
 * a private nats-server (JetStream, file storage), and helpers for slots, LSNs and streams.
 * Reuses the test suite's launchers (test/support), so benchmarks and tests start services alike.
 */
import { spawn } from 'node:child_process';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import pg from 'pg';
import { startNats, type NatsServer } from '../../test/support/nats.js';
import { createTestDatabase, type TestDatabase } from '../../test/support/postgres.js';
import { track } from './children.js';
import type { DaemonLaunch } from './daemon.js';
import { nowMs } from './stats.js';

export const PUBLICATION = 'wal_listener_bench';
export const PG_RECVLOGICAL = '/usr/bin/pg_recvlogical';

export interface BenchEnv {
  db: TestDatabase;
  nats: NatsServer;
  nc: NatsConnection;
  jsm: JetStreamManager;
  launch: DaemonLaunch;
  /** Row counts are multiplied by this (1 for the real figures; smaller to try the bench quickly). */
  scale: number;
  liveSeconds: number;
  liveRate: number;
  log(message: string): void;
}

export async function openEnv(options: Pick<BenchEnv, 'launch' | 'scale' | 'liveSeconds' | 'liveRate' | 'log'>): Promise<BenchEnv & { close(): Promise<void> }> {
  const db = await createTestDatabase('wl_bench');
  let nats: NatsServer | undefined;
  let nc: NatsConnection | undefined;
  const close = async (): Promise<void> => {
    await nc?.close().catch(() => {});
    await nats?.stop().catch(() => {});
    await db.drop();
  };
  try {
    await db.sql(`CREATE PUBLICATION ${PUBLICATION} FOR ALL TABLES`);
    nats = await startNats();
    nc = await nats.connect();
    const jsm = await jetstreamManager(nc);
    return { ...options, db, nats, nc, jsm, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** The table every workload writes: ~320-byte events (int8, text, numeric, timestamptz, jsonb, bool). */
export async function createBenchTable(env: BenchEnv, table: string): Promise<void> {
  await env.db.sql(`CREATE TABLE ${table} (
    id bigint PRIMARY KEY,
    email text NOT NULL,
    amount numeric(12,2),
    created_at timestamptz NOT NULL DEFAULT now(),
    profile jsonb,
    active boolean
  )`);
}

/** SELECT list producing one row of the bench table from the integer expression `g`. */
export function rowExpression(g: string): string {
  return `${g}, 'user' || ${g} || '@example.com', ${g} * 1.25, now(), jsonb_build_object('tag', ${g} % 7), ${g} % 2 = 0`;
}

/** Creates a pgoutput slot now (before the backlog is written, so it will read all of it). */
export async function createSlot(env: BenchEnv, slot: string): Promise<void> {
  await env.db.sql(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
}

export async function dropSlot(env: BenchEnv, slot: string): Promise<void> {
  for (let attempt = 0; attempt < 40; attempt++) {
    try {
      await env.db.sql(
        `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`,
        [slot],
      );
      await env.db.sql(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, [slot]);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/**
 * The current WAL insert position; after the backlog is written, both slots read up to here.
 * (Not pg_current_wal_lsn(): that is the write position, which can still be short of the last
 * asynchronous commit; pg_recvlogical would stop before the backlog's end.)
 */
export async function currentLsn(env: BenchEnv): Promise<string> {
  return (await env.db.sql<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn')).rows[0]!.lsn;
}

export interface SlotStats {
  /** Transactions decoded and sent to the output plugin. */
  txns: number;
  bytes: number;
  spillBytes: number;
}

/** Decoding statistics of a slot (pg_stat_replication_slots, PostgreSQL 14+). */
export async function slotStats(env: BenchEnv, slot: string): Promise<SlotStats | undefined> {
  const r = await env.db.sql<{ txns: string; bytes: string; spill: string }>(
    'SELECT total_txns AS txns, total_bytes AS bytes, spill_bytes AS spill FROM pg_stat_replication_slots WHERE slot_name = $1',
    [slot],
  );
  const row = r.rows[0];
  return row ? { txns: Number(row.txns), bytes: Number(row.bytes), spillBytes: Number(row.spill) } : undefined;
}

/** Waits until WAL is flushed up to `lsn` (walsenders send only flushed WAL; async commits lag). */
export async function waitFlushed(env: BenchEnv, lsn: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const r = await env.db.sql<{ ok: boolean }>('SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn AS ok', [lsn]);
    if (r.rows[0]!.ok) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`WAL not flushed up to ${lsn} after 10 s`);
}

/** Runs SQL on its own connection with settings for writing a backlog fast. */
export async function writeBacklog(env: BenchEnv, statements: string[]): Promise<void> {
  const client = new pg.Client({ host: env.db.host, port: env.db.port, user: env.db.user, database: env.db.name });
  await client.connect();
  try {
    // The backlog is written before anything is timed: no need to wait for an fsync per commit.
    await client.query('SET synchronous_commit = off');
    for (const statement of statements) await client.query(statement);
  } finally {
    await client.end();
  }
}

export interface RawDrain {
  /** From the "starting log streaming" line (just before START_REPLICATION) to the exit. */
  seconds: number;
  /** From spawn to exit, connection setup included (information). */
  totalSeconds: number;
}

/**
 * Drains `slot` up to `endLsn` with pg_recvlogical (raw pgoutput to /dev/null): the ceiling the
 * daemon is measured against. Timed like the daemon: from the moment it starts streaming (its -v
 * line "starting log streaming at ...", printed right before START_REPLICATION) to its exit at
 * --endpos, so neither side pays for process start or connection setup.
 */
export async function drainWithRecvlogical(env: BenchEnv, slot: string, endLsn: string): Promise<RawDrain> {
  const args = [
    '-h', env.db.host, '-p', String(env.db.port), '-U', env.db.user, '-d', env.db.name,
    '--slot', slot, '--start', '-o', 'proto_version=1', '-o', `publication_names=${PUBLICATION}`,
    '--endpos', endLsn, '--no-loop', '-v', '-f', '/dev/null',
  ];
  const spawned = performance.now();
  let streamingAt: number | undefined;
  const child = spawn(PG_RECVLOGICAL, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  track(child);
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    if (streamingAt === undefined && (stderr + d).includes('starting log streaming')) streamingAt = performance.now();
    stderr += d;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', resolve);
  }).finally(() => clearTimeout(timer));
  const exitedAt = performance.now();
  if (code !== 0) throw new Error(`pg_recvlogical exited with ${code}: ${stderr.trim()}`);
  return { seconds: (exitedAt - (streamingAt ?? spawned)) / 1000, totalSeconds: (exitedAt - spawned) / 1000 };
}

/** Messages stored in a JetStream stream (0 while it does not exist). */
export async function storedCount(env: BenchEnv, stream: string): Promise<number> {
  try {
    return (await env.jsm.streams.info(stream)).state.messages;
  } catch {
    return 0;
  }
}

/**
 * Polls the stream every `intervalMs` until it holds `count` messages; returns our clock (epoch
 * ms) at the first poll that saw them. Each stored message was acknowledged to the daemon.
 */
export async function waitForStored(env: BenchEnv, stream: string, count: number, timeoutMs: number, intervalMs = 20): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let seen = 0;
  while (Date.now() < deadline) {
    seen = await storedCount(env, stream);
    if (seen >= count) return nowMs();
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`stream ${stream} holds ${seen} of ${count} messages after ${timeoutMs} ms`);
}

/** Average bytes JetStream stores per message (payload, subject and headers). */
export async function bytesPerMessage(env: BenchEnv, stream: string): Promise<number | undefined> {
  try {
    const { state } = (await env.jsm.streams.info(stream));
    return state.messages > 0 ? state.bytes / state.messages : undefined;
  } catch {
    return undefined;
  }
}

export async function deleteStream(env: BenchEnv, stream: string): Promise<void> {
  await env.jsm.streams.delete(stream).catch(() => false);
}
