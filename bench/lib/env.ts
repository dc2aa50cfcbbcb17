/**
 * What every benchmark uses: a private PostgreSQL 15 cluster (bench/lib/cluster.ts) with one
 * database and one publication FOR ALL TABLES, a private nats-server (JetStream, file storage),
 * and, when asked for, a connection to the machine's RabbitMQ. Slot and LSN helpers.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { connect as amqpConnect, type Channel, type ChannelModel } from 'amqplib';
import type pg from 'pg';
import { startNats, type NatsServer } from '../../test/support/nats.js';
import { createTestDatabase, type TestDatabase } from '../../test/support/postgres.js';
import { RABBIT_URL, sweepStale } from '../../test/support/rabbitmq.js';
import { startPrivateCluster, type PrivateCluster } from './cluster.js';
import type { DaemonLaunch } from './daemon.js';

export const PUBLICATION = 'wal_listener_bench';
/** Prefix of every RabbitMQ exchange and queue the bench declares (swept when older than 10 min). */
export const RABBIT_PREFIX = 'wl_bench_';

export interface BenchEnv {
  cluster: PrivateCluster;
  db: TestDatabase;
  /** A connection to the bench database kept open for the whole run: queries during a timed drain must not start backends. */
  admin: pg.Client;
  nats: NatsServer;
  /** The nats-server process (for its CPU figures). */
  natsPid: number;
  nc: NatsConnection;
  jsm: JetStreamManager;
  /** Opened on first use: the machine's RabbitMQ. */
  rabbit(): Promise<Channel>;
  launch: DaemonLaunch;
  /** A checkout with a built daemon for the baseline-* contenders (`--baseline <dir>`). */
  baseline?: string;
  log(message: string): void;
}

export async function openEnv(options: { launch: DaemonLaunch; baseline?: string; log: (message: string) => void }): Promise<BenchEnv & { close(): Promise<void> }> {
  const cluster = await startPrivateCluster(options.log);
  let db: TestDatabase | undefined;
  let admin: pg.Client | undefined;
  let nats: NatsServer | undefined;
  let nc: NatsConnection | undefined;
  let rabbitModel: Promise<ChannelModel> | undefined;
  let rabbitChannel: Promise<Channel> | undefined;
  const close = async (): Promise<void> => {
    if (rabbitModel) await (await rabbitModel.catch(() => undefined))?.close().catch(() => {});
    await nc?.close().catch(() => {});
    await nats?.stop().catch(() => {});
    await admin?.end().catch(() => {});
    await cluster.destroy();
  };
  try {
    db = await createTestDatabase('wl_bench', { host: cluster.host, port: cluster.port });
    admin = await cluster.client(db.name);
    await admin.query(`CREATE PUBLICATION ${PUBLICATION} FOR ALL TABLES`);
    nats = await startNats();
    nc = await nats.connect();
    const jsm = await jetstreamManager(nc);
    const rabbit = (): Promise<Channel> => {
      rabbitChannel ??= (async () => {
        await sweepStale(RABBIT_PREFIX).catch(() => {});
        rabbitModel = amqpConnect(RABBIT_URL, { clientProperties: { connection_name: 'wal-listener-bench' } });
        const model = await rabbitModel;
        model.on('error', () => {});
        const channel = await model.createChannel();
        channel.on('error', () => {});
        return channel;
      })();
      return rabbitChannel;
    };
    return { ...options, cluster, db, admin, nats, natsPid: findPid((argv) => argv[0]?.endsWith('nats-server') === true && argv.includes(String(nats!.port))), nc, jsm, rabbit, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** The pid of the one process whose command line satisfies `test` (throws when none does). */
export function findPid(test: (argv: string[]) => boolean): number {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean);
      if (test(argv)) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error('process not found');
}

/** The active walsender of a slot, or undefined. */
export async function slotWalsender(env: BenchEnv, slot: string): Promise<number | undefined> {
  const r = await env.admin.query<{ pid: number | null }>('SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1', [slot]);
  return r.rows[0]?.pid ?? undefined;
}

/** Drops a slot, ending its walsender first if one is still attached. */
export async function dropSlot(env: BenchEnv, slot: string): Promise<void> {
  for (let attempt = 0; attempt < 40; attempt++) {
    try {
      await env.admin.query('SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL', [slot]);
      await env.admin.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1', [slot]);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/**
 * The current WAL insert position: after the backlog is written, every contender reads up to here.
 * (Not pg_current_wal_lsn(), the write position, which can still be short of the last commit.)
 */
export async function currentLsn(env: BenchEnv): Promise<string> {
  return (await env.admin.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn')).rows[0]!.lsn;
}

/** Waits until WAL is flushed up to `lsn` (walsenders send only flushed WAL). */
export async function waitFlushed(env: BenchEnv, lsn: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const r = await env.admin.query<{ ok: boolean }>('SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn AS ok', [lsn]);
    if (r.rows[0]!.ok) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`WAL not flushed up to ${lsn} after 10 s`);
}

/** Transactions a slot has decoded so far (pg_stat_replication_slots). */
export async function decodedTxns(env: BenchEnv, slot: string): Promise<number | undefined> {
  const r = await env.admin.query<{ txns: string }>('SELECT total_txns AS txns FROM pg_stat_replication_slots WHERE slot_name = $1', [slot]);
  return r.rows[0] ? Number(r.rows[0].txns) : undefined;
}
