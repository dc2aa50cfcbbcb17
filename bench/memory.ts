/**
 * Memory: one 1,000,000-row transaction drained to JetStream; the figure is the daemon's peak RSS
 * (VmHWM), which proves memory stays bounded by the in-flight window, not by the transaction.
 * The rate is printed as information (no pg_recvlogical comparison here).
 *
 * Run: node --import tsx bench/memory.ts [--runs 3]
 */
import { runCatchup } from './catchup.js';
import { rowExpression } from './lib/env.js';
import { isMain, runBench } from './lib/runner.js';
import { target, type Workload } from './lib/workload.js';

export const memory1m: Workload = {
  name: 'memory-1m',
  description: 'one 1,000,000-row transaction: peak RSS of the daemon',
  targets: [target('peak RSS', (r) => r.peakRssMb, 250, { unit: ' MB' })],
  run: (env, run) =>
    runCatchup(env, {
      name: 'memory-1m',
      rows: 1_000_000,
      txns: 1,
      raw: false,
      backlog: (table, rows) => [`INSERT INTO ${table} SELECT ${rowExpression('g')} FROM generate_series(1, ${rows}) AS g`],
    }, run),
};

export const workloads = [memory1m];

if (isMain(import.meta.url)) await runBench(workloads, process.argv.slice(2));
