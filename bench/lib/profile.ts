/**
 * Aggregates V8 .cpuprofile files (node --cpu-prof) by function self time, and by file.
 * Self time of a node = the sum of the time deltas of the samples that landed on it.
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { REPO_ROOT } from './daemon.js';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileEntry {
  name: string;
  where: string;
  selfMs: number;
  /** For native and built-in code (no file): the nearest calling JavaScript function, by time. */
  callers?: Map<string, number>;
}

export interface ProfileSummary {
  totalMs: number;
  /** Time the thread was idle (waiting for I/O). */
  idleMs: number;
  functions: ProfileEntry[];
  files: ProfileEntry[];
}

export function summariseProfiles(paths: string[]): ProfileSummary {
  const byFunction = new Map<string, ProfileEntry>();
  const byFile = new Map<string, ProfileEntry>();
  let totalMs = 0;
  let idleMs = 0;
  for (const path of paths) {
    const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
    const nodes = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
    const parents = new Map<number, number>();
    for (const n of profile.nodes) for (const child of n.children ?? []) parents.set(child, n.id);
    for (let i = 0; i < profile.samples.length; i++) {
      const frame = nodes.get(profile.samples[i]!);
      // timeDeltas[i] is the time before sample i; attribute it to that sample (µs → ms).
      const ms = (profile.timeDeltas[i] ?? 0) / 1000;
      if (!frame) continue;
      totalMs += ms;
      if (frame.functionName === '(idle)') {
        idleMs += ms;
        continue;
      }
      const file = shortUrl(frame.url);
      const where = file ? `${file}:${frame.lineNumber + 1}` : '';
      const name = frame.functionName || '(anonymous)';
      const entry = add(byFunction, `${name}@${where}`, name, where, ms);
      if (!isUserCode(frame.url) && !name.startsWith('(')) {
        // Native and node: internal code is charged to the JavaScript file that called it.
        const caller = nearestUserFrame(profile.samples[i]!, parents, nodes);
        entry.callers ??= new Map();
        entry.callers.set(caller.label, (entry.callers.get(caller.label) ?? 0) + ms);
        add(byFile, caller.file || name, caller.file ? packageOf(caller.file) : name, caller.file, ms);
      } else {
        add(byFile, file || name, file ? packageOf(file) : name, file, ms);
      }
    }
  }
  const sorted = (m: Map<string, ProfileEntry>): ProfileEntry[] => [...m.values()].sort((a, b) => b.selfMs - a.selfMs);
  return { totalMs, idleMs, functions: sorted(byFunction), files: sorted(byFile) };
}

function add(map: Map<string, ProfileEntry>, key: string, name: string, where: string, ms: number): ProfileEntry {
  let entry = map.get(key);
  if (entry) entry.selfMs += ms;
  else map.set(key, (entry = { name, where, selfMs: ms }));
  return entry;
}

/** Code in a file of this repository or node_modules (not native, not node: internals). */
function isUserCode(url: string): boolean {
  return url.startsWith('file://') || url.startsWith('/');
}

function nearestUserFrame(id: number, parents: Map<number, number>, nodes: Map<number, CallFrame>): { label: string; file: string } {
  for (let at = parents.get(id); at !== undefined; at = parents.get(at)) {
    const frame = nodes.get(at);
    if (frame && isUserCode(frame.url)) {
      const file = shortUrl(frame.url);
      return { label: `${frame.functionName || '(anonymous)'} ${file}:${frame.lineNumber + 1}`, file };
    }
  }
  return { label: '(no JavaScript caller)', file: '' };
}

function shortUrl(url: string): string {
  if (!url) return '';
  const path = url.startsWith('file://') ? new URL(url).pathname : url;
  return path.startsWith('/') ? relative(REPO_ROOT, path) : path;
}

/** "node_modules/@nats-io/nats-core/lib/x.js" → "@nats-io/nats-core"; "dist/x.js" → "dist/x.js". */
function packageOf(file: string): string {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(file);
  return m ? m[1]! : file;
}

export function formatProfileSummary(summary: ProfileSummary, top = 25): string {
  const busy = summary.totalMs - summary.idleMs;
  const pct = (ms: number): string => `${((100 * ms) / (busy || 1)).toFixed(1).padStart(5)}%`;
  const lines = [
    `sampled ${(summary.totalMs / 1000).toFixed(2)} s, idle ${(summary.idleMs / 1000).toFixed(2)} s, busy ${(busy / 1000).toFixed(2)} s (percentages are of busy time)`,
    '',
    `top ${top} functions by self time:`,
    ...summary.functions.slice(0, top).flatMap((e) => [
      `  ${e.selfMs.toFixed(0).padStart(7)} ms ${pct(e.selfMs)}  ${e.name}  ${e.where}`,
      ...[...(e.callers ?? [])]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 3)
        .map(([caller, ms]) => `                    ${ms.toFixed(0).padStart(5)} ms from ${caller}`),
    ]),
    '',
    'by file (self time; native and node: internals charged to the calling file):',
  ];
  const files = new Map<string, number>();
  for (const e of summary.files) files.set(e.where || e.name, (files.get(e.where || e.name) ?? 0) + e.selfMs);
  const byPackage = new Map<string, number>();
  for (const e of summary.files) byPackage.set(e.name, (byPackage.get(e.name) ?? 0) + e.selfMs);
  for (const [file, ms] of [...files].sort((a, b) => b[1] - a[1]).slice(0, 15)) lines.push(`  ${ms.toFixed(0).padStart(7)} ms ${pct(ms)}  ${file}`);
  lines.push('', 'by package (same attribution):');
  for (const [name, ms] of [...byPackage].sort((a, b) => b[1] - a[1]).slice(0, 10)) lines.push(`  ${ms.toFixed(0).padStart(7)} ms ${pct(ms)}  ${name}`);
  return lines.join('\n');
}
