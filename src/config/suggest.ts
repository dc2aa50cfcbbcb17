/**
 * "Did you mean" for config keys and WAL_ variables: the closest known name, when it is close
 * enough to be a typo rather than a different name.
 */

/** Edit distance with adjacent transpositions counted as one edit (optimal string alignment). */
export function editDistance(a: string, b: string): number {
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i]);
  for (let j = 1; j <= b.length; j++) rows[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    const row = rows[i]!;
    const prev = rows[i - 1]!;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(row[j]!, rows[i - 2]![j - 2]! + 1);
    }
  }
  return rows[a.length]![b.length]!;
}

/** The same name written with other separators or letter case: slot_name, SLOT-NAME, slotName. */
export function sameWithoutSeparators(a: string, b: string): boolean {
  const bare = (s: string): string => s.toLowerCase().replace(/[-_.]/g, '');
  return bare(a) === bare(b);
}

/** How many edits still count as a typo: one for short names, up to three for long ones. */
function tolerance(name: string): number {
  if (name.length <= 4) return 1;
  if (name.length <= 10) return 2;
  return 3;
}

/**
 * The candidate `name` most likely meant (compared in lower case), or undefined when none is
 * close: the same name with other separators, or within a few edits of it.
 */
export function closestName(name: string, candidates: Iterable<string>): string | undefined {
  const lower = name.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    if (sameWithoutSeparators(name, candidate)) return candidate;
    const distance = editDistance(lower, candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= tolerance(lower) ? best : undefined;
}
