/**
 * The contenders: everything that drains a backlog from its own slot. Each is created afresh for
 * one workload in one round; `prepare` runs before the backlog is written, `drain` when its turn
 * comes, `cleanup` always (it ends the processes and connections it started).
 *
 *   floor                   Node, `pg` replication connection, reads CopyData, sends status
 *   floor-stdout            the floor, also writing each row change's message to stdout as it
 *                           came (twice for (d)): what reading and writing the bytes cost
 *   pg_recvlogical          PostgreSQL's client, pgoutput to /dev/null, stops at the end LSN
 *   postgres-subscribe      porsager's `postgres`, sql.subscribe, JSON of every row
 *   pg-logical-replication  its PgoutputPlugin, JSON of every row, auto-acknowledge
 *   daemon-stdout|nats|rabbitmq  the daemon as built (bench/lib/daemon-contenders.ts)
 */
import { join } from 'node:path';
import { LineChild } from './children.js';
import { decodedTxns, PUBLICATION, slotWalsender, type BenchEnv } from './env.js';
import { pollUntil, Window, type DrainFigures } from './measure.js';
import { PG_BIN } from './cluster.js';
import type { PeerContenderName } from './names.js';
import { alive, readCpu, readMemory } from './proc.js';
import { pauseWalsender, resumeWalsender } from './walsender.js';
import type { WorkloadSpec } from './workloads.js';

export interface DrainContext {
  env: BenchEnv;
  workload: WorkloadSpec;
  round: number;
  /** Row changes in the backlog. */
  rows: number;
  txns: number;
  /** WAL insert position right after the backlog. */
  endLsn: string;
  /** The contender's own slot, made before the backlog (postgres-subscribe makes its own). */
  slot: string;
  /** Unique per workload and round; for topics, streams and file names. */
  tag: string;
  timeoutMs: number;
  /** Directory of the transpiled peer scripts (bench/lib/peers.ts). */
  peerDir: string;
}

export interface Contender {
  readonly name: string;
  /** Whether the bench makes a slot for it (postgres-subscribe makes a temporary one itself). */
  readonly usesSlot: boolean;
  prepare?(ctx: DrainContext): Promise<void>;
  drain(ctx: DrainContext): Promise<DrainFigures>;
  cleanup(): Promise<void>;
}

function peerArgs(ctx: DrainContext, script: string, extra: { echo?: number } = {}): string[] {
  const { env } = ctx;
  const options = { host: env.cluster.host, port: env.cluster.port, user: env.cluster.user, database: env.db.name, slot: ctx.slot, publication: PUBLICATION, rows: ctx.rows, ...extra };
  return [join(ctx.peerDir, script), JSON.stringify(options)];
}

const walsenderOf = (line: string): number => Number(line.split(' ')[1]);

/**
 * A peer process that starts streaming from the bench's slot as soon as it runs. `echo`: the
 * floor writing to stdout (floor-stdout), read here as the daemon's stdout is (its bench lines come
 * on stderr then).
 */
class StreamingPeer implements Contender {
  readonly usesSlot = true;
  private child: LineChild | undefined;

  constructor(readonly name: string, private readonly script: string, private readonly echo = false) {}

  async drain(ctx: DrainContext): Promise<DrainFigures> {
    let stdoutBytes = 0;
    const extra = this.echo ? { echo: ctx.workload.echoCopies } : {};
    const onStdout = this.echo ? { onStdout: (chunk: Buffer) => void (stdoutBytes += chunk.length) } : {};
    const child = (this.child = new LineChild(process.execPath, peerArgs(ctx, this.script, extra), onStdout));
    const walsender = walsenderOf((await child.waitLine(/^ready \d+$/, 30_000, 'ready line')).text);
    const window = new Window((await child.waitLine(/^streaming$/, 30_000, 'streaming line')).at, child.pid);
    const done = await child.waitLine(/^done /, ctx.timeoutMs, `done (${ctx.rows} rows)`);
    const figures = window.end(done.at, walsender);
    if (this.echo) {
      const written = Number(done.text.split(' ')[2]);
      figures.notes.push(`wrote ${Math.round(written / ctx.rows).toLocaleString('en-US')} bytes per row to stdout (the bench read ${stdoutBytes.toLocaleString('en-US')} of ${written.toLocaleString('en-US')} by then)`);
    }
    return figures;
  }

  async cleanup(): Promise<void> {
    await this.child?.stop('SIGKILL');
  }
}

/**
 * postgres-subscribe connects and creates its temporary slot before the backlog is written; its
 * walsender is then paused (bench/lib/walsender.ts) and let go when its turn comes, which starts
 * its window.
 */
class PausedPeer implements Contender {
  readonly name = 'postgres-subscribe';
  readonly usesSlot = false;
  private child: LineChild | undefined;
  private walsender: number | undefined;

