/**
 * `npm run bench:live`: latency. The daemon streams to JetStream while a writer commits single-row
 * transactions at a steady rate (default 500 commits/s for 20 s, timer-paced over 4 connections,
 * synchronous_commit on) into the six-column table of workload (a). A core NATS subscriber on
 * `<topic>.>` timestamps every event: latency = receipt time − the event's `commitTime`
 * (PostgreSQL's commit timestamp, microseconds). Same machine, same clock. A core subscription
 * sees a message when the daemon publishes it, before JetStream's ack. Also samples the daemon's
 * VmRSS (steady-state memory) while the writer runs. Private cluster and nats-server as `npm run bench`.
 *
 * Run: npm run bench:live -- [--runs 3] [--live-seconds 20] [--live-rate 500] [--no-build] [--tsx] [--json]
 */
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startBenchDaemon, type BenchDaemon } from './lib/daemon.js';
import { dropSlot, PUBLICATION, type BenchEnv } from './lib/env.js';
import { RssSampler } from './lib/proc.js';
import { COMMON_OPTIONS, positive, withBenchEnv } from './lib/runner.js';
import { median, nowMs, parseTimestampMs, percentile } from './lib/stats.js';
import { sixColumnRow, sixColumns } from './lib/workloads.js';

const WRITERS = 4;
const WARMUP_ROWS = 50;
/** Samples from the first second are left out (JIT warm-up, first relation lookups). */
const SETTLE_MS = 1000;

interface LiveResult {
  rows: number;
  /** Commits written per second. */
  rate: number;
  p50?: number;
  p99?: number;
  max?: number;
  peakRssMb?: number;
  /** Largest daemon VmRSS sampled after the first second, MB. */
  steadyRssMb?: number;
  notes: string[];
}

