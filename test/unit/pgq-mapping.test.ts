import assert from 'node:assert/strict';
import { test } from 'node:test';
import { configSchema } from '../../src/config/schema.js';
import { createEventMapper, type MappingOptions, type PgqEventRow } from '../../src/sources/pgq/event-mapping.js';
import { parseEventTime } from '../../src/sources/pgq/event-time.js';
import { eventIdOf, messageId, messageIdPrefix, queueHash, sequenceId, sequenceTimePart } from '../../src/sources/pgq/ids.js';

const PREFIX = messageIdPrefix(queueHash('7350000000000000001', 'shop', 'orders'));

function row(overrides: Partial<PgqEventRow> = {}): PgqEventRow {
  return {
    ev_id: '42',
    ev_time: '2024-02-29 08:15:56.123456+00',
    ev_txid: '41356335556',
    ev_retry: null,
    ev_type: 'order.created',
    ev_data: '{"id": 7}',
    ev_extra1: 'shop',
    ev_extra2: 'application/json',
    ev_extra3: null,
    ev_extra4: null,
    ...overrides,
  };
}

function mapper(options: Partial<MappingOptions> = {}, warnings: string[] = []) {
  return createEventMapper({
    topic: 'wal_listener',
    amqp: true,
    queue: 'orders',
    idPrefix: PREFIX,
    origin: 'relay-1.example',
    badJson: (evId, column, reason) => warnings.push(`${evId} ${column} ${reason}`),
    ...options,
  });
}

test('message ids are UUIDs that name their event, the same for the same event, and SQL builds the same text', () => {
  const id = messageId(PREFIX, '42');
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(messageId(PREFIX, '42'), id);
  assert.notEqual(messageId(PREFIX, '43'), id);
  assert.equal(eventIdOf(PREFIX, id), '42');
  assert.equal(eventIdOf(PREFIX, messageId(PREFIX, '9223372036854775807')), '9223372036854775807');
  const otherQueue = messageIdPrefix(queueHash('7350000000000000001', 'shop', 'invoices'));
  assert.notEqual(otherQueue, PREFIX);
  assert.equal(eventIdOf(otherQueue, id), undefined, 'an id of another queue is not ours');
});

test('ev_time keeps its microseconds in all three forms', () => {
  const t = parseEventTime('2024-02-29 08:15:56.123456+00')!;
  assert.equal(t.epochMicros, 1709194556123456n);
  assert.equal(t.epochSeconds, 1709194556);
  assert.equal(t.iso, '2024-02-29T08:15:56.123456+00:00');
  assert.equal(t.rfc3339, '2024-02-29T08:15:56.123456Z');
  assert.equal(parseEventTime('2024-02-29 08:15:56+00')!.iso, '2024-02-29T08:15:56+00:00', "Python's isoformat drops a zero fraction");
  assert.equal(parseEventTime('2024-02-29 08:15:56.5+00')!.iso, '2024-02-29T08:15:56.500000+00:00');
  assert.equal(parseEventTime('2024-02-29 10:15:56.5+02')!.iso, '2024-02-29T08:15:56.500000+00:00', 'an offset is applied');
  assert.equal(parseEventTime('infinity'), undefined);
});

test('the sequence header is a UUIDv7 of ev_time and ev_id: sorted by time, then event', () => {
  const a = sequenceId(sequenceTimePart(1709194556123456n), '42');
  assert.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(parseInt(a.replace(/-/g, '').slice(0, 12), 16), 1709194556123);
  const sameTimeLaterEvent = sequenceId(sequenceTimePart(1709194556123456n), '43');
  const laterTime = sequenceId(sequenceTimePart(1709194556123457n), '1');
  assert.ok(a < sameTimeLaterEvent && sameTimeLaterEvent < laterTime);
  assert.equal(sequenceId(sequenceTimePart(1709194556123456n), '42'), a, 'stable');
});

test('RabbitMQ: exchange, routing key, body byte for byte, automatic properties and headers', () => {
  const m = mapper()(row({ ev_data: 'caf\u00e9 \u{1f600}' }));
  const id = messageId(PREFIX, '42');
  assert.equal(m.id, id);
  assert.equal(m.exchange, 'shop');
  assert.equal(m.subject, 'order.created');
  assert.equal(m.key, 'order.created');
  assert.deepEqual(m.payload, Buffer.from('caf\u00e9 \u{1f600}', 'utf8'));
  assert.equal(m.schema, 'pgq');
  assert.equal(m.table, 'orders');
  assert.deepEqual(m.properties, {
    appId: 'wal-listener',
    correlationId: id,
    messageId: id,
    deliveryMode: 2,
    contentType: 'application/json',
    timestamp: 1709194556,
    headers: { origin: 'relay-1.example', sequence: sequenceId(sequenceTimePart(1709194556123456n), '42'), txid: 41356335556, timestamp: '2024-02-29T08:15:56.123456+00:00' },
  });
  assert.equal(m.headers!.txid, '41356335556', 'the text headers carry the same values');
});

