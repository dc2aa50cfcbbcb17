/**
 * Outbox pieces without a database (issue 13): listener.outbox defaults (goharvest's columns), the
 * pgoutput logical message decoder on captured bytes, logical message bodies (as the stasher
 * writes them) and outbox rows turned into routed messages, refusals included.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import { messageBody } from '../../src/outbox/index.js';
import { routeLogicalMessage } from '../../src/sources/postgres/logical-messages.js';
import { OutboxRoutes, textArray } from '../../src/sources/postgres/outbox.js';
import { decodeLogicalMessage, decodeMessage, type RelationMessage } from '../../src/sources/postgres/pgoutput.js';

const CONFIG = `listener:
  slotName: s
  outbox:
    - table: public.outbox
    - { table: app.events, value: body }
publisher: { type: stdout, topic: t }
`;

test('listener.outbox defaults to goharvest column names', () => {
  const { config } = parseConfig(CONFIG, 'test');
  assert.deepEqual(config.listener.outbox, [
    { table: 'public.outbox', topic: 'kafka_topic', key: 'kafka_key', value: 'kafka_value', headerKeys: 'kafka_header_keys', headerValues: 'kafka_header_values' },
    { table: 'app.events', topic: 'kafka_topic', key: 'kafka_key', value: 'body', headerKeys: 'kafka_header_keys', headerValues: 'kafka_header_values' },
  ]);
});

// Captured from PostgreSQL 15: pg_logical_emit_message(true, 'wal-listener', '{"topic":"a","value":"hello"}').
const CAPTURED = Buffer.from('4d0100000000297033e877616c2d6c697374656e6572000000001d7b22746f706963223a2261222c2276616c7565223a2268656c6c6f227d', 'hex');

test('decodeLogicalMessage reads flags, LSN, prefix and content', () => {
  const decoded = decodeLogicalMessage(CAPTURED);
  assert.deepEqual({ ...decoded, content: decoded.content.toString() }, { transactional: true, lsn: 0x297033e8n, prefix: 'wal-listener', content: '{"topic":"a","value":"hello"}' });
  assert.deepEqual(decodeMessage(CAPTURED), { tag: 'message', ...decoded });
  assert.throws(() => decodeLogicalMessage(Buffer.from('49', 'hex')), /expected M/);
  assert.throws(() => decodeLogicalMessage(CAPTURED.subarray(0, 30)), /truncated/);
});

test('logical message bodies: text, bytes, tombstones, headers; refusals', () => {
  const text = routeLogicalMessage(Buffer.from(messageBody({ topic: 'orders', key: 'k', value: 'grüße', headers: { a: '1' } })));
  assert.deepEqual({ ...text, payload: text.payload.toString() }, { schema: 'pg_logical_emit_message', table: 'wal-listener', subject: 'orders', key: 'k', keyHeader: true, payload: 'grüße', tombstone: false, headers: { a: '1' } });
  const bytes = routeLogicalMessage(Buffer.from(messageBody({ topic: 'orders', value: new Uint8Array([0, 255]) })));
  assert.deepEqual([...bytes.payload], [0, 255]);
  assert.equal(bytes.key, '');
  const tombstone = routeLogicalMessage(Buffer.from(messageBody({ topic: 'orders', key: 'k' })));
  assert.equal(tombstone.tombstone, true);
  assert.equal(tombstone.payload.length, 0);
  assert.equal(routeLogicalMessage(Buffer.from('{"topic":"t","value":{"n":1}}')).payload.toString(), '{"n":1}');
  assert.match(routeLogicalMessage(Buffer.from('{"value":"x"}')).refusal ?? '', /no "topic" string/);
  assert.match(routeLogicalMessage(Buffer.from('[1]')).refusal ?? '', /not a JSON object/);
  assert.match(routeLogicalMessage(Buffer.from('{"topic":"t","headers":{"a":1}}')).refusal ?? '', /header "a" is not a string/);
  assert.match(routeLogicalMessage(Buffer.from('nope')).refusal ?? '', /not JSON/);
  assert.throws(() => messageBody({ topic: '' }), /topic must be a non-empty string/);
});

const column = (name: string, typeOid = 25) => ({ isKey: false, name, typeOid, typeMod: -1 });
const RELATION: RelationMessage = {
  tag: 'relation',
  relationId: 7,
  schema: 'public',
  name: 'outbox',
  replicaIdentity: 'd',
  columns: [column('id', 20), column('kafka_topic'), column('kafka_key'), column('kafka_value', 17), column('kafka_header_keys', 1009), column('kafka_header_values', 1009)],
};

test('outbox rows: bytea values, header arrays, refusals; other tables have no route', () => {
  const routes = new OutboxRoutes(parseConfig(CONFIG, 'test').config.listener.outbox);
  routes.relation(RELATION);
  routes.relation({ ...RELATION, relationId: 8, name: 'other' });
  assert.equal(routes.get(8), undefined);
  const route = routes.get(7)!;
  const message = route(['1', 'orders', 'k', '\\x00ff41', '{a,"b c"}', '{1,"x,\\"y\\""}']);
  assert.deepEqual({ ...message, payload: [...message.payload] }, { schema: 'public', table: 'outbox', keyHeader: true, subject: 'orders', key: 'k', payload: [0, 255, 0x41], tombstone: false, headers: { a: '1', 'b c': 'x,"y"' } });
  assert.equal(route(['1', 'orders', 'k', null, '{}', '{}']).tombstone, true);
  assert.match(route(['1', null, 'k', null, '{}', '{}']).refusal ?? '', /has no topic \(column kafka_topic is NULL\)/);
  assert.match(route(['1', 'orders', 'k', null, '{a,b}', '{1}']).refusal ?? '', /kafka_header_keys has 2 element\(s\) but kafka_header_values has 1/);
  assert.match(route(['1', 'orders', 'k', null, '{a}', '{NULL}']).refusal ?? '', /header "a" has a NULL value/);
  assert.throws(() => routes.relation({ ...RELATION, relationId: 9, columns: RELATION.columns.filter((c) => c.name !== 'kafka_key') }), /outbox table public\.outbox has no column "kafka_key"/);
  assert.throws(() => routes.relation({ ...RELATION, name: 'outbox_old' }), /an outbox table was renamed to public\.outbox_old/);
});

test('textArray reads array_out of one-dimensional text arrays', () => {
  assert.deepEqual(textArray('{}'), []);
  assert.deepEqual(textArray('{a,b}'), ['a', 'b']);
  assert.deepEqual(textArray('{NULL,"NULL",null}'), [null, 'NULL', null]);
  assert.deepEqual(textArray('{"",b,"c d","x\\\\y","q\\"q",{}}'.replace(',{}', '')), ['', 'b', 'c d', 'x\\y', 'q"q']);
  assert.deepEqual(textArray('{"a,b","}"}'), ['a,b', '}']);
  assert.equal(textArray('{{a},{b}}'), undefined);
  assert.equal(textArray('[2:3]={a,b}'), undefined);
  assert.equal(textArray('{"open}'), undefined);
  assert.equal(textArray('not an array'), undefined);
});
