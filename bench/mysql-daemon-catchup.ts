/**
 * Catch-up of the whole daemon with source.type mysql: a 300,000-row transaction already in
 * MariaDB's binlog (bench/lib/mysql-backlog.ts), read from the position before it by the built
 * daemon (`node dist/cli.js`, as users run it) into (a) the stdout publisher (events counted, then
 * dropped) and (b) NATS JetStream (a private nats-server, file storage). Timed from the daemon's
 * "binlog streaming" log line until every row is out (stdout: the last event line; JetStream: the
 * stream holds every message). Figures: rows/s and the daemon's CPU-seconds per 100k rows
 * (/proc/<pid>/stat over the same interval); for JetStream also nats-server's CPU.
 *
 * Run: node --import tsx bench/mysql-daemon-catchup.ts [--runs 3] [--rows 300000] [--no-build] [--tsx]
 * (--tsx: run src/cli.ts through tsx instead of building; the timed interval starts after startup.)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import type { MysqlPosition } from '../src/sources/mysql/position.js';
import { startNats, streamCount, type NatsServer } from '../test/support/nats.js';
import { killTracked, LineChild } from './lib/children.js';
import { findPid } from './lib/env.js';
import { MYSQL, parseRuns, writeBacklog } from './lib/mysql-backlog.js';
import { totalCpu } from './lib/proc.js';
import { median } from './lib/stats.js';

const REPO_ROOT = join(import.meta.dirname, '..');

interface Figures {
  rowsPerSecond: number;
  cpuPer100k: number;
  /** nats-server's CPU-seconds per 100k rows over the same interval (JetStream only). */
  brokerCpuPer100k?: number;
}

type Target = 'stdout' | 'nats';

async function drain(target: Target, database: string, start: MysqlPosition, rows: number, run: number, dir: string, nats: NatsServer, natsPid: number | undefined): Promise<Figures> {
  const store = join(dir, `pos-${target}-${run}.json`);
  writeFileSync(store, JSON.stringify(start));
  const topic = `wl_bench_my_${target}_${run}_${Date.now().toString(36)}`;
  const config = {
    source: { type: 'mysql' },
    mysql: { ...MYSQL, serverId: 910_000 + run * 2 + (target === 'nats' ? 1 : 0), databases: [database], positionStore: `file:${store}` },
    logger: { level: 'info', fmt: 'json' },
    publisher: target === 'nats' ? { type: 'nats', address: nats.url, topic } : { type: 'stdout', topic },
  };
  const configPath = join(dir, `config-${target}-${run}.yml`);
  writeFileSync(configPath, YAML.stringify(config));
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('WAL_')) env[k] = v;

  let lines = 0;
  let doneAt = 0;
  let finished: () => void = () => {};
  const allOut = new Promise<void>((resolve) => (finished = resolve));
  const entry = TSX ? ['--import', 'tsx', join(REPO_ROOT, 'src/cli.ts')] : [join(REPO_ROOT, 'dist/cli.js')];
  const daemon = new LineChild(process.execPath, [...entry, '-c', configPath], {
    cwd: REPO_ROOT,
    env,
    ...(target === 'stdout'
      ? {
          onStdout: (chunk: Buffer) => {
            for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++;
            if (lines >= rows && doneAt === 0) {
              doneAt = performance.now();
              finished();
            }
          },
        }
      : {}),
  });
  try {
    const streaming = await daemon.waitLine((line) => line.includes('"binlog streaming"'), 60_000, '"binlog streaming" log line');
    const cpuStart = totalCpu(daemon.pid)!;
    const brokerStart = natsPid ? totalCpu(natsPid) : undefined;
    if (target === 'nats') {
      const nc = await nats.connect();
      try {
        while ((await streamCount(nc, topic)) < rows) await new Promise((r) => setTimeout(r, 50));
      } finally {
        await nc.close();
      }
      doneAt = performance.now();
    } else {
      await allOut;
    }
    const cpu = totalCpu(daemon.pid)! - cpuStart;
    const brokerCpu = natsPid && brokerStart !== undefined ? totalCpu(natsPid)! - brokerStart : undefined;
    const seconds = (doneAt - streaming.at) / 1000;
    return {
      rowsPerSecond: rows / seconds,
      cpuPer100k: cpu * (100_000 / rows),
      ...(target === 'nats' && brokerCpu !== undefined ? { brokerCpuPer100k: brokerCpu * (100_000 / rows) } : {}),
    };
  } finally {
    await daemon.stop();
  }
}

const argv = process.argv.slice(2);
const { runs, rows } = parseRuns(argv);
const TSX = argv.includes('--tsx');
if (!TSX && !argv.includes('--no-build')) execFileSync('npm', ['run', '-s', 'build'], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
process.once('SIGINT', () => {
  killTracked();
  process.exit(130);
});
const dir = mkdtempSync(join(tmpdir(), 'wl-bench-mysql-daemon-'));
const nats = await startNats();
const natsPid = findPid((args) => args[0]?.endsWith('nats-server') === true && args.includes(String(nats.port)));
const results: Record<Target, Figures[]> = { stdout: [], nats: [] };
const backlog = await writeBacklog(rows, 'daemon');
try {
  for (let run = 1; run <= runs; run++) {
    for (const target of ['stdout', 'nats'] as const) {
      const figures = await drain(target, backlog.database, backlog.start, rows, run, dir, nats, natsPid);
      results[target].push(figures);
      process.stderr.write(
        `[bench] run ${run} daemon → ${target.padEnd(6)}: ${figures.rowsPerSecond.toFixed(0)} rows/s, ${figures.cpuPer100k.toFixed(2)} CPU-s/100k rows` +
          `${figures.brokerCpuPer100k !== undefined ? ` (nats-server ${figures.brokerCpuPer100k.toFixed(2)})` : ''}\n`,
      );
    }
  }
} finally {
  await backlog.drop();
  await nats.stop();
  rmSync(dir, { recursive: true, force: true });
}
const line = (name: string, all: Figures[]): string =>
  `| ${name} | ${median(all.map((f) => f.rowsPerSecond))!.toFixed(0)} | ${median(all.map((f) => f.cpuPer100k))!.toFixed(2)} | ${all.map((f) => f.rowsPerSecond.toFixed(0)).join(', ')} | ${all.map((f) => f.cpuPer100k.toFixed(2)).join(', ')} |`;
console.log(`Daemon catch-up from MariaDB's binlog, one ${rows}-row transaction, ${runs} runs (medians)\n`);
console.log('| daemon → | rows/s | daemon CPU-s per 100k rows | rows/s of each run | CPU-s of each run |\n|---|---|---|---|---|');
console.log(line('stdout', results.stdout));
console.log(line('NATS JetStream', results.nats));
const broker = median(results.nats.map((f) => f.brokerCpuPer100k));
if (broker !== undefined) console.log(`\nnats-server: ${broker.toFixed(2)} CPU-s per 100k rows (median)`);
