import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileFilter } from '../../src/pipeline/filter.js';
import { compileRouter } from '../../src/pipeline/router.js';
import { eventId, eventIdPrefix, sourceHash } from '../../src/pipeline/event-id.js';

test('filter: no tables = every table and action', () => {
  const f = compileFilter({});
  assert.deepEqual([...f('public', 'anything')!].sort(), ['delete', 'insert', 'truncate', 'update']);
});

test('filter: "table" matches any schema, "schema.table" exactly and wins', () => {
  const f = compileFilter({ tables: { users: ['insert', 'update'], 'audit.users': ['delete'], orders: null } });
  assert.deepEqual([...f('public', 'users')!], ['insert', 'update']);
  assert.deepEqual([...f('billing', 'users')!], ['insert', 'update']);
  assert.deepEqual([...f('audit', 'users')!], ['delete']);
  assert.equal(f('public', 'orders')!.size, 4, 'a table with no action list takes every action');
  assert.equal(f('public', 'other'), null);
});

test('filter: "schema.*" matches every table of the schema; "schema.table" and "table" are more specific', () => {
  const f = compileFilter({ tables: { 'audit.*': ['insert'], 'audit.log': ['delete'], users: ['update'] } });
  assert.deepEqual([...f('audit', 'anything')!], ['insert']);
  assert.deepEqual([...f('audit', 'log')!], ['delete']);
  assert.deepEqual([...f('audit', 'users')!], ['update'], 'a bare table name is more specific than a schema');
  assert.equal(f('public', 'anything'), null);
});

test('router: topic, prefix, schema_table and topicsMap', () => {
  const r = compileRouter({ public_users: 'notifier' }, { topic: 'wal_listener', topicPrefix: 'pre_' });
  assert.equal(r('public', 'users'), 'wal_listener.pre_notifier');
  assert.equal(r('public', 'orders'), 'wal_listener.pre_public_orders');
  assert.equal(r('billing', 'users'), 'wal_listener.pre_billing_users');
  assert.equal(compileRouter({}, { topic: 't', topicPrefix: '' })('s', 'x'), 't.s_x');
});

test('event ids: valid UUIDv8, deterministic, distinct per LSN, position and source', () => {
  const source = sourceHash('7710494581898520678', 'test');
  const p = eventIdPrefix(0x16_b374d848n, source);
  const id = eventId(p, 3);
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(eventId(eventIdPrefix(0x16_b374d848n, source), 3), id);
  const seen = new Set<string>();
  for (const lsn of [0n, 1n, 2n, 3n, 4n, 0xffffffffn, 0x1_0000_0000n, 0xffffffff_ffffffffn]) {
    for (const pos of [0, 1, 0xffffffff]) {
      for (const src of [source, sourceHash('7710494581898520678', 'other')]) seen.add(eventId(eventIdPrefix(lsn, src), pos));
    }
  }
  assert.equal(seen.size, 8 * 3 * 2, 'every (lsn, position, source) gives its own id');
  assert.ok(sourceHash('1', 'a') <= 0x3ffffff);
});
