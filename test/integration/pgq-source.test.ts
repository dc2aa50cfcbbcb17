/**
 * The PgQ source against a real PostgreSQL 15 with pgq and a real pgqd, driven through a
 * RecordingSink (the pipeline's side of the ChangeSink contract: window, acknowledgements,
 * confirmations in order). The end-to-end run through the daemon and RabbitMQ needs the pipeline
 * v2 wiring; test/support/amqp_dump.py is ready for it (pgq-pika.test.ts).
 */
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { test } from 'node:test';
import { WalListenerError } from '../../src/errors.js';
import { eventIdOf } from '../../src/sources/pgq/ids.js';
import { createPgqSource, type PgqPosition } from '../../src/sources/pgq/source.js';
import { captureLogger, consumerInfo, createPgqDatabase, createQueue, pgqConfig, pgqFixture, queueEvents } from '../support/pgq.js';
import { waitFor } from '../support/ports.js';
import { RecordingSink } from '../support/pgq-recording-sink.js';

const fixture = pgqFixture('wl_pgq_src', []);
const FAST = { pollMs: 50 };

/** Opens a session of `source` on a fresh sink and wires the sink's confirmations to it. */
async function openSession(source: ReturnType<typeof createPgqSource>, sink: RecordingSink<PgqPosition>) {
  const session = await source.open(sink, new AbortController().signal);
  sink.attach(session);
  return session;
}

