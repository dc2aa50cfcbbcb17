/**
 * RabbitMqPublisher against the machine's RabbitMQ: what arrives in a bound queue (order,
 * properties, headers), what happens when the broker closes the connection mid-stream, a message
 * the broker refuses, a broker that stops answering, and configuration errors.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ConsumeMessage } from 'amqplib';
import { configSchema, type PublisherConfig } from '../../src/config/schema.js';
import { PublishError, WalListenerError } from '../../src/errors.js';
import { createLogger } from '../../src/observability/logger.js';
import { parseRabbitAddress, RabbitMqPublisher } from '../../src/publishers/rabbitmq.js';
import type { OutboundMessage } from '../../src/publishers/publisher.js';
import { freePort } from '../support/ports.js';

/** publish()'s abort signal when a test sets no deadline of its own. */
const NO_SIGNAL = new AbortController().signal;
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
/** One transaction's worth of changes to public.users (ids are row ids). */
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
    return { id: event.id, subject: `${exchange}.public_users`, key: '', payload: JSON.stringify(event), lsn, schema: 'public', table: 'users', action, headers: null, properties: null, exchange: null };
  });
}

/** Inserts of `rows` rows, `rounds` rounds of updates of every row (one batch per round), deletes. */
function workload(exchange: string, rows: number, rounds: number): OutboundMessage[][] {
  const ids = Array.from({ length: rows }, (_, i) => i + 1);
  const batches = [batchOf(exchange, 'INSERT', ids)];
  for (let r = 1; r <= rounds; r++) batches.push(batchOf(exchange, 'UPDATE', ids, r));
  batches.push(batchOf(exchange, 'DELETE', ids));
  return batches;
}

