/**
 * The daemon as a contender, once per publisher. Its window starts at its "replication streaming"
 * log line and ends when the bench sees the last row where the publisher put it:
 *   stdout    the daemon's stdout is piped to the bench, which only counts newlines (a null sink)
 *   nats      the JetStream stream (file storage) holds every message (stream info, every 20 ms;
 *             a stored message has been acknowledged to the daemon)
 *   rabbitmq  a queue bound to the daemon's exchange holds every message (passive declare, every
 *             20 ms). The queue is transient, so RabbitMQ confirms from memory, without an fsync.
 */
import { join } from 'node:path';
import { RABBIT_URL, uniqueName } from '../../test/support/rabbitmq.js';
import type { Contender, DrainContext } from './contenders.js';
import { startBenchDaemon, type BenchDaemon, type BenchDaemonConfig } from './daemon.js';
import { findPid, PUBLICATION, RABBIT_PREFIX, slotWalsender, type BenchEnv } from './env.js';
import { pollUntil, Window, type DrainFigures } from './measure.js';
import type { DaemonContenderName } from './names.js';


/** Where the daemon's messages end up, and how the bench sees that all of them arrived. */
interface Sink {
  publisher: BenchDaemonConfig['publisher'];
  onStdout?: (chunk: Buffer) => void;
  /** The broker process whose CPU is reported with the daemon's. */
  brokerPid?: number;
  /** Messages there now. */
  count(): Promise<number>;
  /** performance.now() when the last of `rows` messages was seen (default: count() every 20 ms). */
  arrived?(rows: number, timeoutMs: number): Promise<number>;
  remove(): Promise<void>;
  /** A note on what arrived (stdout: bytes per row, to set beside floor-stdout's). */
  note?(rows: number): string;
}

function stdoutSink(tag: string): Sink {
  const NEWLINE = 0x0a;
  let lines = 0;
  let bytes = 0;
  let wanted = Infinity;
  let onAll: ((at: number) => void) | undefined;
  const all = new Promise<number>((resolve) => (onAll = resolve));
  return {
    publisher: { type: 'stdout', topic: `bench_${tag}` },
    onStdout(chunk) {
      bytes += chunk.length;
      for (let at = chunk.indexOf(NEWLINE); at !== -1; at = chunk.indexOf(NEWLINE, at + 1)) lines++;
      if (lines >= wanted) onAll?.(performance.now());
    },
    count: async () => lines,
    arrived(rows, timeoutMs) {
      wanted = rows;
      if (lines >= rows) return Promise.resolve(performance.now());
      let timer: NodeJS.Timeout | undefined;
      return Promise.race([
        all,
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`stdout had ${lines} of ${rows} lines after ${timeoutMs / 1000} s`)), timeoutMs))),
      ]).finally(() => clearTimeout(timer));
    },
    remove: async () => {},
    note: (rows) => `wrote ${Math.round(bytes / rows).toLocaleString('en-US')} bytes per row to stdout`,
  };
}

function natsSink(env: BenchEnv, tag: string): Sink {
  const stream = `bench_${tag}`;
  const stored = async (): Promise<number> => (await env.jsm.streams.info(stream).catch(() => undefined))?.state.messages ?? 0;
  return {
    publisher: { type: 'nats', address: env.nats.url, topic: stream },
    brokerPid: env.natsPid,
    count: stored,
    remove: async () => {
      await env.jsm.streams.delete(stream).catch(() => false);
    },
  };
}

async function rabbitSink(env: BenchEnv, tag: string): Promise<Sink> {
  const channel = await env.rabbit();
  const exchange = uniqueName(`${RABBIT_PREFIX}${tag}`);
  const queue = `${exchange}_q`;
  // Declared as the daemon declares it (durable topic), with a queue so that messages are kept and counted.
  await channel.assertExchange(exchange, 'topic', { durable: true });
  await channel.assertQueue(queue, { durable: false, exclusive: true });
  await channel.bindQueue(queue, exchange, '#');
  return {
    publisher: { type: 'rabbitmq', address: RABBIT_URL, topic: exchange },
    // The server's VM, not a passing rabbitmqctl's (also a beam.smp that mentions rabbit).
    brokerPid: findPid((argv) => argv[0]?.endsWith('beam.smp') === true && argv.join(' ').includes('-s rabbit boot')),
    count: async () => (await channel.checkQueue(queue)).messageCount,
    remove: async () => {
      await channel.deleteQueue(queue).catch(() => {});
      await channel.deleteExchange(exchange).catch(() => {});
    },
  };
}

class DaemonContender implements Contender {
  readonly usesSlot = true;
  private daemon: BenchDaemon | undefined;
  private sink: Sink | undefined;

  constructor(readonly name: DaemonContenderName) {}

  async drain(ctx: DrainContext): Promise<DrainFigures> {
    const { env } = ctx;
    const publisher = this.name.slice(this.name.indexOf('-') + 1);
    const tag = `${ctx.tag}_${this.name.startsWith('baseline-') ? 'base' : 'new'}`;
    const sink = (this.sink = publisher === 'stdout' ? stdoutSink(tag) : publisher === 'nats' ? natsSink(env, tag) : await rabbitSink(env, tag));
    let launch = this.name.startsWith('baseline-') ? { ...env.launch, mode: 'dist' as const, root: env.baseline } : env.launch;
    if (launch.cpuProfDir) launch = { ...launch, cpuProfDir: join(launch.cpuProfDir, `${ctx.workload.name}-${this.name}-r${ctx.round}`) };
    const daemon = (this.daemon = await startBenchDaemon(launch, {
      slot: ctx.slot,
      publication: PUBLICATION,
      publisher: sink.publisher,
      database: { host: env.cluster.host, port: env.cluster.port, name: env.db.name, user: env.cluster.user },
      ...(sink.onStdout ? { onStdout: sink.onStdout } : {}),
    }));
    const window = new Window(daemon.streamingAt, daemon.pid, sink.brokerPid);
    const doneAt = sink.arrived
      ? await sink.arrived(ctx.rows, ctx.timeoutMs)
      : await pollUntil(async () => (await sink.count()) >= ctx.rows, ctx.timeoutMs, `${ctx.rows} messages`);
    const figures = window.end(doneAt, await slotWalsender(env, ctx.slot));
    for (const p of daemon.problems().slice(0, 3)) figures.notes.push(`daemon ${String(p.level)}: ${String(p.msg)}`);
    const code = await daemon.stop();
    if (code !== 0) figures.notes.push(`daemon exited with ${code}`);
    // More than expected would mean duplicates (or a backlog other than the one written).
    const count = await sink.count();
    if (count !== ctx.rows) figures.notes.push(`${count} messages at the end, expected ${ctx.rows}`);
    if (sink.note) figures.notes.push(sink.note(ctx.rows));
    return figures;
  }

  async cleanup(): Promise<void> {
    await this.daemon?.kill();
    await this.sink?.remove();
  }
}

export function createDaemonContender(name: DaemonContenderName): Contender {
  return new DaemonContender(name);
}
