/**
 * The benchmark's own arithmetic (bench/lib): /proc parsing, medians, ratios against the floor of
 * the same round, CPU per 100k rows, issue 12's verdicts, run selection and round order. No timing.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { roundOrder, selectRun } from '../../bench/lib/plan.js';
import { CLOCK_TICKS, mainThreadCpu, parseState, parseStatCpu, readCpu } from '../../bench/lib/proc.js';
import { formatTable, summarise, targetVerdict, type SummaryRow } from '../../bench/lib/report.js';
import type { Measurement } from '../../bench/lib/round.js';
import { median } from '../../bench/lib/stats.js';
import { WORKLOADS } from '../../bench/lib/workloads.js';

test('parseStatCpu reads utime+stime and cutime+cstime after a command name with spaces and parentheses', () => {
  // Fields: pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime ...
  const stat = `4242 (node (a b)) S 1 4242 4242 0 -1 4194560 100 0 0 0 ${3 * CLOCK_TICKS} ${CLOCK_TICKS} ${2 * CLOCK_TICKS} ${CLOCK_TICKS / 2} 20 0 11 0`;
  assert.deepEqual(parseStatCpu(stat), { own: 4, children: 2.5 });
  assert.equal(parseState(stat), 'S');
  assert.equal(parseState('7 (postgres) T 1 7 7 0 -1'), 'T');
});

test('mainThreadCpu reads the main thread alone: never more than the whole process, and it grows with work on the main thread', () => {
  const before = mainThreadCpu(process.pid)!;
  // Work on this thread until its figure moves (the tick is 10 ms), for at most 5 s of wall clock.
  const until = performance.now() + 5000;
  let main = before;
  while (main === before && performance.now() < until) {
    const step = performance.now() + 20;
    while (performance.now() < step);
    main = mainThreadCpu(process.pid)!;
  }
  assert.ok(main > before, `main thread CPU ${before} → ${main}`);
  assert.ok(main <= readCpu(process.pid)!.own);
  assert.equal(mainThreadCpu(2 ** 22 + 1), undefined);
});

test('median ignores missing and non-finite values and averages the middle pair', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([undefined, NaN, 5, Infinity]), 5);
  assert.equal(median([]), undefined);
});

function measurement(contender: Measurement['contender'], round: number, rowsPerSecond: number, cpuSeconds: number, extra: Partial<Measurement> = {}): Measurement {
  return { workload: 'a', contender, round, position: 0, rows: 200_000, rowsPerSecond, cpuSeconds, notes: [], ...extra };
}

test('summarise: the ratio is taken against the floor of the same round, then the median over rounds', () => {
  const rows = summarise(
    [
      measurement('floor', 1, 100_000, 0.8),
      measurement('floor', 2, 50_000, 0.8),
      measurement('floor', 3, 100_000, 0.8),
      // 0.5, 0.8 and 0.6 of the floor of their own round (median 0.6); the medians of the raw rates would say 0.5.
      measurement('daemon-nats', 1, 50_000, 1.0, { mainThreadCpuSeconds: 0.9, walsenderCpuSeconds: 0.6, peakRssMb: 120 }),
      measurement('daemon-nats', 2, 40_000, 2.0, { mainThreadCpuSeconds: 1.6, walsenderCpuSeconds: 0.8, peakRssMb: 140 }),
      measurement('daemon-nats', 3, 60_000, 1.2, { mainThreadCpuSeconds: 1.0, walsenderCpuSeconds: 0.7, peakRssMb: 100 }),
      { ...measurement('daemon-stdout', 1, 0, 0), rowsPerSecond: undefined, cpuSeconds: undefined, error: 'timed out' },
    ],
    ['a'],
    ['floor', 'daemon-nats', 'daemon-stdout'],
  );
  const nats = rows.find((r) => r.contender === 'daemon-nats')!;
  assert.equal(nats.ratio, 0.6);
  assert.equal(nats.rowsPerSecond, 50_000);
  assert.equal(nats.cpuPer100k, 0.6); // median CPU 1.2 s over 200,000 rows
  assert.equal(nats.walsenderPer100k, 0.35);
  // Other threads: 0.1, 0.4 and 0.2 s (median 0.2 s over 200,000 rows); the floor's rounds have no main-thread figure.
  assert.ok(Math.abs(nats.otherThreadsPer100k! - 0.1) < 1e-9);
  assert.equal(rows.find((r) => r.contender === 'floor')!.otherThreadsPer100k, undefined);
  assert.equal(nats.peakRssMb, 120);
  assert.equal(rows.find((r) => r.contender === 'floor')!.ratio, 1);
  const stdout = rows.find((r) => r.contender === 'daemon-stdout')!;
  assert.equal(stdout.failures, 1);
  assert.equal(stdout.rowsPerSecond, undefined);
});

test('targetVerdict applies issue 12 per workload and publisher, and only to the daemon', () => {
  const row = (over: Partial<SummaryRow>): SummaryRow => ({ workload: 'a', contender: 'daemon-nats', rounds: 3, failures: 0, ...over });
  assert.equal(targetVerdict(row({ cpuPer100k: 0.6, ratio: 0.59, peakRssMb: 151 })), 'CPU ≤ 0.6 ✓, ×floor ≥ 0.6 ✗, RSS ≤ 150 ✗');
  assert.equal(targetVerdict(row({ workload: 'd', contender: 'daemon-stdout', cpuPer100k: 1.6, peakRssMb: 90 })), 'CPU ≤ 1.5 ✗, RSS ≤ 150 ✓');
  assert.equal(targetVerdict(row({ workload: 'c', contender: 'daemon-stdout' })), 'CPU ≤ 0.8 ?, ×floor ≥ 0.9 ?, RSS ≤ 150 ?');
  assert.equal(targetVerdict(row({ contender: 'daemon-rabbitmq', peakRssMb: 100 })), 'RSS ≤ 150 ✓');
  assert.equal(targetVerdict(row({ contender: 'floor' })), undefined);
});

test('formatTable prints one markdown row per summary row, with missing figures as "-"', () => {
  const table = formatTable(
    [{ workload: 'b', contender: 'pg_recvlogical', rounds: 2, failures: 1, rowsPerSecond: 12_345.6, ratio: 1.234, cpuPer100k: 0.5 }],
    WORKLOADS,
    'title',
  );
  const lines = table.split('\n');
  assert.equal(lines[0], 'title');
  assert.equal(lines.length, 5);
  assert.match(lines[2]!, /\| CPU-s\/100k \| of which other threads \| walsender CPU-s\/100k \|/);
  assert.match(lines[4]!, /^\| \(b\) small-txns \| pg_recvlogical \(2\/3 rounds\) \| +12,346 \| +1\.23 \| +0\.50 \| +- \|/);
});

test('selectRun: workloads by letter or name, contenders by name or prefix, the floor always', () => {
  assert.deepEqual(selectRun('a,daemon-nats').contenders, ['floor', 'daemon-nats']);
  assert.deepEqual(selectRun('a,daemon-nats').workloads.map((w) => w.key), ['a']);
  assert.deepEqual(selectRun('toast-updates,daemon').contenders, ['floor', 'daemon-stdout', 'daemon-nats', 'daemon-rabbitmq']);
  assert.equal(selectRun('c').contenders.length, 8);
  assert.deepEqual(selectRun('d,floor-stdout').contenders, ['floor', 'floor-stdout']);
  assert.equal(selectRun(undefined).workloads.length, 4);
  assert.throws(() => selectRun('a,nonsense'), /unknown nonsense/);
});

test('selectRun with a baseline: each daemon contender chosen brings its baseline twin', () => {
  assert.deepEqual(selectRun('a,daemon-nats', true).contenders, ['floor', 'daemon-nats', 'baseline-nats']);
  assert.deepEqual(selectRun('baseline-stdout', true).contenders, ['floor', 'baseline-stdout']);
  assert.equal(selectRun(undefined, true).contenders.length, 11);
  assert.equal(selectRun(undefined, false).contenders.some((c) => c.startsWith('baseline-')), false);
});

test('roundOrder moves each round ceil(n / runs) places along', () => {
  const names = ['p0', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6'];
  assert.deepEqual(roundOrder(names, 1, 3), names);
  assert.deepEqual(roundOrder(names, 2, 3), ['p3', 'p4', 'p5', 'p6', 'p0', 'p1', 'p2']);
  assert.deepEqual(roundOrder(names, 3, 3), ['p6', 'p0', 'p1', 'p2', 'p3', 'p4', 'p5']);
  assert.deepEqual(roundOrder(names, 2, 1), names);
});