  async prepare(ctx: DrainContext): Promise<void> {
    const child = (this.child = new LineChild(process.execPath, peerArgs(ctx, 'postgres-subscribe.js')));
    this.walsender = walsenderOf((await child.waitLine(/^ready \d+$/, 30_000, 'ready line')).text);
    await pauseWalsender(ctx.env, this.walsender);
  }

  async drain(ctx: DrainContext): Promise<DrainFigures> {
    const child = this.child!;
    const window = new Window(performance.now(), child.pid);
    resumeWalsender(this.walsender!);
    const done = await child.waitLine(/^done /, ctx.timeoutMs, `done (${ctx.rows} rows)`);
    return window.end(done.at, this.walsender);
  }

  async cleanup(): Promise<void> {
    if (this.walsender !== undefined) resumeWalsender(this.walsender);
    await this.child?.stop('SIGKILL');
  }
}

/**
 * pg_recvlogical stops by itself at --endpos (the end LSN), so its figures are read after it and
 * its walsender have exited: its CPU from this process's cutime (it is our child), the walsender's
 * from the postmaster's cutime (the only backend to exit meanwhile: the bench's own queries use one
 * connection that stays open). Peak RSS is sampled every 50 ms.
 */
class RecvLogical implements Contender {
  readonly name = 'pg_recvlogical';
  readonly usesSlot = true;
  private child: LineChild | undefined;

  async drain(ctx: DrainContext): Promise<DrainFigures> {
    const { env } = ctx;
    const args = [
      '-h', env.cluster.host, '-p', String(env.cluster.port), '-U', env.cluster.user, '-d', env.db.name,
      '--slot', ctx.slot, '--start', '-o', 'proto_version=1', '-o', `publication_names=${PUBLICATION}`,
      '--endpos', ctx.endLsn, '--no-loop', '-v', '-f', '/dev/null',
    ];
    const ownBefore = readCpu('self')!.children;
    const postmasterBefore = readCpu(env.cluster.postmasterPid)!.children;
    const child = (this.child = new LineChild(join(PG_BIN, 'pg_recvlogical'), args));
    let peakRssMb: number | undefined;
    const sample = (): void => {
      const peak = readMemory(child.pid)?.peakMb;
      if (peak !== undefined && (peakRssMb === undefined || peak > peakRssMb)) peakRssMb = peak;
    };
    const sampler = setInterval(sample, 50);
    try {
      const streaming = await child.waitLine(/starting log streaming/, 30_000, '"starting log streaming"');
      const cpuAtStart = readCpu(child.pid);
      sample();
      let walsender: number | undefined;
      await pollUntil(async () => (walsender = await slotWalsender(env, ctx.slot)) !== undefined || child.process.exitCode !== null, 10_000, 'its walsender', 5);
      let timer: NodeJS.Timeout | undefined;
      const code = await Promise.race([
        child.exited,
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`not at ${ctx.endLsn} after ${ctx.timeoutMs / 1000} s`)), ctx.timeoutMs))),
      ]).finally(() => clearTimeout(timer));
      const exitedAt = performance.now();
      if (code !== 0) throw new Error(`pg_recvlogical exited with ${code}: ${child.stderr}`);
      const notes: string[] = [];
      if (walsender !== undefined) await pollUntil(() => !alive(walsender!), 10_000, 'its walsender to exit', 5);
      else notes.push('walsender not seen (pg_recvlogical finished first)');
      const decoded = await decodedTxns(env, ctx.slot);
      if (decoded === undefined || decoded < ctx.txns) throw new Error(`decoded ${decoded ?? 'no'} of ${ctx.txns} transactions: it stopped early`);
      return {
        seconds: (exitedAt - streaming.at) / 1000,
        cpuSeconds: readCpu('self')!.children - ownBefore - (cpuAtStart ? cpuAtStart.own + cpuAtStart.children : 0),
        ...(walsender !== undefined ? { walsenderCpuSeconds: readCpu(env.cluster.postmasterPid)!.children - postmasterBefore } : {}),
        ...(peakRssMb !== undefined ? { peakRssMb } : {}),
        notes,
      };
    } finally {
      clearInterval(sampler);
    }
  }

  async cleanup(): Promise<void> {
    await this.child?.stop('SIGKILL');
  }
}

export function createPeerContender(name: PeerContenderName): Contender {
  switch (name) {
    case 'floor':
      return new StreamingPeer('floor', 'floor.js');
    case 'floor-stdout':
      return new StreamingPeer('floor-stdout', 'floor.js', true);
    case 'pg_recvlogical':
      return new RecvLogical();
    case 'postgres-subscribe':
      return new PausedPeer();
    case 'pg-logical-replication':
      return new StreamingPeer('pg-logical-replication', 'pg-logical-replication.js');
  }
}
