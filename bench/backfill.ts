/**
 * `npm run bench:backfill`: a backfill of a large table while live changes stream (issue 14). The
 * daemon streams to JetStream; a writer commits single-row transactions into another table at a
 * steady rate (default 200 commits/s, timer-paced over 4 connections); after a few seconds of live
 * traffic alone, a backfill of the big table (default 1,000,000 rows of the six-column table of
 * workload (a), chunks of 2000) is requested as `wal-listener backfill` does (a row in
 * wal_listener.backfills). A core NATS subscriber timestamps every event:
 *   - backfill throughput: rows / (finished_at − started_at) of the request, and the daemon's
 *     CPU-seconds over the backfill (steadier than wall time on a shared machine);
 *   - live latency (receipt − commitTime) p50/p99 before the backfill and during it.
 * Private cluster and nats-server as `npm run bench`.
 *
 * Run: npm run bench:backfill -- [--runs 3] [--rows 1000000] [--rate 200] [--chunk 2000] [--no-build] [--tsx] [--json]
 */
import { parseArgs } from 'node:util';
import pg from 'pg';
import { insertBackfill } from '../src/sources/postgres/backfills.js';
import { startBenchDaemon, type BenchDaemon } from './lib/daemon.js';
import { dropSlot, PUBLICATION, type BenchEnv } from './lib/env.js';
import { totalCpu } from './lib/proc.js';
import { COMMON_OPTIONS, positive, withBenchEnv } from './lib/runner.js';
import { median, nowMs, parseTimestampMs, percentile } from './lib/stats.js';
import { sixColumnRow, sixColumns } from './lib/workloads.js';

const WRITERS = 4;
const BEFORE_MS = 5_000;

interface BackfillResult {
  rows: number;
  seconds: number;
  rowsPerSecond: number;
  cpuSeconds?: number;
  commitsPerSecond: number;
  before: { p50?: number; p99?: number; samples: number };
  during: { p50?: number; p99?: number; max?: number; samples: number };
  notes: string[];
}

/** Single-row commits at `rate`/s over WRITERS connections until stopped. */
function paceWriter(clients: pg.Client[], table: string, rate: number): { stop(): Promise<number>; failed(): unknown } {
  const t0 = performance.now();
  let queued = 0;
  let next = 0;
  let inFlight = 0;
  let failed: unknown = null;
  let stopped = false;
  const idle = [...clients];
  const pump = (): void => {
    while (!stopped && next < queued && idle.length > 0) {
      const client = idle.pop()!;
      next++;
      inFlight++;
      client.query({ name: 'bench_live', text: `INSERT INTO ${table} ${sixColumnRow('1')}` }).then(
        () => done(client),
        (err: unknown) => {
          failed ??= err;
          done(client);
        },
      );
    }
  };
  const done = (client: pg.Client): void => {
    inFlight--;
    idle.push(client);
    pump();
  };
  const tick = setInterval(() => {
    queued = Math.floor(((performance.now() - t0) * rate) / 1000);
    pump();
  }, 5);
  return {
    async stop() {
      stopped = true;
      clearInterval(tick);
      while (inFlight > 0) await new Promise((r) => setTimeout(r, 5));
      return next / ((performance.now() - t0) / 1000);
    },
    failed: () => failed,
  };
}

