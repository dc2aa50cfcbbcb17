/**
 * RabbitMqPublisher against the machine's RabbitMQ: what arrives in a bound queue (order,
 * properties, headers, routed messages), the connection contract (`lost` when the broker or the
 * network ends the connection, `restored` when connect() replaces it, publish() settling at once
 * when its signal aborts), messages the broker refuses, a broker that stops answering, and
 * configuration errors. Tests about delivery rules (retries, order across failures, dead letters)
 * drive the publisher through a real Dispatcher, which owns those rules.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import type { ConsumeMessage } from 'amqplib';
import { configSchema, type PublisherConfig } from '../../src/config/schema.js';
import { PublishError, WalListenerError } from '../../src/errors.js';
import { createLogger } from '../../src/observability/logger.js';
import { MemoryDeadLetters } from '../support/dispatch.js';
import { Dispatcher, type DispatcherOptions } from '../../src/pipeline/dispatcher.js';
import { parseRabbitAddress, RabbitMqPublisher } from '../../src/publishers/rabbitmq.js';
import type { OutboundMessage } from '../../src/publishers/publisher.js';
import { freePort, waitFor } from '../support/ports.js';
import {
  cleanup,
  closeConnectionsNamed,
  consumeMessages,
  declareBoundQueue,
  makeTestCerts,
  queueDepth,
  RABBIT_URL,
  rabbitConnect,
  startRabbitProxy,
  startTlsProxy,
  sweepStale,
  uniqueName,
  withMaxMessageSize,
} from '../support/rabbitmq.js';

/** publish()'s abort signal when a test sets no deadline of its own. */
const NO_SIGNAL = new AbortController().signal;

const logLines: string[] = [];
const log = createLogger({ level: 'debug', fmt: 'text' }, { write: (line: string) => logLines.push(line) > 0 } as unknown as NodeJS.WritableStream);

function publisherConfig(overrides: Partial<Record<keyof PublisherConfig, unknown>>): PublisherConfig {
  return configSchema.parse({ listener: { slotName: 'unused' }, publisher: { type: 'rabbitmq', address: RABBIT_URL, ...overrides } }).publisher;
}

/** Declared names and open publishers, removed after the file whatever happened. */
const exchanges: string[] = [];
const queues: string[] = [];
const publishers: RabbitMqPublisher[] = [];
before(() => sweepStale('wl_rmq'));
after(async () => {
  for (const p of publishers) await p.close();
  await cleanup({ queues, exchanges });
});

function newPublisher(overrides: Partial<Record<keyof PublisherConfig, unknown>> = {}): { publisher: RabbitMqPublisher; exchange: string } {
  const exchange = uniqueName('wl_rmq');
  exchanges.push(exchange);
  const publisher = new RabbitMqPublisher(publisherConfig({ topic: exchange, ...overrides }), log);
  publishers.push(publisher);
  return { publisher, exchange };
}

async function boundQueue(exchange: string): Promise<string> {
  const queue = uniqueName('wl_rmq_q');
  queues.push(queue);
  await declareBoundQueue(exchange, queue, '#');
  return queue;
}

let lsnCounter = 0x1000000;
/** One transaction's worth of changes to public.users (ids are row ids, keys the row keys). */
function batchOf(exchange: string, action: 'INSERT' | 'UPDATE' | 'DELETE', ids: number[], round = 0): OutboundMessage[] {
  lsnCounter += 0x100;
  const lsn = `0/${lsnCounter.toString(16).toUpperCase()}`;
  return ids.map((id) => {
    const event = {
      id: randomUUID(),
      schema: 'public',
      table: 'users',
      action,
      data: action === 'DELETE' ? {} : { id, email: `u${id}@example.com`, round },
      dataOld: action === 'INSERT' ? {} : { id },
      commitTime: new Date().toISOString(),
      lsn,
      xid: lsnCounter,
    };
    return { id: event.id, subject: `${exchange}.public_users`, key: `{"id":${id}}`, payload: JSON.stringify(event), lsn, schema: 'public', table: 'users', action, headers: null, properties: null, exchange: null };
  });
}

