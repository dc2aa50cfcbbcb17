/**
 * Runs workloads and prints one table of medians. Flags (all optional):
 *   --runs <n>          runs per workload (default 3); the table shows medians
 *   --only <a,b>        workloads to run (names or prefixes: catchup-big, catchup-small, live, memory-1m, catchup)
 *   --json              also print the results as JSON (after the table)
 *   --tsx               run the daemon from src/ through tsx instead of dist/cli.js
 *   --no-build          do not run `npm run build` first (dist mode)
 *   --cpu-prof <dir>    run the daemon with --cpu-prof into <dir> and print the top self-time functions
 *   --daemon-node-args=<flags>  extra node flags for the daemon, space-separated (e.g. --daemon-node-args=--max-old-space-size=128)
 *   --scale <x>         multiply row counts (e.g. 0.1 to try the bench quickly)
 *   --live-seconds <s>  live workload duration (default 20)
 *   --live-rate <n>     live workload commits per second (default 500)
 *   --quiet             no progress lines on stderr
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { killTracked } from './children.js';
import { REPO_ROOT, type DaemonLaunch } from './daemon.js';
import { openEnv, type BenchEnv } from './env.js';
import { summariseProfiles, formatProfileSummary } from './profile.js';
import { median } from './stats.js';
import type { RunResult, Workload } from './workload.js';

/** True when the module at `url` is the script node was started with. */
export function isMain(url: string): boolean {
  return process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(url);
}

export interface WorkloadSummary {
  workload: string;
  description: string;
  runs: RunResult[];
  median: RunResult;
  targets: { text: string; verdict: string }[];
}