async function runBackfill(env: BenchEnv, run: number, rows: number, rate: number, chunk: number, big: string): Promise<BackfillResult> {
  const tag = `bf_${run}`;
  const live = `t_${tag}_live`;
  const topic = `bench_${tag}`;
  const slot = `bench_${tag}`;
  const notes: string[] = [];
  const clients: pg.Client[] = [];
  let daemon: BenchDaemon | undefined;
  // Live events: [receipt ms, commit ms]; the phase is decided afterwards by commit time.
  const liveSamples: [number, number][] = [];
  let snapshotEvents = 0;
  const subscription = env.nc.subscribe(`${topic}.>`, {
    callback: (_err, msg) => {
      const at = nowMs();
      const text = msg.string();
      if (text.includes('"action":"SNAPSHOT"')) {
        snapshotEvents++;
        return;
      }
      const commitTime = /"commitTime":"([^"]+)"/.exec(text)?.[1];
      if (commitTime !== undefined) liveSamples.push([at, parseTimestampMs(commitTime)]);
    },
  });
  await env.admin.query(sixColumns(live));
  try {
    await env.admin.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
    daemon = await startBenchDaemon(env.launch, {
      slot,
      publication: PUBLICATION,
      publisher: { type: 'nats', address: env.nats.url, topic },
      database: { host: env.cluster.host, port: env.cluster.port, name: env.db.name, user: env.cluster.user },
    });
    for (let i = 0; i < WRITERS; i++) {
      const client = new pg.Client({ host: env.db.host, port: env.db.port, user: env.db.user, database: env.db.name });
      await client.connect();
      clients.push(client);
    }
    const writer = paceWriter(clients, live, rate);
    await new Promise((r) => setTimeout(r, BEFORE_MS));
    const cpuStart = totalCpu(daemon.pid);
    const requestedAt = Date.now();
    const request = await insertBackfill((text, values) => env.admin.query(text, values), { slotName: slot, kind: 'backfill', schema: 'public', table: big, where: null, chunkSize: chunk });
    let status: { status: string; rows: string; started_at: Date | null; finished_at: Date | null } | undefined;
    for (;;) {
      status = (await env.admin.query<NonNullable<typeof status>>('SELECT status, rows::text, started_at, finished_at FROM wal_listener.backfills WHERE id = $1', [request.id])).rows[0];
      if (status?.status !== 'queued' && status?.status !== 'running') break;
      if (Date.now() - requestedAt > 900_000) throw new Error('backfill did not finish within 15 minutes');
      await new Promise((r) => setTimeout(r, 200));
    }
    if (!status) throw new Error('the backfill request vanished');
    const cpuEnd = totalCpu(daemon.pid);
    const commitsPerSecond = await writer.stop();
    if (writer.failed()) throw writer.failed() as Error;
    if (status.status !== 'done') throw new Error(`backfill ended ${status.status}`);
    await new Promise((r) => setTimeout(r, 1000));
    const startedMs = status.started_at!.getTime();
    const finishedMs = status.finished_at!.getTime();
    const seconds = (finishedMs - startedMs) / 1000;
    const latencies = (from: number, to: number): number[] =>
      liveSamples.filter(([, committed]) => committed >= from && committed < to).map(([at, committed]) => at - committed).sort((a, b) => a - b);
    const before = latencies(requestedAt - BEFORE_MS + 1000, requestedAt);
    const during = latencies(startedMs, finishedMs);
    if (snapshotEvents < rows) notes.push(`run ${run}: ${snapshotEvents} SNAPSHOT events seen for ${rows} rows`);
    for (const p of daemon.problems().slice(0, 3)) notes.push(`run ${run}: daemon ${String(p.level)}: ${String(p.msg)}`);
    await daemon.stop();
    daemon = undefined;
    const result: BackfillResult = {
      rows: Number(status.rows),
      seconds,
      rowsPerSecond: Number(status.rows) / seconds,
      ...(cpuStart !== undefined && cpuEnd !== undefined ? { cpuSeconds: cpuEnd - cpuStart } : {}),
      commitsPerSecond,
      before: { p50: percentile(before, 50), p99: percentile(before, 99), samples: before.length },
      during: { p50: percentile(during, 50), p99: percentile(during, 99), max: during.at(-1), samples: during.length },
      notes,
    };
    env.log(
      `run ${run}: ${result.rows} rows in ${seconds.toFixed(1)} s = ${Math.round(result.rowsPerSecond)} rows/s (daemon CPU ${fmt(result.cpuSeconds)} s), ` +
        `live ${Math.round(commitsPerSecond)} commits/s: p99 before ${fmt(result.before.p99)} ms, during ${fmt(result.during.p99)} ms (max ${fmt(result.during.max)})`,
    );
    return result;
  } finally {
    subscription.unsubscribe();
    await daemon?.kill();
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
    await dropSlot(env, slot);
    await env.jsm.streams.delete(topic).catch(() => false);
    await env.admin.query(`DROP TABLE IF EXISTS ${live}`).catch(() => {});
  }
}

function fmt(value: number | undefined): string {
  return value === undefined ? '-' : value.toFixed(1);
}

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { ...COMMON_OPTIONS, runs: { type: 'string', default: '3' }, rows: { type: 'string', default: '1000000' }, rate: { type: 'string', default: '200' }, chunk: { type: 'string', default: '2000' } },
  strict: true,
});
const runs = positive(values.runs, '--runs');
const rows = positive(values.rows, '--rows');
const rate = positive(values.rate, '--rate');
const chunk = positive(values.chunk, '--chunk');
const results = await withBenchEnv(values, async (env) => {
  const big = 't_backfill_big';
  env.log(`creating ${rows} rows`);
  await env.admin.query(sixColumns(big));
  await env.admin.query(`INSERT INTO ${big} ${sixColumnRow('g')} FROM generate_series(1, ${rows}) AS g`);
  await env.admin.query(`VACUUM ANALYZE ${big}`);
  const out: BackfillResult[] = [];
  for (let run = 1; run <= runs; run++) out.push(await runBackfill(env, run, rows, rate, chunk, big));
  return out;
});
const m = (pick: (r: BackfillResult) => number | undefined): string => fmt(median(results.map(pick)));
process.stdout.write(
  `\nwal-listener backfill of ${rows} rows (chunks of ${chunk}) to JetStream while ${rate} commits/s stream: medians of ${runs} run(s)\n\n` +
    '| rows/s | daemon CPU s | CPU µs/row | live commits/s | live p50 before | p99 before | p50 during | p99 during | max during (ms) |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n' +
    `| ${m((r) => r.rowsPerSecond)} | ${m((r) => r.cpuSeconds)} | ${m((r) => (r.cpuSeconds === undefined ? undefined : (r.cpuSeconds * 1e6) / r.rows))} | ${m((r) => r.commitsPerSecond)} | ` +
    `${m((r) => r.before.p50)} | ${m((r) => r.before.p99)} | ${m((r) => r.during.p50)} | ${m((r) => r.during.p99)} | ${m((r) => r.during.max)} |\n`,
);
const notes = results.flatMap((r) => r.notes);
if (notes.length > 0) process.stdout.write(`\nNotes:\n${notes.map((n) => `- ${n}`).join('\n')}\n`);
if (values.json) process.stdout.write(`\n${JSON.stringify({ runs, rows, rate, chunk, results }, null, 2)}\n`);
