/** The pure parts of snapshots: logical message decoding, chunk queries, key texts, table names, snapshot ids, checkpointer callbacks. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Checkpointer, type TxnRecord } from '../../src/pipeline/checkpointer.js';
import { hashedEventId } from '../../src/pipeline/event-id.js';
import { decodeLogicalMessage } from '../../src/sources/postgres/pgoutput.js';
import { chunkQuery, invisible, keyText, parseSnapshot, parseTableName, type SnapshotTable } from '../../src/sources/postgres/snapshot-table.js';

function logicalMessage(prefix: string, content: string, transactional: boolean): Buffer {
  const p = Buffer.from(`${prefix}\0`);
  const c = Buffer.from(content);
  const buf = Buffer.alloc(1 + 1 + 8 + p.length + 4 + c.length);
  buf[0] = 0x4d;
  buf[1] = transactional ? 1 : 0;
  buf.writeBigUInt64BE(0x1_0000_0abcn, 2);
  p.copy(buf, 10);
  buf.writeUInt32BE(c.length, 10 + p.length);
  c.copy(buf, 14 + p.length);
  return buf;
}

test('decodeLogicalMessage: flags, LSN, prefix and content (copied)', () => {
  const buf = logicalMessage('wal-listener-watermark', '{"mark":"low"}', true);
  const message = decodeLogicalMessage(buf);
  assert.deepEqual({ ...message, content: message.content.toString() }, { transactional: true, lsn: 0x1_0000_0abcn, prefix: 'wal-listener-watermark', content: '{"mark":"low"}' });
  buf.fill(0);
  assert.equal(message.content.toString(), '{"mark":"low"}');
  assert.equal(decodeLogicalMessage(logicalMessage('x', '', false)).transactional, false);
});

const table: SnapshotTable = {
  schema: 'public',
  table: 'Order "lines"',
  relid: 1,
  columns: [
    { name: 'order_id', typeOid: 23, typeMod: -1, isKey: true },
    { name: 'note', typeOid: 25, typeMod: -1, isKey: false },
    { name: 'line', typeOid: 20, typeMod: -1, isKey: true },
  ],
  keyIndexes: [0, 2],
  keyTypes: ['integer', 'bigint'],
};

test('chunkQuery: every column, composite key order, keyset condition with casts, --where in parentheses', () => {
  assert.equal(chunkQuery(table, null, false), 'SELECT "order_id", "note", "line" FROM "public"."Order ""lines""" ORDER BY "order_id", "line" LIMIT $1');
  assert.equal(
    chunkQuery(table, 'note <> \'x\' OR line > 3', true),
    'SELECT "order_id", "note", "line" FROM "public"."Order ""lines""" WHERE ("order_id", "line") > ($1::integer, $2::bigint) AND (note <> \'x\' OR line > 3) ORDER BY "order_id", "line" LIMIT $3',
  );
});

test('keyText: the same text for a chunk row and a streamed tuple of the same key', () => {
  const raw = Buffer.from('7hello12');
  const tuple = { buf: raw, spans: [0, 1, 1, 6, 6, 8] };
  assert.equal(keyText(['7', 'other', '12'], table.keyIndexes), keyText(tuple, table.keyIndexes));
  assert.notEqual(keyText(['7', 'x', '1'], table.keyIndexes), keyText(['71', 'x', ''], table.keyIndexes));
  assert.equal(keyText(['42', 'x'], [0]), '42');
});

test('parseTableName: schema.table, quoted parts; anything else is refused', () => {
  assert.deepEqual(parseTableName('public.users'), { schema: 'public', table: 'users' });
  assert.deepEqual(parseTableName('"My Schema"."a.b""c"'), { schema: 'My Schema', table: 'a.b"c' });
  assert.equal(parseTableName('users'), null);
  assert.equal(parseTableName('a.b.c'), null);
});

test('hashedEventId: a UUID version 8, stable, different for different texts', () => {
  const id = hashedEventId('123/4/42');
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(hashedEventId('123/4/42'), id);
  assert.notEqual(hashedEventId('123/4/43'), id);
});

test('checkpointer: a transaction\'s acknowledged callback runs once it and everything before it are acknowledged', () => {
  const checkpointer = new Checkpointer<number>(0);
  const calls: string[] = [];
  const a: TxnRecord<number> = checkpointer.begin({ pending: 0, end: undefined, committed: false });
  const b: TxnRecord<number> = checkpointer.begin({ pending: 0, end: undefined, committed: false });
  a.pending = 1;
  b.pending = 1;
  checkpointer.commit(a, 10, () => calls.push('a'));
  checkpointer.commit(b, 20, () => calls.push('b'));
  checkpointer.ack(b, 1);
  assert.deepEqual(calls, []);
  checkpointer.ack(a, 1);
  assert.deepEqual(calls, ['a', 'b']);
});

test('parseSnapshot and invisible: running xids and xids from xmax on are invisible, with 32-bit wraparound', () => {
  const horizon = parseSnapshot('100:105:100,102');
  assert.deepEqual([99, 100, 101, 102, 104, 105, 2000].map((x) => invisible(horizon, x)), [false, true, false, true, false, true, true]);
  assert.equal(invisible(parseSnapshot('10:10:'), 9), false);
  const wrapped = parseSnapshot(`${2 ** 32 + 5}:${2 ** 32 + 7}:${2 ** 32 + 5}`);
  assert.deepEqual([5, 6, 7, 0xfffffff0].map((x) => invisible(wrapped, x)), [true, false, true, false]);
});
