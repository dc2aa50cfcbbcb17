/**
 * PgQ source throughput: a backlog of mikkoo-style events (ev_type, a ~200-byte JSON body, exchange,
 * content type, properties and headers JSON) written in transactions of 500 while pgqd ticks, then
 * drained by the PgQ source alone: read through the batch cursor, mapped, handed to a sink, and
 * each batch finished (pgq.finish_batch) once the sink confirms it. Timed from open() until the
 * last batch is finished.
 *
 * Sinks:
 *   count     acknowledges at once (an infinitely fast broker): the source's own ceiling
 *   rabbitmq  publishes each message with amqplib on a ConfirmChannel to a private exchange of the
 *             machine's RabbitMQ (properties and headers as the mapping made them, persistent) and
 *             acknowledges on the broker's confirm; window 4096
 * --confirm-delay-ms adds the checkpointer's confirmation cadence (it confirms at most once a
 * second): PgQ gives the next batch only after finish_batch, so this bounds events/s to about one
 * batch per delay.
 *
 * Run: node --import tsx bench/pgq-read.ts [--events 200000] [--runs 3] [--sink count|rabbitmq]
 *        [--batch-target 10000] [--confirm-delay-ms 0] [--audit]
 */
import { parseArgs } from 'node:util';
import { connect, type ConfirmChannel, type Options } from 'amqplib';
import type { ChangeSink, RoutedMessage, TransactionHandle, TransactionInfo } from '../src/pipeline/change.js';
import { createPgqSource, type PgqPosition } from '../src/sources/pgq/source.js';
import { captureLogger, consumerInfo, createPgqDatabase, createQueue, pgqConfig, startTicker } from '../test/support/pgq.js';
import { RABBIT_URL, uniqueName } from '../test/support/rabbitmq.js';
import { runRounds, writeBacklog } from './lib/pgq-backlog.js';

const { values: flags } = parseArgs({
  options: {
    events: { type: 'string', default: '200000' },
    runs: { type: 'string', default: '3' },
    sink: { type: 'string', default: 'count' },
    'batch-target': { type: 'string', default: '10000' },
    'confirm-delay-ms': { type: 'string', default: '0' },
    audit: { type: 'boolean', default: false },
  },
});
const EVENTS = Number(flags.events);
const RUNS = Number(flags.runs);
const BATCH_TARGET = Number(flags['batch-target']);
const CONFIRM_DELAY = Number(flags['confirm-delay-ms']);
const WINDOW = 4096;

interface Txn extends TransactionHandle {
  pending: number;
  end?: PgqPosition;
}

/** The pipeline's part, reduced to what the figures need: count, acknowledge (or publish), confirm in order. */
class BenchSink implements ChangeSink<PgqPosition> {
  session: { confirm(p: PgqPosition): void } | undefined;
  events = 0;
  bytes = 0;
  private inFlight = 0;
  private readonly open: Txn[] = [];
  private waiters: (() => void)[] = [];

  constructor(private readonly channel: ConfirmChannel | undefined) {}

  get full(): boolean {
    return this.inFlight >= WINDOW;
  }
  ready(): Promise<void> {
    return this.full ? new Promise((resolve) => this.waiters.push(resolve)) : Promise.resolve();
  }
  begin(info: TransactionInfo): TransactionHandle {
    const txn: Txn = { info, pending: 0 };
    this.open.push(txn);
    return txn;
  }
  message(handle: TransactionHandle, m: RoutedMessage): void {
    const txn = handle as Txn;
    this.events++;
    this.bytes += m.payload.length;
    if (!this.channel) return;
    txn.pending++;
    this.inFlight++;
    this.channel.publish(m.exchange!, m.subject, m.payload, m.properties as Options.Publish, (err) => {
      if (err) throw err;
      txn.pending--;
      this.inFlight--;
      if (!this.full) for (const wake of this.waiters.splice(0)) wake();
      this.settle();
    });
  }
  commit(handle: TransactionHandle, end: PgqPosition): void {
    (handle as Txn).end = end;
    this.settle();
  }
  private settle(): void {
    while (this.open[0]?.end && this.open[0].pending === 0) {
      const end = this.open.shift()!.end!;
      if (CONFIRM_DELAY > 0) setTimeout(() => this.session?.confirm(end), CONFIRM_DELAY);
      else queueMicrotask(() => this.session?.confirm(end));
    }
  }
  table(): never {
    throw new Error('not from PgQ');
  }
  insert(): void {}
  update(): void {}
  delete(): void {}
  truncate(): void {}
  snapshot(): void {}
  skip(): void {}
  idle(): void {}
}

async function oneRun(run: number): Promise<{ eps: number; cpuPer100k: number; seconds: number; batches: number }> {
  const db = await createPgqDatabase('wl_pgq_bench');
  const ticker = await startTicker(db);
  const queue = `bench_${run}`;
  const exchange = uniqueName('wl_pgq_bench');
  const amqp = flags.sink === 'rabbitmq' ? await connect(RABBIT_URL) : undefined;
  try {
    await createQueue(db, queue, { maxCount: 500, maxLag: '100 milliseconds' });
    await db.sql("SELECT pgq.register_consumer($1, 'wal-listener')", [queue]);
    await writeBacklog(db, queue, exchange, EVENTS);

    const channel = amqp ? await amqp.createConfirmChannel() : undefined;
    await channel?.assertExchange(exchange, 'topic', { durable: false, autoDelete: false });
    const sink = new BenchSink(channel);
    let finished = 0;
    let batches = 0;
    let allFinished!: () => void;
    const done = new Promise<void>((resolve) => (allFinished = resolve));
    const cpu = process.cpuUsage();
    const started = performance.now();
    const source = createPgqSource(pgqConfig(db, { queue, audit: flags.audit }, { type: 'rabbitmq', address: 'amqp://127.0.0.1', topic: exchange }), captureLogger('warn').logger, {
      finished(events) {
        finished += events;
        if (events > 0) batches++;
        if (finished >= EVENTS) allFinished();
      },
    }, { batchTarget: BATCH_TARGET });
    const session = await source.open(sink, new AbortController().signal);
    sink.session = session;
    await done;
    const seconds = (performance.now() - started) / 1000;
    const used = process.cpuUsage(cpu);
    session.stop();
    await session.close();
    await source.close();
    await channel?.deleteExchange(exchange);
    if ((await consumerInfo(db, queue))?.pending_events !== '0') throw new Error('backlog not drained');
    return { eps: EVENTS / seconds, cpuPer100k: ((used.user + used.system) / 1e6) * (100_000 / EVENTS), seconds, batches };
  } finally {
    await amqp?.close().catch(() => undefined);
    await ticker.close();
    await db.drop();
  }
}

await runRounds(
  RUNS,
  EVENTS,
  oneRun,
  (r) => `${r.batches} batches, node CPU ${r.cpuPer100k.toFixed(2)} s per 100k events`,
  `pgq-read sink=${flags.sink} audit=${flags.audit} batchTarget=${BATCH_TARGET} confirmDelay=${CONFIRM_DELAY}ms (node process)`,
);
