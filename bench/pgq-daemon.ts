/**
 * PgQ → RabbitMQ through the real daemon (issue 17's figure): a backlog of mikkoo-style events is
 * written and ticked, then `wal-listener run` with `source.type: pgq` and the RabbitMQ publisher
 * (publisher confirms, persistent messages) drains it into a durable queue bound to the exchange.
 * Timed from the daemon's "publisher connected" line (Node and module loading excluded) until PgQ reports the
 * consumer has no pending events (every batch finished, so every event was confirmed by
 * RabbitMQ); the queue depth is checked against the event count. CPU is the daemon process's,
 * from /proc.
 *
 * Run: node --import tsx bench/pgq-daemon.ts [--events 100000] [--runs 3] [--audit]
 */
import { parseArgs } from 'node:util';
import { databaseSection, startDaemon } from '../test/support/daemon.js';
import { consumerInfo, createPgqDatabase, createQueue, startTicker } from '../test/support/pgq.js';
import { waitFor } from '../test/support/ports.js';
import { cleanup, declareBoundQueue, queueDepth, uniqueName } from '../test/support/rabbitmq.js';
import { runRounds, writeBacklog } from './lib/pgq-backlog.js';
import { totalCpu } from './lib/proc.js';

const { values: flags } = parseArgs({
  options: {
    events: { type: 'string', default: '100000' },
    runs: { type: 'string', default: '3' },
    audit: { type: 'boolean', default: false },
  },
});
const EVENTS = Number(flags.events);
const RUNS = Number(flags.runs);

async function oneRun(run: number): Promise<{ eps: number; cpuPer100k: number; seconds: number }> {
  const db = await createPgqDatabase('wl_pgq_dbench');
  const ticker = await startTicker(db);
  const queue = `dbench_${run}`;
  const exchange = uniqueName('wl_pgq_dbench');
  const amqpQueue = uniqueName('wl_pgq_dbench_q');
  try {
    await createQueue(db, queue, { maxCount: 500, maxLag: '100 milliseconds' });
    await db.sql("SELECT pgq.register_consumer($1, 'wal-listener')", [queue]);
    await declareBoundQueue(exchange, amqpQueue, '#');
    await writeBacklog(db, queue, exchange, EVENTS);

    const daemon = await startDaemon(
      {
        source: { type: 'pgq' },
        listener: {},
        database: databaseSection(db),
        pgq: { queue, audit: flags.audit },
        publisher: { type: 'rabbitmq', address: 'amqp://guest:guest@127.0.0.1:5672', topic: exchange },
        logger: { level: 'info' },
      },
      { waitForStreaming: false },
    );
    await daemon.waitForLog('publisher connected', 60_000);
    const started = performance.now();
    const pid = daemon.child.pid!;
    const cpuAtStart = totalCpu(pid) ?? 0;
    await waitFor('the backlog delivered', async () => (await consumerInfo(db, queue))?.pending_events === '0', 600_000, 50);
    const seconds = (performance.now() - started) / 1000;
    const cpu = (totalCpu(pid) ?? 0) - cpuAtStart;
    if ((await daemon.stop()) !== 0) throw new Error(`the daemon did not stop cleanly:\n${daemon.stderr().slice(-2000)}`);
    const depth = await queueDepth(amqpQueue);
    if (depth < EVENTS) throw new Error(`only ${depth} of ${EVENTS} events in the queue`);
    await cleanup({ queues: [amqpQueue], exchanges: [exchange] });
    return { eps: EVENTS / seconds, cpuPer100k: cpu * (100_000 / EVENTS), seconds };
  } finally {
    await ticker.close();
    await db.drop();
  }
}

await runRounds(RUNS, EVENTS, oneRun, (r) => `daemon CPU ${r.cpuPer100k.toFixed(2)} s per 100k events`, `pgq → RabbitMQ through the daemon (confirms, persistent, audit=${flags.audit}; daemon process)`);
