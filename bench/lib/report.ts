/**
 * Turns the measurements of every round into one row per workload and contender (medians over the
 * rounds) and prints them as one markdown table, with issue 12's targets for the daemon.
 */
import { median } from './stats.js';
import type { ContenderName } from './names.js';
import type { Measurement } from './round.js';
import type { WorkloadSpec } from './workloads.js';

export interface SummaryRow {
  workload: WorkloadSpec['key'];
  contender: ContenderName;
  /** Rounds with figures (failed drains are left out). */
  rounds: number;
  failures: number;
  rowsPerSecond?: number;
  /** Median over rounds of this contender's rows/s divided by the floor's in the same round. */
  ratio?: number;
  cpuPer100k?: number;
  /** CPU of the contender's threads other than its main one (V8's background compiler and GC helpers). */
  otherThreadsPer100k?: number;
  walsenderPer100k?: number;
  brokerPer100k?: number;
  peakRssMb?: number;
  target?: string;
}

const per100k = (value: number | undefined, rows: number): number | undefined => (value === undefined ? undefined : (value / rows) * 1e5);

export function summarise(measurements: readonly Measurement[], workloads: readonly WorkloadSpec['key'][], contenders: readonly ContenderName[]): SummaryRow[] {
  const rows: SummaryRow[] = [];
  for (const workload of workloads) {
    for (const contender of contenders) {
      const all = measurements.filter((m) => m.workload === workload && m.contender === contender);
      if (all.length === 0) continue;
      const ok = all.filter((m) => m.error === undefined);
      const floorRate = (round: number): number | undefined =>
        measurements.find((m) => m.workload === workload && m.contender === 'floor' && m.round === round && m.error === undefined)?.rowsPerSecond;
      const row: SummaryRow = {
        workload,
        contender,
        rounds: ok.length,
        failures: all.length - ok.length,
        rowsPerSecond: median(ok.map((m) => m.rowsPerSecond)),
        ratio: median(ok.map((m) => (m.rowsPerSecond === undefined ? undefined : m.rowsPerSecond / (floorRate(m.round) ?? NaN)))),
        cpuPer100k: median(ok.map((m) => per100k(m.cpuSeconds, m.rows))),
        otherThreadsPer100k: median(
          ok.map((m) => per100k(m.cpuSeconds === undefined || m.mainThreadCpuSeconds === undefined ? undefined : m.cpuSeconds - m.mainThreadCpuSeconds, m.rows)),
        ),
        walsenderPer100k: median(ok.map((m) => per100k(m.walsenderCpuSeconds, m.rows))),
        brokerPer100k: median(ok.map((m) => per100k(m.brokerCpuSeconds, m.rows))),
        peakRssMb: median(ok.map((m) => m.peakRssMb)),
      };
      row.target = targetVerdict(row);
      rows.push(row);
    }
  }
  return rows;
}

/** Issue 12: CPU-seconds per 100k rows of the daemon (NATS, stdout), throughput against the floor, peak RSS. */
const CPU_TARGETS: Record<WorkloadSpec['key'], { nats: number; stdout: number }> = {
  a: { nats: 0.6, stdout: 0.45 },
  b: { nats: 2.0, stdout: 1.4 },
  c: { nats: 1.2, stdout: 0.8 },
  d: { nats: 2.5, stdout: 1.5 },
};
const RATIO_TARGETS: Partial<Record<`${WorkloadSpec['key']}:${ContenderName}`, number>> = {
  'a:daemon-stdout': 0.9,
  'c:daemon-stdout': 0.9,
  'a:daemon-nats': 0.6,
};
const PEAK_RSS_TARGET_MB = 150;

export function targetVerdict(row: SummaryRow): string | undefined {
  if (!row.contender.startsWith('daemon-')) return undefined;
  const parts: string[] = [];
  const check = (label: string, value: number | undefined, limit: number, atLeast = false): void => {
    const met = value === undefined ? undefined : atLeast ? value >= limit : value <= limit;
    parts.push(`${label} ${atLeast ? '≥' : '≤'} ${limit} ${met === undefined ? '?' : met ? '✓' : '✗'}`);
  };
  const cpu = row.contender === 'daemon-nats' ? CPU_TARGETS[row.workload].nats : row.contender === 'daemon-stdout' ? CPU_TARGETS[row.workload].stdout : undefined;
  if (cpu !== undefined) check('CPU', row.cpuPer100k, cpu);
  const ratio = RATIO_TARGETS[`${row.workload}:${row.contender}`];
  if (ratio !== undefined) check('×floor', row.ratio, ratio, true);
  check('RSS', row.peakRssMb, PEAK_RSS_TARGET_MB);
  return parts.join(', ');
}

export function formatTable(rows: readonly SummaryRow[], workloads: readonly WorkloadSpec[], title: string): string {
  const header = ['workload', 'contender', 'rows/s', '× floor', 'CPU-s/100k', 'of which other threads', 'walsender CPU-s/100k', 'broker CPU-s/100k', 'peak RSS MB', 'issue 12 target'];
  const name = (key: string): string => {
    const w = workloads.find((x) => x.key === key);
    return w ? `(${w.key}) ${w.name}` : key;
  };
  const cells = rows.map((r) => [
    name(r.workload),
    r.contender + (r.failures > 0 ? ` (${r.rounds}/${r.rounds + r.failures} rounds)` : ''),
    int(r.rowsPerSecond),
    dec(r.ratio),
    dec(r.cpuPer100k),
    dec(r.otherThreadsPer100k),
    dec(r.walsenderPer100k),
    dec(r.brokerPer100k),
    int(r.peakRssMb),
    r.target ?? '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const left = (i: number): boolean => i <= 1 || i === header.length - 1;
  const line = (c: string[]): string => `| ${c.map((v, i) => (left(i) ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (left(i) ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [title, '', line(header), rule, ...cells.map(line)].join('\n');
}

function int(value: number | undefined): string {
  return value === undefined ? '-' : Math.round(value).toLocaleString('en-US');
}

function dec(value: number | undefined): string {
  return value === undefined ? '-' : value.toFixed(2);
}