export async function runBench(available: Workload[], argv: string[]): Promise<WorkloadSummary[]> {
  const { values } = parseArgs({
    args: argv,
    options: {
      runs: { type: 'string', default: '3' },
      only: { type: 'string' },
      json: { type: 'boolean', default: false },
      tsx: { type: 'boolean', default: false },
      'no-build': { type: 'boolean', default: false },
      'cpu-prof': { type: 'string' },
      'daemon-node-args': { type: 'string' },
      scale: { type: 'string', default: '1' },
      'live-seconds': { type: 'string', default: '20' },
      'live-rate': { type: 'string', default: '500' },
      quiet: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const runs = positive(values.runs, '--runs');
  const selected = select(available, values.only);
  const log = values.quiet ? () => {} : (message: string) => process.stderr.write(`[bench] ${message}\n`);
  const cpuProfDir = values['cpu-prof'] ? resolve(values['cpu-prof']) : undefined;
  if (cpuProfDir) mkdirSync(cpuProfDir, { recursive: true });
  const nodeArgs = values['daemon-node-args']?.split(/\s+/).filter(Boolean) ?? [];
  const launch: DaemonLaunch = { mode: values.tsx ? 'tsx' : 'dist', nodeArgs, ...(cpuProfDir ? { cpuProfDir } : {}) };
  if (launch.mode === 'dist' && !values['no-build']) build(log);

  const env = await openEnv({
    launch,
    scale: positive(values.scale, '--scale'),
    liveSeconds: positive(values['live-seconds'], '--live-seconds'),
    liveRate: positive(values['live-rate'], '--live-rate'),
    log,
  });
  let closed = false;
  const cleanup = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    killTracked();
    await env.close().catch((err: unknown) => process.stderr.write(`[bench] cleanup failed: ${String(err)}\n`));
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    process.stderr.write(`[bench] ${signal}: cleaning up\n`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', () => killTracked());

  const profilesBefore = new Set(cpuProfDir ? readdirSync(cpuProfDir) : []);
  const summaries: WorkloadSummary[] = [];
  try {
    for (const workload of selected) {
      const results: RunResult[] = [];
      for (let run = 1; run <= runs; run++) {
        log(`${workload.name}: run ${run} of ${runs}`);
        results.push(await workload.run(env as BenchEnv, run));
      }
      const med = medianResult(results);
      summaries.push({
        workload: workload.name,
        description: workload.description,
        runs: results,
        median: med,
        targets: workload.targets.map((t) => ({ text: t.text, verdict: t.check(med) })),
      });
    }
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  process.stdout.write(`\n${formatTable(summaries, runs, launch)}\n`);
  const notes = summaries.flatMap((s) => s.runs.flatMap((r) => r.notes ?? []));
  if (notes.length > 0) process.stdout.write(`\nNotes:\n${notes.map((n) => `- ${n}`).join('\n')}\n`);
  if (cpuProfDir) {
    const files = readdirSync(cpuProfDir).filter((f) => f.endsWith('.cpuprofile') && !profilesBefore.has(f)).map((f) => join(cpuProfDir, f));
    if (files.length > 0) process.stdout.write(`\nDaemon CPU profile (${files.length} file(s) in ${cpuProfDir}):\n${formatProfileSummary(summariseProfiles(files), 25)}\n`);
  }
  if (values.json) process.stdout.write(`\n${JSON.stringify({ runs, daemon: launch.mode, workloads: summaries }, null, 2)}\n`);
  return summaries;
}

function positive(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag} expects a positive number, got ${text}`);
  return n;
}

function select(available: Workload[], only: string | undefined): Workload[] {
  if (!only) return available;
  const wanted = only.split(',').map((s) => s.trim()).filter(Boolean);
  const picked = available.filter((w) => wanted.some((name) => w.name === name || w.name.startsWith(`${name}-`)));
  const unknown = wanted.filter((name) => !available.some((w) => w.name === name || w.name.startsWith(`${name}-`)));
  if (unknown.length > 0 || picked.length === 0) {
    throw new Error(`unknown workload ${unknown.join(', ') || only}; available: ${available.map((w) => w.name).join(', ')}`);
  }
  return picked;
}

function build(log: (message: string) => void): void {
  log('npm run build');
  const result = spawnSync('npm', ['run', 'build', '--silent'], { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  if (result.status !== 0) throw new Error(`npm run build failed (exit ${result.status}); fix the build or pass --tsx`);
}

const NUMERIC: (keyof RunResult)[] = ['rows', 'rawRate', 'ourRate', 'ratio', 'p50', 'p99', 'max', 'peakRssMb', 'steadyRssMb', 'seconds'];

/** Field by field medians (the ratio is the median of the per-run ratios). */
function medianResult(results: RunResult[]): RunResult {
  const out: Record<string, number | undefined> = {};
  for (const key of NUMERIC) out[key] = median(results.map((r) => r[key] as number | undefined));
  return out as unknown as RunResult;
}

function formatTable(summaries: WorkloadSummary[], runs: number, launch: DaemonLaunch): string {
  const header = ['workload', 'rows', 'raw rows/s', 'our rows/s', 'ratio', 'p50 ms', 'p99 ms', 'max ms', 'peak RSS MB', 'steady RSS MB', 'targets'];
  const rows = summaries.map((s) => {
    const m = s.median;
    return [
      s.workload,
      int(m.rows),
      int(m.rawRate),
      int(m.ourRate),
      m.ratio === undefined ? '-' : m.ratio.toFixed(2),
      dec(m.p50),
      dec(m.p99),
      dec(m.max),
      int(m.peakRssMb),
      int(m.steadyRssMb),
      s.targets.map((t) => `${t.text}: ${t.verdict}`).join('; '),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i === 0 || i === widths.length - 1 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  const title = `wal-listener benchmarks: medians of ${runs} run(s), daemon from ${launch.mode === 'dist' ? 'dist/cli.js' : 'src/cli.ts (tsx)'}${launch.cpuProfDir ? ' under --cpu-prof' : ''}${launch.nodeArgs?.length ? ` with ${launch.nodeArgs.join(' ')}` : ''}`;
  return [title, '', line(header), rule, ...rows.map(line)].join('\n');
}

function int(value: number | undefined): string {
  return value === undefined ? '-' : Math.round(value).toLocaleString('en-US');
}

function dec(value: number | undefined): string {
  return value === undefined ? '-' : value.toFixed(1);
}
