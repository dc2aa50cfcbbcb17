/** JsonOut: payload bytes as JSON.stringify would write them, across chunk boundaries. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
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