async function runLive(env: BenchEnv, run: number, liveRate: number, liveSeconds: number): Promise<LiveResult> {
  const total = Math.max(1, Math.round(liveRate * liveSeconds));
  const tag = `live_${run}`;
  const table = `t_${tag}`;
  const topic = `bench_${tag}`;
  const slot = `bench_${tag}`;
  const notes: string[] = [];
  const clients: pg.Client[] = [];
  let daemon: BenchDaemon | undefined;
  let sampler: RssSampler | undefined;
  const subscription = env.nc.subscribe(`${topic}.>`, { callback: (_err, msg) => onMessage(msg.string()) });

  // id → latency (ms); ids 1..WARMUP_ROWS are the warm-up, the rest are measured.
  const latency = new Float64Array(WARMUP_ROWS + total + 1).fill(NaN);
  let received = 0;
  let duplicates = 0;
  const commitTimes = new Float64Array(WARMUP_ROWS + total + 1);
  function onMessage(text: string): void {
    const at = nowMs();
    const id = Number(/"data":\{"id":(\d+)/.exec(text)?.[1]);
    const commitTime = /"commitTime":"([^"]+)"/.exec(text)?.[1];
    if (!Number.isInteger(id) || id >= latency.length || commitTime === undefined) return;
    if (!Number.isNaN(latency[id]!)) {
      duplicates++;
      return;
    }
    const committed = parseTimestampMs(commitTime);
    commitTimes[id] = committed;
    latency[id] = at - committed;
    received++;
  }

  await env.admin.query(sixColumns(table));
  try {
    await env.admin.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
    daemon = await startBenchDaemon(env.launch, {
      slot,
      publication: PUBLICATION,
      publisher: { type: 'nats', address: env.nats.url, topic },
      database: { host: env.cluster.host, port: env.cluster.port, name: env.db.name, user: env.cluster.user },
    });
    sampler = new RssSampler(daemon.pid, 250);
    for (let i = 0; i < WRITERS; i++) {
      const client = new pg.Client({ host: env.db.host, port: env.db.port, user: env.db.user, database: env.db.name });
      await client.connect();
      clients.push(client);
    }
    const insert = (id: number, client: pg.Client): Promise<unknown> =>
      // The bigserial id follows insert order: warm-up rows are 1..WARMUP_ROWS, then one per commit.
      client.query({ name: 'bench_insert', text: `INSERT INTO ${table} ${sixColumnRow('$1::int')}`, values: [id] });

    // Warm-up: the first change brings the Relation message and catalog lookups.
    for (let id = 1; id <= WARMUP_ROWS; id++) await insert(id, clients[id % WRITERS]!);
    await waitUntil(() => received >= WARMUP_ROWS, 30_000, 'warm-up events');

    // Timer-paced writer: each tick queues every commit due by now; idle connections take them
    // one at a time (a pg client runs one query at a time).
    const startedAt = Date.now();
    const t0 = performance.now();
    let queued = 0;
    let next = 0;
    let done = 0;
    let failed: unknown = null;
    const idle = [...clients];
    await new Promise<void>((resolve) => {
      const pump = (): void => {
        while (next < queued && idle.length > 0) {
          const client = idle.pop()!;
          const id = WARMUP_ROWS + 1 + next++;
          insert(id, client).then(
            () => finish(client),
            (err: unknown) => {
              failed ??= err;
              finish(client);
            },
          );
        }
      };
      const finish = (client: pg.Client): void => {
        idle.push(client);
        if (++done === total) resolve();
        else pump();
      };
      const tick = setInterval(() => {
        queued = Math.min(total, Math.floor(((performance.now() - t0) * liveRate) / 1000));
        if (queued >= total) clearInterval(tick);
        pump();
      }, 5);
    });
    const writeSeconds = (performance.now() - t0) / 1000;
    if (failed) throw failed;
    const expected = WARMUP_ROWS + total;
    await waitUntil(() => received >= expected, 15_000, 'all events').catch((err: unknown) => notes.push(`live run ${run}: ${(err as Error).message}`));
    sampler.stop();
    const steadyRssMb = sampler.maxSince(startedAt + SETTLE_MS);
    const peakRssMb = daemon.memory()?.peakMb;
    const problems = daemon.problems();
    await daemon.stop();
    daemon = undefined;
    for (const p of problems.slice(0, 3)) notes.push(`live run ${run}: daemon ${String(p.level)}: ${String(p.msg)}`);
    if (duplicates > 0) notes.push(`live run ${run}: ${duplicates} events arrived twice`);

    const measured: number[] = [];
    let missing = 0;
    const settleAt = startedAt + SETTLE_MS;
    for (let id = WARMUP_ROWS + 1; id < latency.length; id++) {
      const value = latency[id]!;
      if (Number.isNaN(value)) missing++;
      else if (commitTimes[id]! >= settleAt) measured.push(value);
    }
    if (missing > 0) notes.push(`live run ${run}: ${missing} of ${total} events never arrived`);
    measured.sort((a, b) => a - b);
    const result: LiveResult = {
      rows: total,
      rate: total / writeSeconds,
      p50: percentile(measured, 50),
      p99: percentile(measured, 99),
      max: measured[measured.length - 1],
      peakRssMb,
      steadyRssMb,
      notes,
    };
    env.log(
      `live run ${run}: ${Math.round(result.rate)} commits/s, latency p50 ${fmt(result.p50)} p99 ${fmt(result.p99)} max ${fmt(result.max)} ms, ` +
        `steady RSS ${fmt(steadyRssMb)} MB`,
    );
    return result;
  } finally {
    sampler?.stop();
    subscription.unsubscribe();
    await daemon?.kill();
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
    await dropSlot(env, slot);
    await env.jsm.streams.delete(topic).catch(() => false);
    await env.admin.query(`DROP TABLE IF EXISTS ${table}`).catch(() => {});
  }
}

function fmt(value: number | undefined): string {
  return value === undefined ? '-' : value.toFixed(1);
}

async function waitUntil(probe: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { ...COMMON_OPTIONS, 'live-seconds': { type: 'string', default: '20' }, 'live-rate': { type: 'string', default: '500' } },
  strict: true,
});
const runs = positive(values.runs, '--runs');
const liveSeconds = positive(values['live-seconds'], '--live-seconds');
const liveRate = positive(values['live-rate'], '--live-rate');
const results = await withBenchEnv(values, async (env) => {
  const out: LiveResult[] = [];
  for (let run = 1; run <= runs; run++) out.push(await runLive(env, run, liveRate, liveSeconds));
  return out;
});
const m = (pick: (r: LiveResult) => number | undefined): string => fmt(median(results.map(pick)));
process.stdout.write(
  `\nwal-listener live latency to JetStream: medians of ${runs} run(s), ${liveRate} commits/s for ${liveSeconds} s\n\n` +
    '| commits/s | p50 ms | p99 ms | max ms | steady RSS MB | peak RSS MB |\n|---:|---:|---:|---:|---:|---:|\n' +
    `| ${m((r) => r.rate)} | ${m((r) => r.p50)} | ${m((r) => r.p99)} | ${m((r) => r.max)} | ${m((r) => r.steadyRssMb)} | ${m((r) => r.peakRssMb)} |\n`,
);
const notes = results.flatMap((r) => r.notes);
if (notes.length > 0) process.stdout.write(`\nNotes:\n${notes.map((n) => `- ${n}`).join('\n')}\n`);
if (values.json) process.stdout.write(`\n${JSON.stringify({ runs, liveRate, liveSeconds, results }, null, 2)}\n`);
