/**
 * The PgQ source against a real PostgreSQL 15 with pgq and a real pgqd, driven through a
 * RecordingSink (the pipeline's side of the ChangeSink contract: window, acknowledgements,
 * confirmations in order). The end-to-end run through the daemon and RabbitMQ needs the pipeline
 * v2 wiring; test/support/amqp_dump.py is ready for it (pgq-pika.test.ts).
 */
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { after, before, test } from 'node:test';
import { WalListenerError } from '../../src/errors.js';
import { eventIdOf } from '../../src/sources/pgq/ids.js';
import { createPgqSource, type PgqPosition } from '../../src/sources/pgq/source.js';
import { captureLogger, consumerInfo, createPgqDatabase, createQueue, pgqConfig, queueEvents, startTicker, type Ticker } from '../support/pgq.js';
import { waitFor } from '../support/ports.js';
import type { TestDatabase } from '../support/postgres.js';
import { RecordingSink } from '../support/recording-sink.js';

let db: TestDatabase;
let ticker: Ticker;
const FAST = { pollMs: 50 };

before(async () => {
  db = await createPgqDatabase('wl_pgq_src');
  ticker = await startTicker(db);
});

after(async () => {
  await ticker?.close();
  await db?.drop();
});

/** Opens a session of `source` on a fresh sink and wires the sink's confirmations to it. */
async function openSession(source: ReturnType<typeof createPgqSource>, sink: RecordingSink<PgqPosition>) {
  const session = await source.open(sink, new AbortController().signal);
  sink.attach(session);
  return session;
}

test("mikkoo's example event arrives with its exchange, routing key, body, content type, type and the four automatic headers", async () => {
  await createQueue(db, 'test');
  const { logger } = captureLogger();
  const source = createPgqSource(pgqConfig(db, { queue: 'test' }), logger, undefined, FAST);
  const sink = new RecordingSink<PgqPosition>();
  const session = await openSession(source, sink);
  try {
    await db.sql(`SELECT pgq.insert_event('test', 'test.routing-key', '{"foo": "bar"}', 'postgres', 'application/json', '{"type": "example"}', '')`);
    await waitFor('the event', () => sink.messages.length === 1);
    await waitFor('the batch finished', async () => (await consumerInfo(db, 'test'))?.current_batch === null && sink.confirmed.length === 1);

    const [event] = await queueEvents(db, 'test');
    const message = sink.messages[0]!;
    assert.equal(message.exchange, 'postgres');
    assert.equal(message.subject, 'test.routing-key', 'RabbitMQ: the subject is the routing key');
    assert.equal(message.key, 'test.routing-key');
    assert.deepEqual(message.payload, Buffer.from('{"foo": "bar"}'));
    assert.equal(eventIdOf(message.id!.slice(0, 15), message.id!), event!.ev_id, 'the message id names the event');

    const props = message.properties as Record<string, unknown>;
    assert.equal(props.contentType, 'application/json');
    assert.equal(props.type, 'example');
    assert.equal(props.appId, 'wal-listener');
    assert.equal(props.deliveryMode, 2, 'persistent');
    assert.equal(props.messageId, message.id);
    assert.equal(props.correlationId, message.id, 'correlation id: the stable message id');
    const evTime = new Date(event!.ev_time.replace(' ', 'T').replace(/\+00$/, 'Z'));
    assert.equal(props.timestamp, Math.floor(evTime.getTime() / 1000));

    const headers = props.headers as Record<string, unknown>;
    assert.deepEqual(Object.keys(headers).sort(), ['origin', 'sequence', 'timestamp', 'txid']);
    assert.equal(headers.origin, hostname());
    assert.equal(headers.txid, Number(event!.ev_txid), 'txid stays a number in the AMQP table, as pika sends it');
    const micros = event!.ev_time.match(/\.(\d+)/)?.[1]?.padEnd(6, '0');
    assert.equal(headers.timestamp, `${event!.ev_time.slice(0, 10)}T${event!.ev_time.slice(11, 19)}${micros ? `.${micros}` : ''}+00:00`);
    assert.match(String(headers.sequence), /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'a UUIDv7');
    assert.equal(parseInt(String(headers.sequence).replace(/-/g, '').slice(0, 12), 16), evTime.getTime(), 'its time is ev_time');
    assert.deepEqual(message.headers, { origin: hostname(), sequence: headers.sequence, timestamp: headers.timestamp, txid: event!.ev_txid });

    const txn = sink.transactions[0]!;
    assert.match(txn.info.position, /^pgq:test:\d+$/);
    assert.equal(txn.info.position, `pgq:test:${txn.info.xid}`);
    assert.match(txn.info.commitTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  } finally {
    await session.close();
    await source.close();
  }
});

test('for NATS, Kafka and Pub/Sub the subject is <exchange>.<ev_type> and the properties travel as headers', async () => {
  await createQueue(db, 'other_brokers');
  const source = createPgqSource(pgqConfig(db, { queue: 'other_brokers' }, { type: 'nats', topic: 'fallback' }), captureLogger().logger, undefined, FAST);
  const sink = new RecordingSink<PgqPosition>();
  const session = await openSession(source, sink);
  try {
    await db.sql(`SELECT pgq.insert_event('other_brokers', 'order.created', '{"id": 7}', 'shop', 'application/json', '{"type": "example", "priority": 3}', '{"tenant": "acme"}')`);
    await db.sql(`SELECT pgq.insert_event('other_brokers', 'order.paid', 'x', NULL, NULL, NULL, NULL)`);
    await waitFor('both events', () => sink.messages.length === 2);
    const [created, paid] = sink.messages;
    assert.equal(created!.subject, 'shop.order.created');
    assert.equal(paid!.subject, 'fallback.order.paid', 'no ev_extra1: publisher.topic');
    const h = created!.headers!;
    assert.equal(h.content_type, 'application/json');
    assert.equal(h.type, 'example');
    assert.equal(h.priority, '3');
    assert.equal(h.app_id, 'wal-listener');
    assert.equal(h.correlation_id, created!.id);
    assert.equal(h.tenant, 'acme');
    assert.match(h.timestamp!, /\+00:00$/, 'the timestamp header wins over the timestamp property');
    assert.ok(h.origin && h.sequence && h.txid);
    assert.equal(h.delivery_mode, undefined, 'delivery_mode means nothing outside AMQP');
  } finally {
    await session.close();
    await source.close();
  }
});

test('a missing queue and a database without pgq stop the daemon with the fix in the message', async () => {
  const source = createPgqSource(pgqConfig(db, { queue: 'nope' }), captureLogger().logger);
  await assert.rejects(source.open(new RecordingSink(), new AbortController().signal), (err: unknown) => {
    assert.ok(err instanceof WalListenerError);
    assert.equal(err.code, 'WAL_PGQ_QUEUE_MISSING');
    assert.equal(err.fatal, true);
    assert.match(err.message, /pgq\.create_queue\('nope'\)/);
    return true;
  });
  await source.close();

  const bare = await createPgqDatabase('wl_pgq_bare', { extension: false });
  try {
    const noPgq = createPgqSource(pgqConfig(bare, { queue: 'q' }), captureLogger().logger);
    await assert.rejects(noPgq.open(new RecordingSink(), new AbortController().signal), (err: unknown) => {
      assert.ok(err instanceof WalListenerError);
      assert.equal(err.code, 'WAL_PGQ_NOT_INSTALLED');
      assert.equal(err.fatal, true);
      assert.match(err.message, /CREATE EXTENSION pgq/);
      return true;
    });
    await noPgq.close();
  } finally {
    await bare.drop();
  }
});
