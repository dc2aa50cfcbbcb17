/**
 * `npm run bench`: issue 12's throughput table. Every contender drains the same backlog from its
 * own slot in a private PostgreSQL cluster, round after round, the order rotating; one markdown
 * table of medians at the end. See bench/README.md for what each figure is and how it is taken.
 *
 * Flags (after `--` with npm):
 *   --runs <n>          rounds (default 3); the table shows medians
 *   --only <a,b,...>    workloads (a, b, c, d or their names) and/or contenders (floor, daemon-nats,
 *                       daemon, ...: a name or a prefix); the floor always runs, for the ratio
 *   --scale <x>         multiply row counts (0.1 for a quick try)
 *   --quick             one round at scale 0.2 (about two minutes)
 *   --json              also print every drain's raw figures as JSON
 *   --tsx               run the daemon from src/ through tsx instead of dist/cli.js
 *   --no-build          do not run `npm run build` first
 *   --cpu-prof <dir>    run the daemon under --cpu-prof (one directory per drain) and print its top functions
 *   --baseline <dir>    also run the daemon built in another checkout (<dir>/dist/cli.js) as
 *                       baseline-stdout|nats|rabbitmq, next to each daemon contender: before/after in one run
 *   --daemon-node-args=<flags>  extra node flags for the daemon
 *   --quiet             no progress lines on stderr
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildPeers } from './lib/peers.js';
import { formatProfileSummary, summariseProfiles } from './lib/profile.js';
import { formatTable, summarise } from './lib/report.js';
import { roundOrder, selectRun } from './lib/plan.js';
import { runWorkloadRound, type Measurement } from './lib/round.js';
import { COMMON_OPTIONS, positive, withBenchEnv } from './lib/runner.js';
import { median } from './lib/stats.js';

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { ...COMMON_OPTIONS, only: { type: 'string' }, scale: { type: 'string' }, quick: { type: 'boolean', default: false }, baseline: { type: 'string' } },
  strict: true,
});
const runsGiven = process.argv.some((a) => a === '--runs' || a.startsWith('--runs='));
const runs = values.quick && !runsGiven ? 1 : positive(values.runs, '--runs');
const scale = positive(values.scale ?? (values.quick ? '0.2' : '1'), '--scale');
const { workloads, contenders } = selectRun(values.only, values.baseline !== undefined);

const measurements: Measurement[] = [];
await withBenchEnv(values, async (env) => {
  const peerDir = buildPeers();
  for (let round = 1; round <= runs; round++) {
    const order = roundOrder(contenders, round, runs);
    for (const workload of workloads) measurements.push(...(await runWorkloadRound({ env, workload, round, order, scale, peerDir })));
  }
});

const rows = summarise(measurements, workloads.map((w) => w.key), contenders);
const daemonFrom = values.tsx ? 'src/cli.ts (tsx)' : 'dist/cli.js';
const title =
  `wal-listener throughput: medians of ${runs} round(s)${scale !== 1 ? ` at scale ${scale}` : ''}, daemon from ${daemonFrom}` +
  `${values.baseline ? `, baseline from ${values.baseline}/dist/cli.js` : ''}` +
  `${values['cpu-prof'] ? ' under --cpu-prof' : ''}${values['daemon-node-args'] ? ` with ${values['daemon-node-args']}` : ''}; ` +
  'CPU-s/100k: CPU-seconds per 100,000 rows';
const load = measurements.map((m) => m.loadAverage).filter((v): v is number => v !== undefined);
const loadLine = load.length ? `\nMachine load (1-min average) when drains started: median ${median(load)!.toFixed(1)}, range ${Math.min(...load).toFixed(1)}–${Math.max(...load).toFixed(1)}.\n` : '';
process.stdout.write(`\n${formatTable(rows, workloads, title)}\n${loadLine}`);
const problems = measurements.flatMap((m) => [...(m.error ? [`failed: ${m.error}`] : []), ...m.notes].map((n) => `(${m.workload}) ${m.contender} round ${m.round}: ${n}`));
if (problems.length > 0) process.stdout.write(`\nNotes:\n${problems.map((p) => `- ${p}`).join('\n')}\n`);
if (values['cpu-prof']) printProfiles(values['cpu-prof']);
if (values.json) process.stdout.write(`\n${JSON.stringify({ runs, scale, daemon: daemonFrom, measurements, summary: rows }, null, 2)}\n`);

function printProfiles(dir: string): void {
  for (const sub of readdirSync(dir).sort()) {
    const path = join(dir, sub);
    let files: string[];
    try {
      files = readdirSync(path).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(path, f));
    } catch {
      continue; // not a directory
    }
    if (files.length > 0) process.stdout.write(`\nDaemon CPU profile ${sub}:\n${formatProfileSummary(summariseProfiles(files), 15)}\n`);
  }
}
