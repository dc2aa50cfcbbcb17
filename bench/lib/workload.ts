/** What a benchmark scenario is and what one run of it reports. */
import type { BenchEnv } from './env.js';

export interface RunResult {
  /** Row changes (= events) in the workload. */
  rows: number;
  /** pg_recvlogical draining the same WAL, rows/s. */
  rawRate?: number;
  /** The daemon, rows/s (catch-up: until JetStream stored them all; live: commits written per second). */
  ourRate?: number;
  /** ourRate / rawRate of this run. */
  ratio?: number;
  /** Commit-to-arrival latency, ms. */
  p50?: number;
  p99?: number;
  max?: number;
  /** Daemon VmHWM just before it was stopped, MB. */
  peakRssMb?: number;
  /** Largest daemon VmRSS sampled during the steady part of the live workload, MB. */
  steadyRssMb?: number;
  /** Seconds the daemon took (information). */
  seconds?: number;
  /** Warnings worth printing under the table (lost events, daemon warnings, ...). */
  notes?: string[];
}

export interface Target {
  /** e.g. "ratio ≥ 0.5 (stretch 0.8)". */
  text: string;
  /** Checks the medians: 'pass', 'stretch' (met the stretch goal too) or 'fail'. */
  check(result: RunResult): 'pass' | 'stretch' | 'fail' | 'n/a';
}

export interface Workload {
  name: string;
  description: string;
  targets: Target[];
  run(env: BenchEnv, run: number): Promise<RunResult>;
}

/** A target "value ≤ limit" (or ≥ with `atLeast`) with an optional stretch limit. */
export function target(
  label: string,
  pick: (r: RunResult) => number | undefined,
  limit: number,
  options: { stretch?: number; atLeast?: boolean; unit?: string } = {},
): Target {
  const ok = (v: number, l: number): boolean => (options.atLeast ? v >= l : v <= l);
  const unit = options.unit ?? '';
  return {
    text: `${label} ${options.atLeast ? '≥' : '≤'} ${limit}${unit}${options.stretch !== undefined ? ` (stretch ${options.stretch}${unit})` : ''}`,
    check(result) {
      const value = pick(result);
      if (value === undefined) return 'n/a';
      if (options.stretch !== undefined && ok(value, options.stretch)) return 'stretch';
      return ok(value, limit) ? 'pass' : 'fail';
    },
  };
}
