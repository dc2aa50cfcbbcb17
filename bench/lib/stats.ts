/** Small statistics helpers for benchmark figures. */

/** Median of the finite numbers in `values`; undefined when there are none. */
export function median(values: readonly (number | undefined)[]): number | undefined {
  const xs = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b);
  if (xs.length === 0) return undefined;
  const mid = xs.length >> 1;
  return xs.length % 2 === 1 ? xs[mid] : (xs[mid - 1]! + xs[mid]!) / 2;
}

/** Nearest-rank percentile (p in 0..100) of an ascending-sorted array. */
export function percentile(sorted: readonly number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** Wall-clock milliseconds since the epoch, with sub-millisecond resolution. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * An RFC 3339 timestamp with up to nanosecond digits ("2024-02-29T08:15:56.123456Z") as epoch
 * milliseconds with the fraction kept (Date.parse alone drops the microseconds).
 */
export function parseTimestampMs(text: string): number {
  const dot = text.indexOf('.', 19);
  if (dot === -1) return Date.parse(text);
  const end = text.length - 1; // the "Z"
  const seconds = Date.parse(`${text.slice(0, dot)}Z`);
  return seconds + Number(`0${text.slice(dot, end)}`) * 1000;
}
