/**
 * The replication connection's framer: CopyData bodies to the stream callback, every other
 * message to pg whole and in order, however the socket's reads cut the bytes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CopyDataFramer } from '../../src/sources/postgres/replication.js';

function message(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head[0] = type.charCodeAt(0);
  head.writeUInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

/** A deterministic pseudo-random sequence (xorshift32). */
function random(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

/** Messages of the shapes a replication connection gets: small, empty, and longer than a read. */
function stream(seed: number): { messages: { type: string; body: Buffer }[]; bytes: Buffer } {
  const next = random(seed);
  const messages: { type: string; body: Buffer }[] = [];
  for (let i = 0; i < 300; i++) {
    const r = next();
    const type = r < 0.7 ? 'd' : r < 0.8 ? 'Z' : r < 0.9 ? 'N' : 'C';
    const size = next() < 0.05 ? Math.floor(next() * 70_000) : next() < 0.1 ? 0 : Math.floor(next() * 200);
    const body = Buffer.alloc(size);
    for (let k = 0; k < size; k++) body[k] = (i * 31 + k) & 0xff;
    messages.push({ type, body });
  }
  return { messages, bytes: Buffer.concat(messages.map((m) => message(m.type, m.body))) };
}

/**
 * Feeds `bytes` in reads of random sizes (1 byte up to `max`); returns what each side got. With
 * `reused`, every read arrives in the same buffer, which is overwritten once push returns (as the
 * replication socket's reused read buffer is by the next read).
 */
function run(bytes: Buffer, seed: number, max: number, copyData = true, reused = false): { frames: Buffer[]; pg: Buffer } {
  const next = random(seed);
  const frames: Buffer[] = [];
  const pg: Buffer[] = [];
  const framer = new CopyDataFramer((b) => pg.push(Buffer.from(b)));
  if (copyData) framer.onCopyData = (b, start, end) => frames.push(Buffer.from(b.subarray(start, end)));
  const scratch = Buffer.alloc(max);
  for (let pos = 0; pos < bytes.length; ) {
    const n = Math.min(1 + Math.floor(next() * max), bytes.length - pos);
    if (reused) {
      bytes.copy(scratch, 0, pos, pos + n);
      framer.push(scratch.subarray(0, n));
      scratch.fill(0xee);
    } else framer.push(bytes.subarray(pos, pos + n));
    pos += n;
  }
  return { frames, pg: Buffer.concat(pg) };
}

test('CopyData bodies go to the callback and every other message to pg, whole and in order, whatever the reads', () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const { messages, bytes } = stream(seed);
    const expectedFrames = messages.filter((m) => m.type === 'd').map((m) => m.body);
    const expectedPg = Buffer.concat(messages.filter((m) => m.type !== 'd').map((m) => message(m.type, m.body)));
    for (const max of [1, 3, 7, 64, 1500, 65_536, 200_000]) {
      const { frames, pg } = run(bytes, seed * 1000 + max, max);
      assert.equal(frames.length, expectedFrames.length, `seed ${seed}, reads up to ${max}`);
      frames.forEach((f, i) => assert.ok(f.equals(expectedFrames[i]!), `seed ${seed}, reads up to ${max}: frame ${i}`));
      assert.ok(pg.equals(expectedPg), `seed ${seed}, reads up to ${max}: pg's bytes`);
    }
  }
});

test('reads into one reused buffer: nothing of a read is used after push returns (split headers and long messages are copied)', () => {
  for (const seed of [21, 22, 23]) {
    const { messages, bytes } = stream(seed);
    const expectedFrames = messages.filter((m) => m.type === 'd').map((m) => m.body);
    const expectedPg = Buffer.concat(messages.filter((m) => m.type !== 'd').map((m) => message(m.type, m.body)));
    for (const max of [1, 3, 7, 1500, 65_536]) {
      const { frames, pg } = run(bytes, seed * 1000 + max, max, true, true);
      assert.equal(frames.length, expectedFrames.length, `seed ${seed}, reads up to ${max}`);
      frames.forEach((f, i) => assert.ok(f.equals(expectedFrames[i]!), `seed ${seed}, reads up to ${max}: frame ${i}`));
      assert.ok(pg.equals(expectedPg), `seed ${seed}, reads up to ${max}: pg's bytes`);
    }
  }
});

test('pg gets only whole messages: each of its reads ends where a message ends', () => {
  const { bytes } = stream(9);
  const pieces: Buffer[] = [];
  const framer = new CopyDataFramer((b) => pieces.push(Buffer.from(b)));
  framer.onCopyData = () => {};
  for (let pos = 0; pos < bytes.length; pos += 777) framer.push(bytes.subarray(pos, pos + 777));
  for (const piece of pieces) {
    let pos = 0;
    while (pos < piece.length) pos += 1 + piece.readUInt32BE(pos + 1);
    assert.equal(pos, piece.length);
  }
});

test('without a callback (before START_REPLICATION, after close) pg gets every byte, CopyData too', () => {
  const { bytes } = stream(11);
  const { frames, pg } = run(bytes, 11, 4096, false);
  assert.equal(frames.length, 0);
  assert.ok(pg.equals(bytes));
});

test('a length below 4 is not this protocol: from there on pg gets the bytes as they come', () => {
  const good = message('Z', Buffer.from('I'));
  const bad = Buffer.from([0x64, 0, 0, 0, 2, 0xaa, 0xbb]);
  for (const cut of [1, 2, 6, 8, 9]) {
    const all = Buffer.concat([good, bad]);
    const { frames, pg } = run(all.subarray(0, cut), 1, 1000);
    const rest = run(all, 1, 1000);
    assert.equal(frames.length, 0);
    assert.ok(rest.pg.equals(all), 'pg got every byte');
    assert.ok(all.subarray(0, pg.length).equals(pg));
  }
});
