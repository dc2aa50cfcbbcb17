/**
 * Catch-up: a backlog written while nothing reads the slots, then drained.
 *   catchup-big    one 300,000-row transaction
 *   catchup-small  30,000 single-row transactions (a procedure looping INSERT; COMMIT)
 *
 * Two pgoutput slots are created at the same point, before the backlog, so both read the same
 * WAL. pg_recvlogical drains one to /dev/null (wall clock from its "starting log streaming" line to
 * its exit at --endpos = the WAL insert position after the backlog): the raw rate. Then the daemon
 * drains the other to NATS JetStream (file storage, every publish acked): timed from its
 * "replication streaming" log line until the stream holds all N messages (polled every 20 ms; a
 * stored message is an acknowledged one).
 * Rate = N / seconds.
 *
 * Run: node --import tsx bench/catchup.ts [--runs 3] [--only catchup-big] (flags: bench/README.md)
 */
import { startBenchDaemon, type BenchDaemon } from './lib/daemon.js';
import {
  bytesPerMessage, createBenchTable, createSlot, currentLsn, deleteStream, drainWithRecvlogical, dropSlot, PUBLICATION,
  rowExpression, slotStats, storedCount, waitFlushed, waitForStored, writeBacklog, type BenchEnv,
} from './lib/env.js';
import { isMain, runBench } from './lib/runner.js';
import { target, type RunResult, type Workload } from './lib/workload.js';

interface CatchupSpec {
  name: string;
  rows: number;
  /** SQL that writes `rows` rows into `table` (run with synchronous_commit off; nothing is timed yet). */
  backlog(table: string, rows: number): string[];
  /** Transactions in the backlog (pg_recvlogical must have decoded at least these). */
  txns: number;
  /** Also drain a second slot with pg_recvlogical for the raw rate (default true). */
  raw?: boolean;
}