/** Inserts of `rows` rows, `rounds` rounds of updates of every row (one transaction per round), deletes. */
function workload(exchange: string, rows: number, rounds: number): OutboundMessage[][] {
  const ids = Array.from({ length: rows }, (_, i) => i + 1);
  const batches = [batchOf(exchange, 'INSERT', ids)];
  for (let r = 1; r <= rounds; r++) batches.push(batchOf(exchange, 'UPDATE', ids, r));
  batches.push(batchOf(exchange, 'DELETE', ids));
  return batches;
}

/** Acknowledgements per transaction, as the checkpointer counts them. */
class Transaction {
  acked = 0;
  constructor(readonly size: number) {}
  ack(count: number): void {
    this.acked += count;
  }
  get done(): boolean {
    return this.acked === this.size;
  }
}

/** A real Dispatcher over `publisher`, recording what it reports. */
function dispatcherFor(publisher: RabbitMqPublisher, options: Partial<DispatcherOptions> = {}) {
  const failures: WalListenerError[] = [];
  const fatal: WalListenerError[] = [];
  let deadlines = 0;
  const dispatcher = new Dispatcher({
    publisher,
    logger: log,
    maxInFlight: 8192,
    ackTimeout: 20_000,
    retry: { initialMs: 50, maxMs: 500 },
    reconnect: { initialMs: 50, maxMs: 500 },
    deadLetters: null,
    onFatal: (err) => fatal.push(err),
    observer: { publishFailed: (err) => failures.push(err), ackTimeout: () => deadlines++ },
    ...options,
  });
  return { dispatcher, failures, fatal, deadlines: () => deadlines };
}

/** Hands transactions to the dispatcher in commit order; returns their acknowledgement records. */
function dispatch(dispatcher: Dispatcher, transactions: readonly OutboundMessage[][]): Transaction[] {
  return transactions.map((messages) => {
    const txn = new Transaction(messages.length);
    for (const m of messages) dispatcher.add(m, txn);
    dispatcher.flush();
    return txn;
  });
}

function assertMessage(got: ConsumeMessage, sent: OutboundMessage): void {
  assert.equal(got.properties.messageId, sent.id);
  assert.equal(got.properties.deliveryMode, 2, 'persistent');
  assert.equal(got.properties.contentType, 'application/json');
  assert.deepEqual(got.properties.headers, { lsn: sent.lsn, table: 'public.users', action: sent.action });
  assert.equal(got.fields.routingKey, sent.subject);
  assert.equal(got.content.toString('utf8'), sent.payload);
}

/**
 * Every sent message arrived at least once, only sent messages arrived, and per key the first
 * appearances are in commit (send) order; re-sent copies (the same id again) may follow.
 */
function assertPerKeyOrder(got: readonly ConsumeMessage[], sent: readonly OutboundMessage[]): void {
  const byId = new Map(sent.map((m, i) => [m.id, { m, i }]));
  const seen = new Set<string>();
  const lastByKey = new Map<string, number>();
  for (const msg of got) {
    const id = msg.properties.messageId as string;
    const entry = byId.get(id);
    assert.ok(entry, `only messages we sent (${id})`);
    if (seen.has(id)) continue;
    seen.add(id);
    const previous = lastByKey.get(entry.m.key) ?? -1;
    assert.ok(entry.i > previous, `key ${entry.m.key}: message ${entry.i} first seen after message ${previous}`);
    lastByKey.set(entry.m.key, entry.i);
  }
  assert.equal(seen.size, sent.length, 'every message arrived');
}

/** Reads a queue until every id of `sent` is there (duplicates too), then a moment more. */
function consumeAll(queue: string, sent: readonly OutboundMessage[], timeoutMs = 30_000): Promise<ConsumeMessage[]> {
  const ids = new Set<string>();
  let read = 0;
  return consumeMessages(queue, (got) => {
    for (; read < got.length; read++) ids.add(got[read]!.properties.messageId as string);
    return ids.size >= sent.length;
  }, timeoutMs, 500);
}