/** Publishes batches in order with up to `window` in flight (no retries: any failure fails). */
async function publishAll(publisher: RabbitMqPublisher, batches: OutboundMessage[][], window: number): Promise<void> {
  const inFlight = new Set<Promise<void>>();
  for (const batch of batches) {
    const p: Promise<void> = publisher.publish(batch, NO_SIGNAL).finally(() => inFlight.delete(p));
    inFlight.add(p);
    if (inFlight.size >= window) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
}

function assertMessage(got: ConsumeMessage, sent: OutboundMessage): void {
  assert.equal(got.properties.messageId, sent.id);
  assert.equal(got.properties.deliveryMode, 2, 'persistent');
  assert.equal(got.properties.contentType, 'application/json');
  assert.deepEqual(got.properties.headers, { lsn: sent.lsn, table: 'public.users', action: sent.action });
  assert.equal(got.fields.routingKey, sent.subject);
  assert.equal(got.content.toString('utf8'), sent.payload);
}

describe('rabbitmq publisher', () => {
  test('a workload of inserts, repeated updates and deletes arrives complete, in publish order, with its properties', async () => {
    const { publisher, exchange } = newPublisher();
    await publisher.connect();
    assert.equal(publisher.healthy(), true);
    const queue = await boundQueue(exchange);
    // 1,200 rows: one batch overfills amqplib's 1,024-message channel buffer, so publishing it
    // has to wait for 'drain'; 8 batches are in flight at once.
    const batches = workload(exchange, 1_200, 4);
    const sent = batches.flat();
    await publishAll(publisher, batches, 8);
    const got = await consumeMessages(queue, sent.length);
    assert.equal(got.length, sent.length, 'every message once, nothing more');
    for (let i = 0; i < sent.length; i++) assertMessage(got[i] as ConsumeMessage, sent[i] as OutboundMessage);
    assert.ok(logLines.some((l) => l.includes('connected to RabbitMQ')));
    assert.ok(!logLines.some((l) => l.includes('guest:guest')), 'the password is never logged');
  });

  test('the broker closes the connection mid-stream: in-flight batches reject retryable at once, re-sent batches arrive in order', async () => {
    const { publisher, exchange } = newPublisher({ ackTimeout: '20s' });
    const queue = await boundQueue(exchange);
    await publisher.connect();

    // The pipeline's retry loop: a sliding window of WINDOW batches in flight; on a retryable
    // failure stop sending, wait for the rest to settle, back off, and re-send every unconfirmed
    // batch in the original order.
    const ROWS = 20;
    const WINDOW = 4;
    const ids = Array.from({ length: ROWS }, (_, i) => i + 1);
    const batches: OutboundMessage[][] = [batchOf(exchange, 'INSERT', ids)];
    const sends: number[] = [];
    const confirmed: boolean[] = [];
    const errors: PublishError[] = [];
    const closes: Array<Promise<number>> = [];
    const inFlight = new Set<Promise<void>>();
    let closesDone = 0;
    let confirmedCount = 0;
    let confirmedAfterCloses = 0;
    let faults = 0;
    let firstFailed = Infinity; // lowest batch index that failed since the last re-send
    let confirmedPastAFailure = false;
    let next = 0;
    let round = 0;
    const started = Date.now();

    const send = (index: number): void => {
      if (index >= batches.length) batches.push(batchOf(exchange, 'UPDATE', ids, ++round));
      sends[index] = (sends[index] ?? 0) + 1;
      const p: Promise<void> = publisher.publish(batches[index] as OutboundMessage[], NO_SIGNAL).then(
        () => {
          confirmed[index] = true;
          confirmedCount++;
          if (closesDone === 2) confirmedAfterCloses++;
          if (index > firstFailed) confirmedPastAFailure = true;
        },
        (err: unknown) => {
          assert.ok(err instanceof PublishError && err.retryable, `retryable PublishError expected, got ${String(err)}`);
          errors.push(err);
          firstFailed = Math.min(firstFailed, index);
        },
      );
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    };

    // Produce until both broker-side closes have been carried out and 20 more batches went through.
    while (closesDone < 2 || confirmedAfterCloses < 20) {
      assert.ok(Date.now() - started < 60_000, 'the run finishes');
      // Close our connection (only ours: the broker is shared) after 10 and after 40 confirmed batches.
      if ((closes.length === 0 && confirmedCount >= 10) || (closes.length === 1 && closesDone === 1 && confirmedCount >= 40)) {
        closes.push(closeConnectionsNamed(`wal-listener:${exchange}`, 'test').finally(() => closesDone++));
      }
      while (inFlight.size < WINDOW) send(next++);
      await Promise.race(inFlight);
      if (firstFailed === Infinity) continue;
      faults++;
      await Promise.all(inFlight);
      await new Promise((r) => setTimeout(r, 100));
      next = firstFailed;
      while (confirmed[next]) next++;
      firstFailed = Infinity;
    }
    await Promise.all(inFlight);
    assert.equal(firstFailed, Infinity, 'the last batches went through');
    // Everything before `next` is confirmed; nothing after it was sent.
    batches.length = next;
    assert.deepEqual(await Promise.all(closes), [1, 1], 'the broker closed our connection twice');
    assert.ok(faults >= 1, `faults seen: ${faults}`);
    assert.equal(confirmedPastAFailure, false, 'no batch after a failed one was confirmed in the same window');
    assert.ok(errors.some((e) => /CONNECTION_FORCED/.test(e.message)), `the broker's reason is in the error: ${errors[0]?.message}`);
    assert.ok(!errors.some((e) => /no confirm from RabbitMQ within/.test(e.message)), 'failures came from the close at once, not from the 20 s ack timeout');

    // Every message at least once; first appearances in publish order; duplicates only of re-sent batches.
    const sent = batches.flat();
    const depth = await queueDepth(queue);
    const got = await consumeMessages(queue, depth);
    const batchOfId = new Map<string, number>();
    batches.forEach((b, i) => b.forEach((m) => batchOfId.set(m.id, i)));
    const seen = new Set<string>();
    const firstAppearance: string[] = [];
    for (const msg of got) {
      const id = msg.properties.messageId as string;
      assert.ok(batchOfId.has(id), 'only messages we sent');
      if (seen.has(id)) {
        assert.ok((sends[batchOfId.get(id) as number] ?? 0) > 1, 'a duplicate belongs to a re-sent batch');
        continue;
      }
      seen.add(id);
      firstAppearance.push(id);
    }
    assert.deepEqual(firstAppearance, sent.map((m) => m.id), 'every message, first appearances in publish order');
    assert.ok(sends.some((n) => n > 1), 'some batches were re-sent');
    // The publisher is usable again without a restart.
    assert.equal(publisher.healthy(), true);
  });

  test('a message larger than the broker accepts rejects its batch as not retryable, naming table, LSN and reason', async () => {
    const { publisher, exchange } = newPublisher();
    // RabbitMQ reads max_message_size when a channel opens: lower it only while ours opens.
    await withMaxMessageSize(1024 * 1024, () => publisher.connect());
    const before = batchOf(exchange, 'INSERT', [1, 2, 3]);
    const big = batchOf(exchange, 'UPDATE', [1, 2, 3]);
    const bigMessage = big[1] as OutboundMessage;
    const huge = { ...bigMessage, payload: JSON.stringify({ ...JSON.parse(bigMessage.payload as string), data: { id: 2, blob: 'x'.repeat(2 * 1024 * 1024) } }) };
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
    assert.match(refused.message, /public\.users/);
    assert.ok(refused.message.includes(huge.lsn), refused.message);
    assert.match(refused.message, /larger than configured max size 1048576/);
    assert.equal(third?.status, 'rejected', 'a batch written after the refused message is not confirmed');
    assert.ok((third as PromiseRejectedResult).reason instanceof PublishError && ((third as PromiseRejectedResult).reason as PublishError).retryable);
    // A later publish opens a new channel (with the broker's normal limit) and succeeds.
    await publisher.publish(batchOf(exchange, 'INSERT', [4]), NO_SIGNAL);
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
    // Make room, as a consumer would, and send the message that found the queue full: confirmed now.
    const first = await consumeMessages(queue, 2, 10_000, 100);
    assert.deepEqual(first.map((m) => m.properties.messageId), [batch[0]?.id, batch[1]?.id]);
    await publisher.publish(batch.slice(2), NO_SIGNAL);
  });

  test('a broker that stops answering: the ack timeout rejects retryable, a cut connection too, and the next publish reconnects', async (t) => {
    const proxy = await startRabbitProxy();
    t.after(() => proxy.stop());
    const { publisher, exchange } = newPublisher({ address: proxy.url, ackTimeout: '1s' });
    await publisher.connect();
    await publisher.publish(batchOf(exchange, 'INSERT', [1]), NO_SIGNAL);

    proxy.freeze();
    const t0 = Date.now();
    const hung = await publisher.publish(batchOf(exchange, 'UPDATE', [1]), NO_SIGNAL).then(() => undefined, (err: unknown) => err);
    assert.ok(hung instanceof PublishError && hung.retryable, String(hung));
    assert.match(hung.message, /no confirm from RabbitMQ within 1000 ms/);
    assert.ok(Date.now() - t0 < 5_000);
    assert.equal(publisher.healthy(), false);
    proxy.thaw();
    await publisher.publish(batchOf(exchange, 'UPDATE', [1]), NO_SIGNAL);
    assert.equal(publisher.healthy(), true);

    // A connection reset by the network (not by the broker) while batches are in flight.
    const inFlight = [publisher.publish(batchOf(exchange, 'UPDATE', [1, 2]), NO_SIGNAL), publisher.publish(batchOf(exchange, 'UPDATE', [1, 2]), NO_SIGNAL)];
    proxy.cut();
    for (const r of await Promise.allSettled(inFlight)) {
      if (r.status === 'rejected') assert.ok(r.reason instanceof PublishError && r.reason.retryable, String(r.reason));
    }
    await publisher.publish(batchOf(exchange, 'DELETE', [1, 2]), NO_SIGNAL);
  });

  test('the exchange deleted under a running publisher: the publish fails retryable and the next one re-declares it', async () => {
    const { publisher, exchange } = newPublisher();
    await publisher.connect();
    const c = await rabbitConnect();
    try {
      await c.channel.deleteExchange(exchange);
    } finally {
      await c.close();
    }
    const err = await publisher.publish(batchOf(exchange, 'INSERT', [1]), NO_SIGNAL).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof PublishError && err.retryable, String(err));
    assert.match(err.message, /NOT_FOUND/);
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
