/** Which workloads and contenders a run has, and the order of the contenders in each round. */
import { BASELINE_CONTENDERS, CONTENDERS, type ContenderName } from './names.js';
import { WORKLOADS, type WorkloadSpec } from './workloads.js';

/**
 * `--only` entries name workloads (key, name) or contenders (name or prefix, e.g. `daemon`).
 * With a baseline, every daemon contender chosen brings its baseline twin (daemon-nats: baseline-nats).
 */
export function selectRun(only: string | undefined, baseline = false): { workloads: WorkloadSpec[]; contenders: ContenderName[] } {
  const wanted = only?.split(',').map((s) => s.trim()).filter(Boolean) ?? [];
  const isWorkload = (w: WorkloadSpec, s: string): boolean => s === w.key || s === w.name;
  const isContender = (c: string, s: string): boolean => c === s || c.startsWith(`${s}-`);
  const unknown = wanted.filter((s) => !WORKLOADS.some((w) => isWorkload(w, s)) && !CONTENDERS.some((c) => isContender(c, s)));
  if (unknown.length > 0) {
    throw new Error(`--only: unknown ${unknown.join(', ')}; workloads: ${WORKLOADS.map((w) => `${w.key} (${w.name})`).join(', ')}; contenders: ${CONTENDERS.join(', ')}`);
  }
  const workloads = WORKLOADS.filter((w) => wanted.some((s) => isWorkload(w, s)));
  const namesContenders = wanted.some((s) => CONTENDERS.some((c) => isContender(c, s)));
  const chosen = (c: ContenderName): boolean => !namesContenders || c === 'floor' || wanted.some((s) => isContender(c, s));
  const twin = (c: ContenderName): ContenderName => c.replace(/^baseline-/, 'daemon-') as ContenderName;
  return {
    workloads: workloads.length > 0 ? workloads : [...WORKLOADS],
    contenders: CONTENDERS.filter((c) => ((BASELINE_CONTENDERS as readonly string[]).includes(c) ? baseline && (chosen(c) || chosen(twin(c))) : chosen(c))),
  };
}

export function rotate<T>(items: readonly T[], by: number): T[] {
  const k = by % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

/**
 * Round `round` (1-based) of `runs` starts `ceil(n / runs)` places further along than the one
 * before, so that over the rounds each contender runs early, in the middle and late.
 */
export function roundOrder<T>(contenders: readonly T[], round: number, runs: number): T[] {
  return rotate(contenders, (round - 1) * Math.ceil(contenders.length / runs));
}