describe('rabbitmq publisher', () => {
  test('a workload of inserts, repeated updates and deletes arrives complete, in commit order, with its properties', async () => {
    const { publisher, exchange } = newPublisher();
    await publisher.connect();
    assert.equal(publisher.healthy(), true);
    const queue = await boundQueue(exchange);
    // 1,200-row transactions in 1,200-message batches: a batch is far more than the socket's
    // high-water mark and than one 256 KB write buffer. Every 100th row's events carry 300 KB of
    // multi-byte text: payloads over the negotiated frame size (128 KiB) go out as several body
    // frames, and payloads of 2 KB and more as the socket's own chunks, uncopied.
    const { dispatcher, failures } = dispatcherFor(publisher, { maxBatch: 1_200 });
    const big = (m: OutboundMessage, i: number): OutboundMessage => (i % 100 === 0 ? { ...m, payload: JSON.stringify({ ...JSON.parse(m.payload as string), pad: `é${i}`.repeat(100_000) }) } : m);
    const transactions = workload(exchange, 1_200, 4).map((txn) => txn.map(big));
    const records = dispatch(dispatcher, transactions);
    await dispatcher.drained();
    dispatcher.stop();
    assert.ok(records.every((r) => r.done), 'every transaction acknowledged');
    assert.deepEqual(failures, [], 'no publish failed');
    const sent = transactions.flat();
    const got = await consumeMessages(queue, sent.length);
    assert.equal(got.length, sent.length, 'every message once, nothing more');
    // Each transaction touches every row, so the dispatcher sends them one after another: the
    // whole queue is in commit order, not only each row.
    for (let i = 0; i < sent.length; i++) assertMessage(got[i] as ConsumeMessage, sent[i] as OutboundMessage);
    assert.ok(logLines.some((l) => l.includes('connected to RabbitMQ')));
    assert.ok(!logLines.some((l) => l.includes('guest:guest')), 'the password is never logged');
  });

  test('the broker closes the connection: `lost` at once with its reason, publish refuses, connect() opens a new one and reports `restored`', async () => {
    const { publisher, exchange } = newPublisher();
    const queue = await boundQueue(exchange);
    await publisher.connect();
    const lost: Error[] = [];
    let restored = 0;
    publisher.events.on('lost', (reason) => lost.push(reason));
    publisher.events.on('restored', () => restored++);
    assert.equal(await closeConnectionsNamed(`wal-listener:${exchange}`, 'test'), 1);
    await waitFor('lost', () => lost.length === 1, 10_000, 10);
    assert.match(lost[0]!.message, /CONNECTION.FORCED/);
    assert.equal(publisher.healthy(), false);
    const refused = await publisher.publish(batchOf(exchange, 'INSERT', [1]), NO_SIGNAL).then(() => undefined, (e: unknown) => e);
    assert.ok(refused instanceof PublishError && refused.retryable, String(refused));
    assert.equal(restored, 0, 'nothing reconnects by itself: the dispatcher calls connect()');
    await publisher.connect();
    assert.equal(restored, 1);
    assert.equal(publisher.healthy(), true);
    const batch = batchOf(exchange, 'INSERT', [2]);
    await publisher.publish(batch, NO_SIGNAL);
    const [got] = await consumeMessages(queue, 1);
    assertMessage(got as ConsumeMessage, batch[0] as OutboundMessage);
    assert.equal(lost.length, 1, 'one loss reported');
  });

  test('through the dispatcher, the broker closes the connection twice mid-stream: everything arrives, each row in commit order, at once (no deadline waited for)', async () => {
    const { publisher, exchange } = newPublisher();
    const queue = await boundQueue(exchange);
    await publisher.connect();
    let lost = 0;
    let restored = 0;
    publisher.events.on('lost', () => lost++);
    publisher.events.on('restored', () => restored++);
    // 20-second deadline, counted: a failure noticed through the deadline rather than the loss would show.
    const { dispatcher, failures, deadlines } = dispatcherFor(publisher, { ackTimeout: 20_000 });

    // Transactions update 4 of 20 rows, in turn: five can be in flight at once (disjoint keys).
    const ROWS = 20;
    const ids = Array.from({ length: ROWS }, (_, i) => i + 1);
    const transactions: OutboundMessage[][] = [batchOf(exchange, 'INSERT', ids)];
    const records = dispatch(dispatcher, transactions);
    // Close our connection (only ours: the broker is shared) after 10 acknowledged transactions,
    // again 30 later, and go on until 20 more are acknowledged after the second close.
    const closes: Promise<void>[] = [];
    let closed = 0;
    let ackedAtSecondClose = Infinity;
    const started = Date.now();
    let round = 0;
    const acked = () => records.filter((r) => r.done).length;
    const close = () => closeConnectionsNamed(`wal-listener:${exchange}`, 'test').then((n) => {
      assert.equal(n, 1, 'our one connection was closed');
      if (++closed === 2) ackedAtSecondClose = acked();
    });
    while (closed < 2 || acked() < ackedAtSecondClose + 20) {
      assert.ok(Date.now() - started < 60_000, 'the run finishes');
      round++;
      const group = ids.filter((id) => id % 5 === round % 5);
      const txn = batchOf(exchange, 'UPDATE', group, round);
      transactions.push(txn);
      records.push(...dispatch(dispatcher, [txn]));
      if ((closes.length === 0 && acked() >= 10) || (closes.length === 1 && closed === 1 && acked() >= 40)) closes.push(close());
      if (closes.length > closed) {
        // While rabbitmqctl closes the connection, keep the publisher busy, so that the close fails
        // some batches: the broker confirms a batch within a millisecond or two, so with only a few
        // in flight (whenBelow(8), as before) both closes once landed while nothing was. With up to
        // 64 messages out, batches of held keys queue behind those in flight and go as they settle.
        await dispatcher.whenBelow(64);
      } else {
        await dispatcher.whenBelow(64);
        await delay(2);
      }
    }
    await Promise.all(closes);
    await dispatcher.drained();
    dispatcher.stop();
    assert.ok(records.every((r) => r.done), 'every transaction acknowledged');
    assert.equal(lost, 2, 'two losses reported');
    assert.ok(restored >= 2, `restored after each (${restored})`);
    assert.ok(failures.some((e) => /CONNECTION.FORCED/.test(e.message)), `the broker's reason is in the failures: ${failures[0]?.message}`);
    assert.equal(deadlines(), 0, 'no batch waited for its deadline: the losses failed them at once');

    const sent = transactions.flat();
    const got = await consumeAll(queue, sent);
    assertPerKeyOrder(got, sent);
    assert.equal(publisher.healthy(), true, 'usable again without a restart');
  });

  test('a message larger than max_message_size: its batch rejects not retryable with `rejected` = its index, naming table, LSN and reason', async () => {
    const { publisher, exchange } = newPublisher();
    // RabbitMQ reads max_message_size when a channel opens: lower it only while ours opens.
    await withMaxMessageSize(1024 * 1024, () => publisher.connect());
    const lost: Error[] = [];
    publisher.events.on('lost', (reason) => lost.push(reason));
    const before = batchOf(exchange, 'INSERT', [1, 2, 3]);
    const big = batchOf(exchange, 'UPDATE', [1, 2, 3]);
    const huge = oversized(big[1]!);
    big[1] = huge;
    const afterBig = batchOf(exchange, 'DELETE', [1, 2, 3]);
    const outcomes = await Promise.allSettled([publisher.publish(before, NO_SIGNAL), publisher.publish(big, NO_SIGNAL), publisher.publish(afterBig, NO_SIGNAL)]);
    const [first, second, third] = outcomes;
    if (first?.status === 'rejected') assert.ok(first.reason instanceof PublishError && first.reason.retryable);
    assert.equal(second?.status, 'rejected');
    const refused = (second as PromiseRejectedResult).reason as PublishError;
    assert.ok(refused instanceof PublishError);
    assert.equal(refused.retryable, false);
    assert.equal(refused.code, 'WAL_PUBLISH_REJECTED');
    assert.equal(refused.rejected, 1);
    assert.match(refused.message, /public\.users/);
    assert.ok(refused.message.includes(huge.lsn), refused.message);
    assert.ok(refused.message.includes(huge.id), refused.message);
    assert.match(refused.message, /larger than configured max size 1048576/);
    assert.equal(third?.status, 'rejected', 'a batch written after the refused message is not confirmed');
    assert.ok((third as PromiseRejectedResult).reason instanceof PublishError && ((third as PromiseRejectedResult).reason as PublishError).retryable);
    assert.equal(lost.length, 1, 'the closed channel is reported as a lost connection');
    // connect() opens a new channel (with the broker's normal limit): publishing works again.
    await publisher.connect();
    await publisher.publish(batchOf(exchange, 'INSERT', [4]), NO_SIGNAL);
  });

  test('through the dispatcher with a dead-letter store: the oversized message is stored with its reason, everything else arrives in order', async () => {
    const { publisher, exchange } = newPublisher();
    const queue = await boundQueue(exchange);
    await withMaxMessageSize(1024 * 1024, () => publisher.connect());
    const letters = new MemoryDeadLetters();
    const { dispatcher, fatal } = dispatcherFor(publisher, { deadLetters: letters });
    const transactions = [batchOf(exchange, 'INSERT', [1, 2, 3]), batchOf(exchange, 'UPDATE', [1, 2, 3], 1), batchOf(exchange, 'UPDATE', [1, 2, 3], 2)];
    const huge = oversized(transactions[1]![1]!);
    transactions[1]![1] = huge;
    const records = dispatch(dispatcher, transactions);
    await dispatcher.drained();
    dispatcher.stop();
    assert.deepEqual(fatal, []);
    assert.ok(records.every((r) => r.done), 'every transaction acknowledged (the oversized message once stored)');
    assert.deepEqual(letters.stored.map((l) => l.message.id), [huge.id]);
    assert.equal(letters.stored[0]!.broker, 'rabbitmq');
    assert.match(letters.stored[0]!.reason, /larger than configured max size 1048576/);
    const sent = transactions.flat().filter((m) => m !== huge);
    assertPerKeyOrder(await consumeAll(queue, sent), sent);
  });

  test('a nack (a full queue with x-overflow reject-publish) rejects the batch retryable; it goes through once there is room', async () => {
    const { publisher, exchange } = newPublisher();
    await publisher.connect();
    const queue = uniqueName('wl_rmq_full');
    queues.push(queue);
    const c = await rabbitConnect();
    try {
      await c.channel.assertExchange(exchange, 'topic', { durable: true });
      await c.channel.assertQueue(queue, { durable: true, maxLength: 2, overflow: 'reject-publish' });
      await c.channel.bindQueue(queue, exchange, '#');
    } finally {
      await c.close();
    }
    const batch = batchOf(exchange, 'INSERT', [1, 2, 3]);
    const err = await publisher.publish(batch, NO_SIGNAL).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof PublishError && err.retryable, String(err));
    assert.match(err.message, /nacked/);
    assert.equal(publisher.healthy(), true, 'a nack does not end the connection');
    // Make room, as a consumer would, and send the message that found the queue full: confirmed now.
    const first = await consumeMessages(queue, 2, 10_000, 100);
    assert.deepEqual(first.map((m) => m.properties.messageId), [batch[0]?.id, batch[1]?.id]);
    await publisher.publish(batch.slice(2), NO_SIGNAL);
  });

  test('a broker that stops answering: publish settles as soon as its signal aborts, the missed heartbeats end the connection (`lost`), a cut one too', async (t) => {
    const proxy = await startRabbitProxy();
    t.after(() => proxy.stop());
    const { publisher, exchange } = newPublisher({ address: `${proxy.url}?heartbeat=1` });
    await publisher.connect();
    await publisher.publish(batchOf(exchange, 'INSERT', [1]), NO_SIGNAL);
    const lost: Error[] = [];
    publisher.events.on('lost', (reason) => lost.push(reason));

    proxy.mute(); // the broker still gets our heartbeats: only the client can give the connection up
    const deadline = new AbortController();
    const t0 = Date.now();
    const hung = publisher.publish(batchOf(exchange, 'UPDATE', [1]), deadline.signal).then(() => undefined, (err: unknown) => err);
    await delay(300);
    const reason = new PublishError('deadline passed (test)', true);
    deadline.abort(reason);
    assert.equal(await hung, reason, 'rejects with the signal\'s reason');
    assert.ok(Date.now() - t0 < 1_000);
    // Heartbeat 1 s: two silent periods and amqplib gives the connection up.
    await waitFor('heartbeat timeout', () => lost.length === 1, 10_000, 50);
    assert.match(lost[0]!.message, /Heartbeat timeout/);
    assert.equal(publisher.healthy(), false);
    proxy.thaw();
    await publisher.connect();
    assert.equal(publisher.healthy(), true);
    await publisher.publish(batchOf(exchange, 'UPDATE', [1]), NO_SIGNAL);

    // A connection reset by the network (not by the broker) while batches are in flight.
    const inFlight = [publisher.publish(batchOf(exchange, 'UPDATE', [1, 2]), NO_SIGNAL), publisher.publish(batchOf(exchange, 'UPDATE', [3, 4]), NO_SIGNAL)];
    proxy.cut();
    for (const r of await Promise.allSettled(inFlight)) {
      if (r.status === 'rejected') assert.ok(r.reason instanceof PublishError && r.reason.retryable, String(r.reason));
    }
    await waitFor('lost after the cut', () => lost.length === 2, 5_000, 10);
    await publisher.connect();
    await publisher.publish(batchOf(exchange, 'DELETE', [1, 2]), NO_SIGNAL);
  });

  test('the exchange deleted under a running publisher: the publish fails retryable and connect() declares it again', async () => {
    const { publisher, exchange } = newPublisher();
    await publisher.connect();
    const c = await rabbitConnect();
    try {
      await c.channel.deleteExchange(exchange);
    } finally {
      await c.close();
    }
    const lost = once(publisher.events, 'lost');
    const err = await publisher.publish(batchOf(exchange, 'INSERT', [1]), NO_SIGNAL).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof PublishError && err.retryable, String(err));
    assert.match(err.message, /NOT_FOUND/);
    await lost;
    await publisher.connect();
    await publisher.publish(batchOf(exchange, 'INSERT', [2]), NO_SIGNAL);
    const check = await rabbitConnect();
    try {
      await check.channel.checkExchange(exchange); // throws when it does not exist
    } finally {
      await check.close();
    }
    const queue = await boundQueue(exchange);
    const batch = batchOf(exchange, 'INSERT', [3]);
    await publisher.publish(batch, NO_SIGNAL);
    const [got] = await consumeMessages(queue, 1);
    assertMessage(got as ConsumeMessage, batch[0] as OutboundMessage);
  });

  test('routed messages: their own exchange, headers plus key, AMQP properties; a missing exchange refuses that message only', async () => {
    const { publisher, exchange } = newPublisher();
    const own = uniqueName('wl_rmq_routed');
    exchanges.push(own);
    const ownQueue = uniqueName('wl_rmq_q');
    queues.push(ownQueue);
    await declareBoundQueue(own, ownQueue, '#');
    const topicQueue = await boundQueue(exchange);
    await publisher.connect();
    const routed = (over: Partial<OutboundMessage>): OutboundMessage => ({
      id: randomUUID(), subject: 'orders.created', key: 'order-7', payload: Buffer.from('<order id="7"/>'), lsn: '0/5000', schema: 'public', table: 'outbox', action: 'MESSAGE', keyHeader: true, headers: null, properties: null, exchange: null, ...over,
    });
    const toOwn = routed({ exchange: own, headers: { tenant: 'acme' }, properties: { contentType: 'application/xml', type: 'order.created', correlationId: 'c-1', app_id: 'shop', priority: 3 } });
    const typed = routed({ exchange: own, key: 'k2', headers: { n: '1' }, properties: { headers: { n: 1, nested: { a: true } }, deliveryMode: 1 } });
    const toTopic = routed({ headers: { tenant: 'acme', key: 'given' } });
    await publisher.publish([toOwn, typed, toTopic], NO_SIGNAL);
    const [a, b] = await consumeMessages(ownQueue, 2);
    assert.equal(a!.fields.exchange, own);
    assert.equal(a!.fields.routingKey, 'orders.created');
    assert.equal(a!.content.toString(), '<order id="7"/>');
    assert.equal(a!.properties.messageId, toOwn.id);
    assert.equal(a!.properties.deliveryMode, 2);
    assert.equal(a!.properties.contentType, 'application/xml');
    assert.equal(a!.properties.type, 'order.created');
    assert.equal(a!.properties.correlationId, 'c-1');
    assert.equal(a!.properties.appId, 'shop');
    assert.equal(a!.properties.priority, 3);
    assert.deepEqual(a!.properties.headers, { tenant: 'acme', key: 'order-7' });
    assert.deepEqual(b!.properties.headers, { n: 1, nested: { a: true }, key: 'k2' }, 'a typed header table from the properties wins over the text headers');
    assert.equal(b!.properties.deliveryMode, 1, 'the message\'s own deliveryMode wins');
    const [c] = await consumeMessages(topicQueue, 1);
    assert.equal(c!.fields.exchange, exchange, 'no exchange of its own: publisher.topic');
    assert.deepEqual(c!.properties.headers, { tenant: 'acme', key: 'given' }, 'a given key header is kept');
    assert.equal(c!.properties.contentType, undefined);

    const missing = uniqueName('wl_rmq_missing');
    const batch = [routed({ exchange: own }), routed({ exchange: missing }), routed({ exchange: own })];
    const err = await publisher.publish(batch, NO_SIGNAL).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof PublishError && !err.retryable, String(err));
    assert.equal(err.rejected, 1);
    assert.match(err.message, /NOT_FOUND - no exchange/);
    await publisher.connect();
    await publisher.publish([routed({ exchange: own })], NO_SIGNAL);
    assert.ok((await queueDepth(ownQueue)) >= 1);
  });

  test('healthy() and close(): idempotent close, publish after close rejects', async () => {
    const { publisher, exchange } = newPublisher();
    assert.equal(publisher.healthy(), false, 'not healthy before connecting');
    await publisher.connect();
    await publisher.connect();
    assert.equal(publisher.healthy(), true);
    await publisher.close();
    await publisher.close();
    assert.equal(publisher.healthy(), false);
    const err = await publisher.publish(batchOf(exchange, 'INSERT', [1]), NO_SIGNAL).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof PublishError && err.retryable);
    // An empty batch has nothing to confirm.
    const { publisher: other } = newPublisher();
    await other.publish([], NO_SIGNAL);
  });

  test('amqps with caCert, clientCert and clientKey; enableTLS turns amqp:// into amqps://', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'wl-rmq-tls-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const certs = await makeTestCerts(dir);
    const proxy = await startTlsProxy(certs);
    t.after(() => proxy.stop());
    const tlsFiles = { caCert: certs.ca, clientCert: certs.clientCert, clientKey: certs.clientKey };

    const { publisher, exchange } = newPublisher({ address: `amqps://guest:guest@localhost:${proxy.port}`, ...tlsFiles });
    await publisher.connect();
    const queue = await boundQueue(exchange);
    const batch = batchOf(exchange, 'INSERT', [1, 2]);
    await publisher.publish(batch, NO_SIGNAL);
    const got = await consumeMessages(queue, 2);
    got.forEach((m, i) => assertMessage(m, batch[i] as OutboundMessage));
    assert.deepEqual(proxy.clientNames, ['wal-listener-test-client'], 'the client certificate was presented');

    const viaFlag = newPublisher({ address: `amqp://localhost:${proxy.port}`, enableTLS: true, ...tlsFiles }).publisher;
    await viaFlag.connect();
    await viaFlag.publish(batchOf(exchange, 'INSERT', [3]), NO_SIGNAL);

    // Without our CA the broker's certificate cannot be verified: retryable, with the reason.
    const untrusted = newPublisher({ address: `amqps://localhost:${proxy.port}`, clientCert: certs.clientCert, clientKey: certs.clientKey }).publisher;
    const err = await untrusted.connect().then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof PublishError && err.retryable, String(err));
    assert.match(err.message, /certificate/);
  });

  test('address forms and configuration errors', async (t) => {
    assert.deepEqual(parseRabbitAddress('127.0.0.1:5672', false), { url: 'amqp://127.0.0.1:5672', safeUrl: 'amqp://127.0.0.1:5672', tls: false });
    assert.deepEqual(parseRabbitAddress('amqp://u:p@h:5672/vh', true), { url: 'amqps://u:p@h:5672/vh', safeUrl: 'amqps://u:***@h:5672/vh', tls: true });
    assert.equal(parseRabbitAddress('amqp://u:p%2Fx%40y@h', false).safeUrl, 'amqp://u:***@h');
    for (const bad of ['', 'http://u:s3cret@host', 'amqp://', 'u:s3cret@host:notaport', 'amqp://u:s3cret/x@host']) {
      assert.throws(() => parseRabbitAddress(bad, false), (err: unknown) => {
        assert.ok(err instanceof WalListenerError);
        assert.equal(err.code, 'WAL_PUBLISH_CONFIG');
        assert.match(err.message, /publisher\.address/);
        assert.ok(!err.message.includes('s3cret'), err.message);
        return true;
      });
    }

    // A bare host:port means amqp:// with RabbitMQ's default login.
    const bare = newPublisher({ address: '127.0.0.1:5672' }).publisher;
    await bare.connect();
    assert.equal(bare.healthy(), true);

    const rejects = async (overrides: Partial<Record<keyof PublisherConfig, unknown>>, check: (err: unknown) => void): Promise<void> => {
      const { publisher } = newPublisher(overrides);
      const err = await publisher.connect().then(() => undefined, (e: unknown) => e);
      check(err);
    };
    await rejects({ address: 'amqp://guest:s3cret@127.0.0.1:5672' }, (err) => {
      assert.ok(err instanceof WalListenerError && err.code === 'WAL_PUBLISH_CONFIG', String(err));
      assert.match(err.message, /ACCESS.REFUSED/);
      assert.ok(!err.message.includes('s3cret'));
    });
    await rejects({ address: 'ftp://127.0.0.1' }, (err) => assert.ok(err instanceof WalListenerError && err.code === 'WAL_PUBLISH_CONFIG'));
    const dir = mkdtempSync(join(tmpdir(), 'wl-rmq-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    await rejects({ address: 'amqps://127.0.0.1:5671', caCert: join(dir, 'missing-ca.pem') }, (err) => {
      assert.ok(err instanceof WalListenerError && err.code === 'WAL_PUBLISH_CONFIG', String(err));
      assert.match(err.message, /publisher\.caCert/);
    });
    // enableTLS turns amqp:// into amqps://: the plain listener answers TLS with garbage.
    await rejects({ address: 'amqp://127.0.0.1:5672', enableTLS: true }, (err) => {
      assert.ok(err instanceof PublishError && err.retryable, String(err));
      assert.match(err.message, /amqps:\/\/127\.0\.0\.1:5672/);
    });
    // Nothing listening: retryable, at connect() and at publish().
    const port = await freePort();
    await rejects({ address: `127.0.0.1:${port}` }, (err) => assert.ok(err instanceof PublishError && err.retryable && /ECONNREFUSED/.test(err.message), String(err)));
    const { publisher: down, exchange: downExchange } = newPublisher({ address: `127.0.0.1:${port}` });
    const err = await down.publish(batchOf(downExchange, 'INSERT', [1]), NO_SIGNAL).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof PublishError && err.retryable, String(err));
    // The exchange exists with another type.
    const taken = uniqueName('wl_rmq');
    exchanges.push(taken);
    const c = await rabbitConnect();
    try {
      await c.channel.assertExchange(taken, 'fanout', { durable: true });
    } finally {
      await c.close();
    }
    await rejects({ topic: taken }, (e) => {
      assert.ok(e instanceof WalListenerError && e.code === 'WAL_PUBLISH_CONFIG', String(e));
      assert.match(e.message, /inequivalent arg 'type'/);
    });
  });
});

/** `message` with a payload of more than 2 MiB. */
function oversized(message: OutboundMessage): OutboundMessage {
  const event = JSON.parse(message.payload as string) as Record<string, unknown>;
  return { ...message, payload: JSON.stringify({ ...event, data: { id: 2, blob: 'x'.repeat(2 * 1024 * 1024) } }) };
}
