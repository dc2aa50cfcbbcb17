/**
 * The two JSON-escape scans of long strings (src/pipeline/escape-scan.ts) side by side, rounds
 * interleaved: CPU-microseconds per string of workload (d)'s text (4,096 bytes, a 32-character hex
 * string repeated, nothing to escape) and of a 4 KiB JSON-like text with 6 quotes in every 42 bytes.
 *
 *   node --import tsx bench/escape-scan.ts [--rounds 5]
 */
import { parseArgs } from 'node:util';
import { escapeScanner } from '../src/pipeline/escape-scan.js';
import { median } from './lib/stats.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' } } });
const ROUNDS = Number(values.rounds);
const STRINGS = 20_000;

/** STRINGS copies of `text` at unaligned offsets in one buffer, as texts lie in received frames. */
function corpus(text: Buffer): { buf: Buffer; at: number[] } {
  const stride = text.length + 37;
  const buf = Buffer.alloc(STRINGS * stride);
  const at: number[] = [];
  for (let i = 0; i < STRINGS; i++) {
    text.copy(buf, i * stride + 5);
    at.push(i * stride + 5);
  }
  return { buf, at };
}

const texts = {
  'hex 4 KiB, nothing to escape': Buffer.from('0123456789abcdef0123456789abcdef'.repeat(128)),
  'JSON-like 4 KiB, 6 quotes in every 42 bytes': Buffer.from(`"k": 123456789, "v": "abcdefghijklmnopqr", `.repeat(100).slice(0, 4096)),
};

const figures = new Map<string, number[]>();
/** Bytes to escape found per text: both scans must agree. */
const counts = new Map<string, number>();
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, text] of Object.entries(texts)) {
    const { buf, at } = corpus(text);
    // Rotating order, so neither scan always runs first.
    const kinds = round % 2 === 0 ? (['words', 'wasm'] as const) : (['wasm', 'words'] as const);
    for (const kind of kinds) {
      const scanner = escapeScanner(kind);
      let found = 0;
      const start = process.cpuUsage();
      for (const from of at) {
        const to = from + text.length;
        scanner.reset(buf, from, to);
        for (let i = scanner.next(from); i < to; i = scanner.next(i + 1)) found++;
      }
      const used = process.cpuUsage(start);
      const key = `${name}: ${kind}`;
      figures.set(key, [...(figures.get(key) ?? []), ((used.user + used.system) / STRINGS)]);
      const expected = counts.get(name);
      if (expected !== undefined && expected !== found) throw new Error(`${key}: ${found} bytes to escape, the other scan found ${expected}`);
      counts.set(name, found);
    }
  }
}
for (const [key, xs] of figures) process.stdout.write(`${key.padEnd(52)} median ${median(xs)!.toFixed(2)} CPU-µs per string (${xs.map((x) => x.toFixed(2)).join(', ')})\n`);