test('ev_extra3 properties win over the automatic ones; its headers replace ev_extra4; given headers are never overwritten', () => {
  const m = mapper()(
    row({
      ev_extra2: 'text/plain',
      ev_extra3: JSON.stringify({ app_id: 'billing', content_type: 'application/xml', correlation_id: 'c-1', message_id: 'm-1', delivery_mode: 1, expiration: '60000', priority: 5, timestamp: 1, type: 'invoice', user_id: 'guest', content_encoding: 'gzip', reply_to: 'ignored' }),
      ev_extra4: JSON.stringify({ tenant: 'acme', origin: 'producer-7' }),
    }),
  );
  const p = m.properties!;
  assert.equal(p.appId, 'billing');
  assert.equal(p.contentType, 'application/xml');
  assert.equal(p.correlationId, 'c-1');
  assert.equal(p.messageId, 'm-1');
  assert.equal(p.deliveryMode, 1);
  assert.equal(p.expiration, '60000');
  assert.equal(p.priority, 5);
  assert.equal(p.timestamp, 1);
  assert.equal(p.type, 'invoice');
  assert.equal(p.userId, 'guest');
  assert.equal(p.contentEncoding, 'gzip');
  assert.equal('replyTo' in p, false, "mikkoo reads only its VALID_PROPERTIES");
  const headers = p.headers as Record<string, unknown>;
  assert.equal(headers.tenant, 'acme');
  assert.equal(headers.origin, 'producer-7', 'a given origin stays');
  assert.ok(headers.sequence && headers.txid && headers.timestamp);
  assert.equal(m.id, messageId(PREFIX, '42'), 'the dedup id stays ours when message_id is given');

  const replaced = mapper()(row({ ev_extra3: JSON.stringify({ headers: { only: 1 } }), ev_extra4: JSON.stringify({ tenant: 'acme' }) }));
  const h = replaced.properties!.headers as Record<string, unknown>;
  assert.equal(h.only, 1, 'numbers stay numbers in the AMQP table');
  assert.equal(h.tenant, undefined, 'ev_extra3 headers replace ev_extra4, as in mikkoo');
  assert.equal(replaced.headers!.only, '1');
});

test('bad JSON in ev_extra3/ev_extra4 is ignored with a warning, as mikkoo does; empty columns mean "not given"', () => {
  const warnings: string[] = [];
  const m = mapper({}, warnings)(row({ ev_extra1: '', ev_extra2: '', ev_extra3: '{type: bad}', ev_extra4: '[1, 2]' }));
  assert.equal(warnings.length, 2);
  warnings.sort();
  assert.match(warnings[0]!, /^42 ev_extra3 not valid JSON/);
  assert.match(warnings[1]!, /^42 ev_extra4 not a JSON object/);
  assert.equal(m.exchange, 'wal_listener', 'empty ev_extra1: publisher.topic');
  assert.equal(m.properties!.contentType, undefined);
  assert.deepEqual(Object.keys(m.properties!.headers as object).sort(), ['origin', 'sequence', 'timestamp', 'txid']);
});

test('other brokers: subject <exchange>.<ev_type>, properties as headers in mikkoo names, headers winning', () => {
  const m = mapper({ amqp: false })(row({ ev_extra3: JSON.stringify({ type: 'example', message_id: 'm-1' }), ev_extra4: JSON.stringify({ n: 1, nested: { a: true } }) }));
  assert.equal(m.subject, 'shop.order.created');
  assert.equal(m.exchange, 'shop');
  assert.deepEqual(m.headers, {
    app_id: 'wal-listener',
    correlation_id: messageId(PREFIX, '42'),
    message_id: 'm-1',
    content_type: 'application/json',
    timestamp: '2024-02-29T08:15:56.123456+00:00',
    type: 'example',
    n: '1',
    nested: '{"a":true}',
    origin: 'relay-1.example',
    sequence: sequenceId(sequenceTimePart(1709194556123456n), '42'),
    txid: '41356335556',
  });
  assert.equal(mapper({ amqp: false })(row({ ev_type: null })).subject, 'shop');
});

test('config: the pgq section and its defaults', () => {
  const base = { listener: { slotName: 's' }, publisher: { type: 'nats', topic: 't' } };
  const config = configSchema.parse({ ...base, listener: {}, source: { type: 'pgq' }, pgq: { queue: 'orders', retryDelay: '1m' } });
  assert.equal(config.source.type, 'pgq');
  assert.deepEqual(config.pgq, { queue: 'orders', consumerName: 'wal-listener', maxFailures: 10, retryDelay: 60_000, unregister: false, audit: false });
  assert.equal(configSchema.parse(base).source.type, 'postgres');
  assert.throws(() => configSchema.parse({ ...base, pgq: {} }), /pgq/);
  assert.throws(() => configSchema.parse({ ...base, source: { type: 'pgq' }, pgq: { queue: 'q' } }), /slotName.*remove it for source.type pgq/s);
  assert.throws(() => configSchema.parse({ listener: {}, publisher: base.publisher, source: { type: 'pgq' }, pgq: {} }), /queue/);
  assert.throws(() => configSchema.parse({ listener: {}, publisher: base.publisher, source: { type: 'pgq' }, pgq: { queue: 'q', retryDelay: 'soon' } }), /duration/);
});
