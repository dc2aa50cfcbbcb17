/** Binlog positions (order, the 64-bit form behind event ids, lag in bytes) and ENUM/SET label parsing. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventIdPrefix } from '../../src/pipeline/event-id.js';
import { bytesBehind, comparePositions, fileNumber, formatPosition, parsePosition, position64 } from '../../src/sources/mysql/position.js';
import { parseLabels } from '../../src/sources/mysql/table-catalog.js';

test('positions order by file number, then offset, and format as file:offset', () => {
  const a = { file: 'mysql-bin.000009', offset: 999_999 };
  const b = { file: 'mysql-bin.000010', offset: 4 };
  assert.ok(comparePositions(a, b) < 0 && comparePositions(b, a) > 0);
  assert.equal(comparePositions(a, { ...a }), 0);
  assert.equal(formatPosition(b), 'mysql-bin.000010:4');
  assert.equal(fileNumber('mariadb-bin.1234567'), 1234567);
  assert.throws(() => fileNumber('binlog'), /does not end in a sequence number/);
});

test('the 64-bit position puts the file number above the offset, so ids of different files never collide', () => {
  assert.equal(position64({ file: 'bin.000003', offset: 4711 }), (3n << 32n) | 4711n);
  assert.equal(position64({ file: 'bin.4294967295', offset: 4294967295 }), 2n ** 64n - 1n);
  const ids = new Set([position64({ file: 'bin.000001', offset: 4 }), position64({ file: 'bin.000002', offset: 4 }), position64({ file: 'bin.000001', offset: 5 })].map((p) => eventIdPrefix(p, 12345)));
  assert.equal(ids.size, 3);
});

test('stored positions are checked when read back', () => {
  assert.deepEqual(parsePosition({ file: 'bin.000001', offset: 120, serverId: 1 }, 'x'), { file: 'bin.000001', offset: 120 });
  for (const bad of [null, {}, { file: 'bin.000001' }, { file: 'bin', offset: 4 }, { file: 'bin.1', offset: -1 }, { file: 'bin.1', offset: 1.5 }]) {
    assert.throws(() => parsePosition(bad, 'the store'), /the store does not hold a binlog position/);
  }
});

test('bytes behind count the rest of the file and every newer file; a purged file gives undefined', () => {
  const files = [{ name: 'b.000001', size: 1000 }, { name: 'b.000002', size: 500 }, { name: 'b.000003', size: 300 }];
  assert.equal(bytesBehind({ file: 'b.000001', offset: 400 }, files), 600 + 500 + 300);
  assert.equal(bytesBehind({ file: 'b.000003', offset: 300 }, files), 0);
  assert.equal(bytesBehind({ file: 'b.000000', offset: 4 }, files), undefined);
});

test('ENUM and SET labels are read exactly: doubled quotes, backslashes, commas, spaces', () => {
  assert.deepEqual(parseLabels("enum('a','b,c','it''s','back\\\\slash',' sp ','')"), ['a', 'b,c', "it's", 'back\\slash', ' sp ', '']);
  assert.deepEqual(parseLabels("set('x','y')"), ['x', 'y']);
});