/** Drains a backlog with pg_recvlogical (optional) and with the daemon; shared with memory.ts. */
export async function runCatchup(env: BenchEnv, spec: CatchupSpec, run: number): Promise<RunResult> {
  const rows = Math.max(1, Math.round(spec.rows * env.scale));
  const tag = `${spec.name.replace(/[^a-z0-9]/g, '_')}_${run}`;
  const table = `t_${tag}`;
  const topic = `bench_${tag}`;
  const rawSlot = spec.raw === false ? null : env.db.slotName('raw');
  const ourSlot = env.db.slotName('our');
  const notes: string[] = [];
  let daemon: BenchDaemon | undefined;
  await createBenchTable(env, table);
  try {
    if (rawSlot) await createSlot(env, rawSlot);
    await createSlot(env, ourSlot);
    const writeStarted = performance.now();
    await writeBacklog(env, spec.backlog(table, rows));
    const endLsn = await currentLsn(env);
    await waitFlushed(env, endLsn);
    env.log(`${spec.name} run ${run}: wrote ${rows} rows in ${((performance.now() - writeStarted) / 1000).toFixed(1)} s (WAL up to ${endLsn})`);

    let rawRate: number | undefined;
    if (rawSlot) {
      const raw = await drainWithRecvlogical(env, rawSlot, endLsn);
      rawRate = rows / raw.seconds;
      // pg_recvlogical output goes to /dev/null: check with the server that it decoded the whole backlog.
      const stats = await slotStats(env, rawSlot);
      const txns = Math.round(spec.txns * env.scale) || 1;
      if (!stats || stats.txns < txns) {
        throw new Error(`pg_recvlogical decoded ${stats?.txns ?? 'no'} transactions of ${txns}: it stopped before ${endLsn}`);
      }
      await dropSlot(env, rawSlot);
      env.log(
        `${spec.name} run ${run}: pg_recvlogical ${raw.seconds.toFixed(2)} s streaming (${raw.totalSeconds.toFixed(2)} s with connection setup), ` +
          `${Math.round(rawRate)} rows/s; decoded ${stats.txns} txns, ${(stats.bytes / 1e6).toFixed(0)} MB, spilled ${(stats.spillBytes / 1e6).toFixed(0)} MB`,
      );
    }

    daemon = await startBenchDaemon(env.launch, {
      slot: ourSlot,
      publication: PUBLICATION,
      topic,
      natsUrl: env.nats.url,
      database: { host: env.db.host, port: env.db.port, name: env.db.name, user: env.db.user },
    });
    const peak = { mb: 0 };
    const sampler = setInterval(() => {
      const memory = daemon?.memory();
      if (memory && memory.peakMb > peak.mb) peak.mb = memory.peakMb;
    }, 250);
    let doneAt: number;
    try {
      doneAt = await waitForStored(env, topic, rows, 60_000 + rows);
    } finally {
      clearInterval(sampler);
    }
    const seconds = (doneAt - daemon.streamingAt) / 1000;
    const memory = daemon.memory();
    const peakRssMb = Math.max(peak.mb, memory?.peakMb ?? 0);
    const problems = daemon.problems();
    const code = await daemon.stop();
    daemon = undefined;
    if (code !== 0) notes.push(`${spec.name} run ${run}: daemon exited with ${code}`);
    for (const p of problems.slice(0, 3)) notes.push(`${spec.name} run ${run}: daemon ${String(p.level)}: ${String(p.msg)}`);
    const stored = await storedCount(env, topic);
    if (stored !== rows) notes.push(`${spec.name} run ${run}: stream holds ${stored} messages, expected ${rows}`);
    const ourRate = rows / seconds;
    const bytes = await bytesPerMessage(env, topic);
    const ourStats = await slotStats(env, ourSlot);
    env.log(
      `${spec.name} run ${run}: daemon ${seconds.toFixed(2)} s, ${Math.round(ourRate)} rows/s, peak RSS ${peakRssMb.toFixed(0)} MB` +
        (bytes ? `, ${Math.round(bytes)} bytes stored per message` : '') +
        (ourStats ? `; its slot spilled ${(ourStats.spillBytes / 1e6).toFixed(0)} MB` : ''),
    );
    return { rows, rawRate, ourRate, ratio: rawRate ? ourRate / rawRate : undefined, peakRssMb, seconds, notes };
  } finally {
    await daemon?.kill();
    if (rawSlot) await dropSlot(env, rawSlot);
    await dropSlot(env, ourSlot);
    await deleteStream(env, topic);
    await env.db.sql(`DROP TABLE IF EXISTS ${table}`).catch(() => {});
  }
}

const ratioTargets = [
  target('ratio', (r) => r.ratio, 0.5, { atLeast: true, stretch: 0.8 }),
  target('peak RSS', (r) => r.peakRssMb, 250, { unit: ' MB' }),
];

export const catchupBig: Workload = {
  name: 'catchup-big',
  description: 'one 300,000-row transaction drained to JetStream vs pg_recvlogical',
  targets: ratioTargets,
  run: (env, run) =>
    runCatchup(env, {
      name: 'catchup-big',
      rows: 300_000,
      txns: 1,
      backlog: (table, rows) => [`INSERT INTO ${table} SELECT ${rowExpression('g')} FROM generate_series(1, ${rows}) AS g`],
    }, run),
};

export const catchupSmall: Workload = {
  name: 'catchup-small',
  description: '30,000 single-row transactions drained to JetStream vs pg_recvlogical',
  targets: ratioTargets,
  run: (env, run) =>
    runCatchup(env, {
      name: 'catchup-small',
      rows: 30_000,
      txns: 30_000,
      backlog: (table, rows) => [
        `CREATE PROCEDURE fill_${table}(n int) LANGUAGE plpgsql AS $$
         BEGIN
           FOR g IN 1..n LOOP
             INSERT INTO ${table} SELECT ${rowExpression('g')};
             COMMIT;
           END LOOP;
         END $$`,
        `CALL fill_${table}(${rows})`,
        `DROP PROCEDURE fill_${table}`,
      ],
    }, run),
};

export const workloads = [catchupBig, catchupSmall];

if (isMain(import.meta.url)) await runBench(workloads, process.argv.slice(2));
