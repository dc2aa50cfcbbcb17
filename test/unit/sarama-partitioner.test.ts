/** sarama's HashPartitioner, reproduced: FNV-1a 32 of the key, int32 modulo, absolute value. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { saramaPartition } from '../../src/publishers/sarama-partitioner.js';

test('FNV-1a reference values and sarama\'s signed modulo', () => {
  // FNV-1a 32 reference vectors (isthe.com/chongo/tech/comp/fnv): "" → 0x811c9dc5, "a" → 0xe40c292c, "foobar" → 0xbf9cf968.
  // As int32 they are negative, which is where sarama's modulo-then-negate differs from Java's mask.
  const asInt32 = (n: number): number => n | 0;
  const expected = (hash: number, n: number): number => Math.abs(asInt32(hash) % n);
  assert.equal(saramaPartition(Buffer.from(''), 10), expected(0x811c9dc5, 10));
  assert.equal(saramaPartition(Buffer.from('a'), 7), expected(0xe40c292c, 7));
  assert.equal(saramaPartition(Buffer.from('foobar'), 12), expected(0xbf9cf968, 12));
  assert.equal(expected(0x811c9dc5, 10), 5);
  assert.equal(saramaPartition(Buffer.from('foobar'), 7), 4, 'FNV-1a("foobar") as int32 is -1080231576; % 7 = -4 → 4');
  // Keys as Go's json.Marshal writes them for messageKeyFrom: numbers bare, strings quoted.
  for (const key of ['42', '"abc"', 'null', 'users']) {
    const p = saramaPartition(Buffer.from(key), 6);
    assert.ok(p >= 0 && p < 6, key);
  }
});