test("mikkoo's example event arrives with its exchange, routing key, body, content type, type and the four automatic headers", async () => {
  await createQueue(fixture.db, 'test');
  const { logger } = captureLogger();
  const source = createPgqSource(pgqConfig(fixture.db, { queue: 'test' }), logger, undefined, FAST);
  const sink = new RecordingSink<PgqPosition>();
  const session = await openSession(source, sink);
  try {
    await fixture.db.sql(`SELECT pgq.insert_event('test', 'test.routing-key', '{"foo": "bar"}', 'postgres', 'application/json', '{"type": "example"}', '')`);
    await waitFor('the event', () => sink.messages.length === 1);
    await waitFor('the batch finished', async () => (await consumerInfo(fixture.db, 'test'))?.current_batch === null && sink.confirmed.length === 1);

    const [event] = await queueEvents(fixture.db, 'test');
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
  await createQueue(fixture.db, 'other_brokers');
  const source = createPgqSource(pgqConfig(fixture.db, { queue: 'other_brokers' }, { type: 'nats', topic: 'fallback' }), captureLogger().logger, undefined, FAST);
  const sink = new RecordingSink<PgqPosition>();
  const session = await openSession(source, sink);
  try {
    await fixture.db.sql(`SELECT pgq.insert_event('other_brokers', 'order.created', '{"id": 7}', 'shop', 'application/json', '{"type": "example", "priority": 3}', '{"tenant": "acme"}')`);
    await fixture.db.sql(`SELECT pgq.insert_event('other_brokers', 'order.paid', 'x', NULL, NULL, NULL, NULL)`);
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
  const source = createPgqSource(pgqConfig(fixture.db, { queue: 'nope' }), captureLogger().logger);
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

test('a batch larger than the window streams through it: the source waits while the window is full; stopped there, the batch comes again whole', async () => {
  const { db } = fixture;
  await createQueue(db, 'big');
  const source = createPgqSource(pgqConfig(db, { queue: 'big' }), captureLogger().logger, undefined, { ...FAST, fetchSize: 500 });
  const sink = new RecordingSink<PgqPosition>({ window: 100, autoAck: false });
  const session = await openSession(source, sink);
  try {
    await db.sql("SELECT pgq.insert_event('big', 'row', g::text) FROM generate_series(1, 3000) g");
    await waitFor('a full window', () => sink.messages.length === 100);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(sink.messages.length, 100, 'nothing more while the window is full');
    await sink.ackAll(40);
    await waitFor('40 more', () => sink.messages.length === 140);
    // Stop while the window is full: the session ends cleanly, the batch stays unfinished.
    session.stop();
    await session.ended;
  } finally {
    await session.close();
  }
  const open = await consumerInfo(db, 'big');
  assert.notEqual(open?.current_batch, null, 'the batch is not finished');
  assert.equal(sink.transactions[0]!.end, undefined, 'the stopped transaction was never committed');

  const again = new RecordingSink<PgqPosition>({ window: 100, autoAck: false });
  const next = await openSession(source, again);
  const broker = setInterval(() => void again.ackAll(), 10); // a broker acknowledging every 10 ms
  try {
    await waitFor('the batch finished', async () => again.messages.length === 3000 && (await consumerInfo(db, 'big'))?.current_batch === null);
  } finally {
    clearInterval(broker);
    await next.close();
    await source.close();
  }
  assert.equal(again.transactions.length, 1, 'one batch, one transaction');
  assert.equal(again.transactions[0]!.info.position, sink.transactions[0]!.info.position, 'PgQ handed out the same batch');
  assert.deepEqual(again.messages.map((m) => m.payload.toString()), Array.from({ length: 3000 }, (_, i) => String(i + 1)));
  assert.deepEqual(again.messages.slice(0, 140).map((m) => m.id), sink.messages.map((m) => m.id), 'same events, same ids');
  assert.ok(again.peakInFlight <= 100, `at most the window in flight (peak ${again.peakInFlight})`);
});

test('no tick for twice the idle period: one warning naming pgqd, and a note when ticks come back', async () => {
  const { db, ticker } = fixture;
  await createQueue(db, 'quiet', { idlePeriod: '1 second' });
  const { logger, records } = captureLogger('info');
  const source = createPgqSource(pgqConfig(db, { queue: 'quiet' }), logger, undefined, { ...FAST, tickerCheckMs: 200, tickerWarnRepeatMs: 60_000 });
  const session = await openSession(source, new RecordingSink<PgqPosition>());
  const warnings = () => records().filter((r) => r.level === 40 && /has had no tick/.test(String(r.msg)));
  try {
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(warnings().length, 0, 'no warning while pgqd runs');
    await ticker.stop();
    await waitFor('the warning', () => warnings().length > 0, 20_000);
    assert.match(String(warnings()[0]!.msg), new RegExp(`PgQ queue quiet has had no tick for \\d+ s: is pgqd running for database ${db.name}\\?`));
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(warnings().length, 1, 'repeated at most every tickerWarnRepeatMs');
    await ticker.start();
    await waitFor('ticking again', () => records().some((r) => r.level === 30 && /is ticking again/.test(String(r.msg))), 20_000);
  } finally {
    await ticker.start().catch(() => undefined);
    await session.close();
    await source.close();
  }
});

test('unregister: true unregisters the consumer on a clean stop, but not while a batch is unfinished', async () => {
  const { db } = fixture;
  await createQueue(db, 'temp');
  const { logger, records } = captureLogger('info');
  const config = pgqConfig(db, { queue: 'temp', unregister: true });

  const held = createPgqSource(config, logger, undefined, FAST);
  const unconfirmed = new RecordingSink<PgqPosition>({ manualConfirm: true });
  let session = await openSession(held, unconfirmed);
  await db.sql("SELECT pgq.insert_event('temp', 'x', 'held')");
  await waitFor('the event', () => unconfirmed.messages.length === 1);
  session.stop();
  await session.close();
  await held.close();
  assert.ok(await consumerInfo(db, 'temp'), 'still registered: PgQ would drop the unfinished batch');
  assert.ok(records().some((r) => r.level === 40 && /not unregistering PgQ consumer/.test(String(r.msg))));

  const source = createPgqSource(config, logger, undefined, FAST);
  const sink = new RecordingSink<PgqPosition>();
  session = await openSession(source, sink);
  await waitFor('the event again, confirmed and finished', async () => sink.messages.length === 1 && (await consumerInfo(db, 'temp'))?.current_batch === null);
  session.stop();
  await session.ended;
  await session.close();
  await source.close();
  assert.equal(await consumerInfo(db, 'temp'), undefined, 'unregistered');
});

test('a lost connection ends the session with a non-fatal WAL_PGQ_READ; the next session gets the unfinished batch again, same ids', async () => {
  const { db } = fixture;
  await createQueue(db, 'lost');
  const source = createPgqSource(pgqConfig(db, { queue: 'lost' }), captureLogger().logger, undefined, FAST);
  const first = new RecordingSink<PgqPosition>({ manualConfirm: true });
  const session = await openSession(source, first);
  await db.sql("SELECT pgq.insert_event('lost', 'e', g::text) FROM generate_series(1, 5) g");
  await waitFor('the batch handed over', () => first.transactions[0]?.end !== undefined);
  const backend = await db.sql<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'wal-listener'");
  assert.equal(backend.rowCount, 1);
  await db.sql('SELECT pg_terminate_backend($1)', [backend.rows[0]!.pid]);
  await assert.rejects(session.ended, (err: unknown) => {
    assert.ok(err instanceof WalListenerError);
    assert.equal(err.code, 'WAL_PGQ_READ');
    assert.equal(err.fatal, false, 'the daemon reconnects');
    return true;
  });
  first.confirmNow(); // too late: the session is gone, nothing may be finished
  await session.close();
  assert.notEqual((await consumerInfo(db, 'lost'))?.current_batch, null);

  const second = new RecordingSink<PgqPosition>();
  const next = await openSession(source, second);
  try {
    await waitFor('the batch again, finished', async () => second.messages.length === 5 && (await consumerInfo(db, 'lost'))?.current_batch === null);
  } finally {
    await next.close();
    await source.close();
  }
  assert.equal(second.transactions[0]!.info.position, first.transactions[0]!.info.position, 'the same batch');
  assert.deepEqual(second.messages.map((m) => m.id), first.messages.map((m) => m.id), 'the same ids');
});
