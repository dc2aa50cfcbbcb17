/** JsonOut: payload bytes as JSON.stringify would write them, across chunk boundaries; the escape scans of long strings. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { escapeScanKind, escapeScanner } from '../../src/pipeline/escape-scan.js';
import { JsonOut } from '../../src/pipeline/json-out.js';

/** Small deterministic PRNG so a failing seed can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = ['a', 'Z', ' ', '"', '\\', '\n', '\r', '\t', '\b', '\f', '\u0000', '\u001f', '\u007f', 'ü', '€', '😀', '\u2028', '/'];

test('jsonString writes what JSON.stringify writes, for any text and for bytes that are not UTF-8', () => {
  for (let seed = 1; seed <= 500; seed++) {
    const random = rng(seed);
    const parts: Buffer[] = [];
    const n = Math.floor(random() * 40);
    for (let i = 0; i < n; i++) {
      if (random() < 0.05) parts.push(Buffer.from([0x80 + Math.floor(random() * 0x7f)])); // a stray continuation or lead byte
      else parts.push(Buffer.from(PIECES[Math.floor(random() * PIECES.length)]!));
    }
    const value = Buffer.concat(parts);
    const framed = Buffer.concat([Buffer.from('"x'), value, Buffer.from('y"')]);
    const out = new JsonOut();
    out.begin();
    out.jsonString(framed, 2, framed.length - 2);
    assert.equal(out.end().toString('utf8'), JSON.stringify(value.toString('utf8')), `seed ${seed}`);
  }
});

test('messages larger than a chunk, and many messages, keep their bytes', () => {
  const out = new JsonOut();
  const written: [Buffer, string][] = [];
  for (let i = 0; i < 2000; i++) {
    const text = `{"i":${i},"pad":"${'x'.repeat(i % 7 === 0 ? 70_000 : i)}"}`;
    out.begin();
    out.ascii('{"i":');
    out.ascii(String(i));
    out.ascii(',"pad":');
    const pad = Buffer.from('x'.repeat(i % 7 === 0 ? 70_000 : i));
    out.jsonString(pad, 0, pad.length);
    out.byte(0x7d);
    written.push([out.end(), text]);
  }
  for (const [bytes, text] of written) assert.equal(bytes.toString('utf8'), text);
});

test('a long value written twice in one message (TOAST in data and dataOld) is copied, and only within that message', () => {
  const random = rng(7);
  const out = new JsonOut();
  for (let round = 0; round < 300; round++) {
    // Long values with escapes, non-ASCII and (sometimes) bytes that are not UTF-8; some messages outgrow the chunk.
    const parts: Buffer[] = [];
    const n = 20 + Math.floor(random() * (round % 50 === 0 ? 40_000 : 400));
    for (let i = 0; i < n; i++) parts.push(random() < 0.002 ? Buffer.from([0xff]) : Buffer.from(PIECES[Math.floor(random() * PIECES.length)]!));
    const src = Buffer.concat(parts);
    const expected = JSON.stringify(src.toString('utf8'));
    out.begin();
    out.ascii('[');
    out.jsonString(src, 0, src.length);
    out.ascii(',');
    out.jsonString(src, 0, src.length);
    out.ascii(']');
    assert.equal(out.end().toString('utf8'), `[${expected},${expected}]`, `round ${round}`);
    // The same buffer and range with other bytes, in the next message: escaped anew.
    src.fill(0x22);
    out.begin();
    out.jsonString(src, 0, src.length);
    assert.equal(out.end().toString('utf8'), JSON.stringify(src.toString('utf8')), `round ${round}, next message`);
  }
});

const naiveEscape = (b: Buffer, from: number, to: number): number => {
  for (let i = from; i < to; i++) if (b[i]! < 0x20 || b[i] === 0x22 || b[i] === 0x5c) return i;
  return to;
};

/** Every position the scanner stops at in view[from, to), as a byte-by-byte scan finds them. */
function assertScans(kind: 'wasm' | 'words', view: Buffer, from: number, to: number, label: string): void {
  const scanner = escapeScanner(kind);
  scanner.reset(view, from, to);
  for (let at = from; at <= to; ) {
    const expected = naiveEscape(view, at, to);
    assert.equal(scanner.next(at), expected, `${kind}, ${label}, from ${at}`);
    at = expected + 1;
  }
}

test('this runtime scans long strings with the WebAssembly SIMD scan', () => {
  assert.equal(escapeScanKind, 'wasm');
});

for (const kind of ['wasm', 'words'] as const) {
  test(`the ${kind} escape scan finds every byte to escape at any offset and alignment, as a byte-by-byte scan does`, () => {
    const random = rng(11);
    for (let round = 0; round < 3000; round++) {
      const backing = Buffer.alloc(600);
      for (let i = 0; i < backing.length; i++) backing[i] = 0x20 + Math.floor(random() * 0xe0);
      // Sometimes bytes right around the thresholds: 0x1f/0x20, 0x21/0x22/0x23, 0x5b/0x5c/0x5d, 0x7f/0x80, 0xff.
      const specials = [0x00, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x5b, 0x5c, 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff];
      const count = Math.floor(random() * 4);
      for (let k = 0; k < count; k++) backing[Math.floor(random() * backing.length)] = specials[Math.floor(random() * specials.length)]!;
      const view = backing.subarray(Math.floor(random() * 7));
      const from = Math.floor(random() * 50);
      const to = from + Math.floor(random() * (view.length - from));
      assertScans(kind, view, from, to, `round ${round}`);
    }
  });

  test(`the ${kind} escape scan crosses 64 KiB windows: bytes to escape on both sides of each boundary, and none at all`, () => {
    const text = Buffer.alloc(200_000, 0x61);
    for (const at of [0, 15, 16, 65_535, 65_536, 65_537, 131_071, 131_072, 199_999]) text[at] = [0x22, 0x5c, 0x0a][at % 3]!;
    assertScans(kind, text, 0, text.length, 'marked');
    assertScans(kind, text, 3, 150_000, 'marked, inner range');
    assertScans(kind, Buffer.alloc(140_000, 0x62), 0, 140_000, 'clean');
  });
}

test('the WebAssembly bytes in escape-scan-wasm.ts are escape-scan.wat compiled (scripts/build-escape-scan.ts)', async () => {
  const { escapeScanModule } = await import('../../scripts/build-escape-scan.js');
  assert.equal(readFileSync(new URL('../../src/pipeline/escape-scan-wasm.ts', import.meta.url), 'utf8'), await escapeScanModule());
});
