/**
 * KafkaPublisher against a real Kafka protocol implementation: librdkafka's mock cluster (3
 * brokers, hosted by kcat, or by test/support/kafka-mock.c where a test kills and restarts it on
 * the same ports or injects a broker error; see test/support/kafka.ts). Everything published is
 * read back with a kafkajs consumer. Tests about delivery rules (order per key across batches)
 * drive the publisher through the real Dispatcher, which owns them.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { configSchema, type PublisherConfig } from '../../src/config/schema.js';
import { PublishError, WalListenerError } from '../../src/errors.js';
import { KafkaPublisher, publishError } from '../../src/publishers/kafka.js';
import type { OutboundMessage } from '../../src/publishers/publisher.js';
import { dispatchAll } from '../support/dispatch.js';
import { waitFor } from '../support/ports.js';
import { consumeAll, javaPartition, murmur2, partitionCount, startControlledKafkaMock, startKafkaMock, type ConsumedRecord, type KafkaMock } from '../support/kafka.js';

/** publish()'s abort signal when a test sets no deadline of its own. */
const NO_SIGNAL = new AbortController().signal;

const log = pino({ level: 'silent' });

function publisherConfig(address: string, extra: Record<string, unknown> = {}): PublisherConfig {
  const parsed = configSchema.parse({ listener: { slotName: 'x' }, publisher: { type: 'kafka', address, topic: 'wal', ...extra } });
  return parsed.publisher;
}

let lsnCounter = 0x1000000;
function nextLsn(): string {
  lsnCounter += 0x100;
  return `0/${lsnCounter.toString(16).toUpperCase()}`;
}

function change(topic: string, table: string, action: string, row: number, lsn: string, extra: Record<string, unknown> = {}): OutboundMessage {
  const id = randomUUID();
  const data = action === 'DELETE' ? {} : { id: row, ...extra };
  const dataOld = action === 'INSERT' ? {} : { id: row };
  return {
    id,
    subject: `${topic}.public_${table}`,
    key: JSON.stringify({ id: row }),
    payload: JSON.stringify({ id, schema: 'public', table, action, data, dataOld, lsn }),
    lsn,
    schema: 'public',
    table,
    action,
    headers: null,
    properties: null,
    exchange: null,
  };
}

/** Per topic+key: every message arrived once, on one partition (the Java client's), in publish order, with its headers. */
async function assertDelivered(bootstrap: string, published: readonly OutboundMessage[], records: readonly ConsumedRecord[]): Promise<void> {
  assert.equal(records.length, published.length, 'every published message arrives exactly once');
  const byId = new Map(published.map((m) => [m.id, m]));
  for (const record of records) {
    const sent = byId.get(record.headers.id ?? '');
    assert.ok(sent, `record with unknown id header ${record.headers.id}`);
    assert.equal(record.topic, sent.subject);
    assert.equal(record.key, sent.key);
    assert.equal(record.value, sent.payload);
    assert.deepEqual(record.headers, { id: sent.id, lsn: sent.lsn, table: `${sent.schema}.${sent.table}`, action: sent.action });
  }
  const expected = new Map<string, string[]>();
  for (const m of published) {
    const k = `${m.subject} ${m.key}`;
    const list = expected.get(k) ?? [];
    list.push(m.id);
    expected.set(k, list);
  }
  const partitions = new Map<string, number>();
  for (const topic of new Set(published.map((m) => m.subject))) partitions.set(topic, await partitionCount(bootstrap, topic));
  const seen = new Map<string, ConsumedRecord[]>();
  for (const r of records) {
    const k = `${r.topic} ${r.key}`;
    const list = seen.get(k) ?? [];
    list.push(r);
    seen.set(k, list);
  }
  assert.equal(seen.size, expected.size);
  for (const [k, ids] of expected) {
    const got = seen.get(k) ?? [];
    const onPartitions = new Set(got.map((r) => r.partition));
    assert.equal(onPartitions.size, 1, `${k}: all messages on one partition`);
    const [topic, key] = [got[0]!.topic, got[0]!.key];
    assert.equal(got[0]!.partition, javaPartition(key, partitions.get(topic)!), `${k}: the partition Java's murmur2 partitioner picks`);
    const inOrder = [...got].sort((a, b) => a.offset - b.offset).map((r) => r.headers.id);
    assert.deepEqual(inOrder, ids, `${k}: messages in publish order`);
  }
}

describe('KafkaPublisher', () => {
  let mock: KafkaMock;
  before(async () => {
    mock = await startKafkaMock();
  });
  after(async () => {
    await mock?.stop();
  });

  test('murmur2 of the test helper matches the Java client', () => {
    // Vectors from Kafka's UtilsTest.testMurmur2.
    const cases: [string, number][] = [
      ['21', -973932308],
      ['foobar', -790332482],
      ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829],
      ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
      ['abc', 479470107],
    ];
    for (const [text, hash] of cases) assert.equal(murmur2(Buffer.from(text)), hash, text);
  });

  test('inserts, many updates of the same rows in separate batches and deletes arrive complete, keyed, in order per key (dead broker first in the list)', async (t) => {
    // The first address refuses connections: connecting must move on to the next one.
    const publisher = new KafkaPublisher(publisherConfig(`127.0.0.1:1,${mock.bootstrap}`), log);
    t.after(() => publisher.close());
    assert.equal(publisher.healthy(), false);
    await publisher.connect();
    assert.equal(publisher.healthy(), true);

    const topic = `wl${randomBytes(3).toString('hex')}`;
    const users = Array.from({ length: 12 }, (_, i) => i + 1);
    const orders = Array.from({ length: 6 }, (_, i) => i + 1);
    const batches: OutboundMessage[][] = [];
    // One transaction inserting everything (two tables: two topics in one batch).
    let lsn = nextLsn();
    batches.push([...users.map((r) => change(topic, 'users', 'INSERT', r, lsn)), ...orders.map((r) => change(topic, 'orders', 'INSERT', r, lsn))]);
    // 25 transactions updating every row, rows 1 and 2 of users twice in the same transaction.
    for (let round = 1; round <= 25; round++) {
      lsn = nextLsn();
      const batch = users.map((r) => change(topic, 'users', 'UPDATE', r, lsn, { round }));
      batch.push(change(topic, 'users', 'UPDATE', 1, lsn, { round, again: true }), change(topic, 'users', 'UPDATE', 2, lsn, { round, again: true }));
      batch.push(...orders.map((r) => change(topic, 'orders', 'UPDATE', r, lsn, { round })));
      batches.push(batch);
    }
    lsn = nextLsn();
    batches.push([...users.map((r) => change(topic, 'users', 'DELETE', r, lsn)), ...orders.map((r) => change(topic, 'orders', 'DELETE', r, lsn))]);

    await dispatchAll(publisher, batches);
    const published = batches.flat();
    const records = await consumeAll(mock.bootstrap, [`${topic}.public_users`, `${topic}.public_orders`], published.length);
    await assertDelivered(mock.bootstrap, published, records);
    assert.equal(publisher.healthy(), true);
  });

  test('a batch larger than one Kafka request (1,500 messages of 1 KB, one key) arrives whole and in order', async (t) => {
    const publisher = new KafkaPublisher(publisherConfig(mock.bootstrap), log);
    t.after(() => publisher.close());
    await publisher.connect();
    const topic = `wl${randomBytes(3).toString('hex')}`;
    const lsn = nextLsn();
    // A table without a primary key: every change has the key "<schema>.<table>", so one partition.
    const batch = Array.from({ length: 1500 }, (_, i) => ({ ...change(topic, 'nokey', 'INSERT', i, lsn, { pad: 'x'.repeat(1000) }), key: 'public.nokey' }));
    await publisher.publish(batch, NO_SIGNAL);
    const records = await consumeAll(mock.bootstrap, [`${topic}.public_nokey`], batch.length);
    await assertDelivered(mock.bootstrap, batch, records);
  });

  test('broker loss: `lost` when the cluster dies, publishes fail retryable, connect() rejects while down; `restored` and publishing again once it is back on the same ports', async (t) => {
    let cluster = await startControlledKafkaMock();
    t.after(() => cluster.stop());
    const publisher = new KafkaPublisher(publisherConfig(cluster.bootstrap, { ackTimeout: '5s' }), log);
    t.after(() => publisher.close());
    const events: ('lost' | 'restored')[] = [];
    publisher.events.on('lost', () => events.push('lost'));
    publisher.events.on('restored', () => events.push('restored'));
    await publisher.connect();
    const topic = `wl${randomBytes(3).toString('hex')}`;
    const before = [change(topic, 'users', 'INSERT', 1, nextLsn())];
    await publisher.publish(before, NO_SIGNAL);
    assert.equal(publisher.healthy(), true);
    assert.equal(events.length, 0);

    const killedAt = Date.now();
    await cluster.stop();
    await waitFor('lost', () => events.includes('lost'), 5_000, 10);
    const lostAfter = Date.now() - killedAt;
    assert.equal(publisher.healthy(), false);
    console.log(`# lost reported ${lostAfter} ms after the cluster was killed`);
    // A publish now (the dispatcher would not send one while unhealthy) fails retryable, promptly.
    const started = Date.now();
    await assert.rejects(publisher.publish([change(topic, 'users', 'UPDATE', 1, nextLsn())], NO_SIGNAL), (err: unknown) => err instanceof PublishError && err.retryable && /LSN 0\/[0-9A-F]+/.test(err.message));
    assert.ok(Date.now() - started < 5_000, `failed after ${Date.now() - started} ms`);
    await assert.rejects(publisher.connect(), (err: unknown) => err instanceof PublishError && err.retryable);

    cluster = await startControlledKafkaMock({ ports: cluster.ports });
    await publisher.connect();
    assert.deepEqual(events, ['lost', 'restored']);
    assert.equal(publisher.healthy(), true);
    // The new cluster lost every topic: the first send may find the topic missing (retryable,
    // metadata refreshed); the dispatcher's retry then goes through.
    const after = [change(topic, 'users', 'UPDATE', 1, nextLsn()), change(topic, 'users', 'DELETE', 1, nextLsn())];
    await dispatchAll(publisher, [after]);
    const records = await consumeAll(cluster.bootstrap, [`${topic}.public_users`], after.length);
    await assertDelivered(cluster.bootstrap, after, records);
  });

  test('the abort signal settles a publish at once with its reason, and nothing more of the batch is sent', async (t) => {
    const publisher = new KafkaPublisher(publisherConfig(mock.bootstrap), log);
    t.after(() => publisher.close());
    await publisher.connect();
    const topic = `wl${randomBytes(3).toString('hex')}`;
    const lsn = nextLsn();
    const batch = Array.from({ length: 1500 }, (_, i) => ({ ...change(topic, 'nokey', 'INSERT', i, lsn, { pad: 'x'.repeat(1000) }), key: 'public.nokey' }));
    const controller = new AbortController();
    const reason = new PublishError('deadline passed', true);
    const started = Date.now();
    const publishing = publisher.publish(batch, controller.signal);
    controller.abort(reason);
    await assert.rejects(publishing, (err: unknown) => err === reason);
    assert.ok(Date.now() - started < 100, `settled after ${Date.now() - started} ms`);
    await assert.rejects(publisher.publish(batch, controller.signal), (err: unknown) => err === reason, 'an aborted signal rejects at once');
    // A marker sent afterwards shows what reached the topic: nothing of the aborted batch.
    const marker = { ...change(topic, 'nokey', 'INSERT', 0, nextLsn()), key: 'public.nokey' };
    await publisher.publish([marker], NO_SIGNAL);
    const records = await consumeAll(mock.bootstrap, [`${topic}.public_nokey`], 1, 5_000);
    assert.deepEqual(records.map((r) => r.headers.id), [marker.id]);
  });

  test('maxPayloadBytes: Infinity when the broker does not answer DescribeConfigs (the mock cluster); a MESSAGE_TOO_LARGE names the message when it was alone in its request', async (t) => {
    const cluster = await startControlledKafkaMock();
    t.after(() => cluster.stop());
    const publisher = new KafkaPublisher(publisherConfig(cluster.bootstrap), log);
    t.after(() => publisher.close());
    await publisher.connect();
    const topic = `wl${randomBytes(3).toString('hex')}`;
    const first = change(topic, 'users', 'INSERT', 1, nextLsn());
    await publisher.publish([first], NO_SIGNAL);
    assert.equal(publisher.maxPayloadBytes(first), Infinity);
    // The mock never refuses a size (it does not enforce max.message.bytes): the refusal is injected.
    await cluster.injectError(0, 10);
    const big = change(topic, 'users', 'UPDATE', 1, nextLsn(), { blob: 'x'.repeat(50_000) });
    await assert.rejects(publisher.publish([big], NO_SIGNAL), (err: unknown) => {
      assert.ok(err instanceof PublishError, String(err));
      assert.equal(err.retryable, false);
      assert.equal(err.rejected, 0);
      assert.match(err.message, new RegExp(`table public\\.users, LSN ${big.lsn.replace('/', '\\/')}.*MESSAGE_TOO_LARGE`));
      return true;
    });
    await cluster.injectError(0, 10);
    await assert.rejects(publisher.publish([change(topic, 'users', 'UPDATE', 2, nextLsn()), big], NO_SIGNAL), (err: unknown) => {
      assert.ok(err instanceof PublishError, String(err));
      assert.equal(err.retryable, false);
      assert.equal(err.rejected, undefined, 'two messages in the request: the dispatcher finds the culprit by re-sending one at a time');
      return true;
    });
  });

  test('close() is idempotent; publish after close rejects', async () => {
    const publisher = new KafkaPublisher(publisherConfig(mock.bootstrap), log);
    await publisher.connect();
    await Promise.all([publisher.close(), publisher.close()]);
    await publisher.close();
    assert.equal(publisher.healthy(), false);
    await assert.rejects(publisher.publish([change('wl', 'users', 'INSERT', 1, nextLsn())], NO_SIGNAL), (err: unknown) => err instanceof PublishError && err.retryable);
    await assert.rejects(publisher.connect(), PublishError);
  });

  test('an unreachable broker list fails connect() and publish() as retryable', async (t) => {
    const publisher = new KafkaPublisher(publisherConfig('127.0.0.1:1,127.0.0.1:2'), log);
    t.after(() => publisher.close());
    await assert.rejects(publisher.connect(), (err: unknown) => err instanceof PublishError && err.retryable && /127\.0\.0\.1:1/.test(err.message));
    await assert.rejects(publisher.publish([change('wl', 'users', 'INSERT', 1, nextLsn())], NO_SIGNAL), (err: unknown) => err instanceof PublishError && err.retryable);
    assert.equal(publisher.healthy(), false);
  });

  test('TLS files are read at connect: a missing one is a config error naming the key and path; bad pairs and addresses are config errors before', async () => {
    const missing = `/nonexistent/${randomBytes(3).toString('hex')}.pem`;
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ enableTLS: true, caCert: missing }, /publisher\.caCert.*nonexistent/],
      [{ enableTLS: true, clientCert: missing, clientKey: missing }, /publisher\.clientCert.*nonexistent/],
    ];
    for (const [extra, message] of cases) {
      const publisher = new KafkaPublisher(publisherConfig(mock.bootstrap, extra), log);
      await assert.rejects(publisher.connect(), (err: unknown) => err instanceof WalListenerError && !(err instanceof PublishError) && err.code === 'WAL_PUBLISH_CONFIG' && message.test(err.message));
      await publisher.close();
    }
    // A certificate without its key, or a malformed address, is refused by the config schema (exit 2).
    assert.throws(() => publisherConfig(mock.bootstrap, { enableTLS: true, clientCert: missing }), /clientCert and publisher\.clientKey go together/);
    assert.throws(() => publisherConfig(' , '), /Kafka brokers as host:port/);
  });

  // The mock cluster has no TLS listener: a bare TLS endpoint (it hangs up after the handshake,
  // it is no broker) shows that the files reach the handshake and how its failures are reported.
  test('TLS: the broker certificate is checked against caCert, and clientCert/clientKey are presented', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'wl-kafka-tls-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    for (const name of ['server', 'client']) {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.pem`), '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    }
    const clientsSeen: boolean[] = [];
    const server = createServer(
      { key: readFileSync(join(dir, 'server.key')), cert: readFileSync(join(dir, 'server.pem')), ca: [readFileSync(join(dir, 'client.pem'))], requestCert: true, rejectUnauthorized: false },
      (socket) => {
        clientsSeen.push(socket.authorized);
        socket.destroy();
      },
    );
    server.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const address = `127.0.0.1:${(server.address() as { port: number }).port}`;

    const untrusting = new KafkaPublisher(publisherConfig(address, { enableTLS: true, ackTimeout: '3s' }), log);
    await assert.rejects(untrusting.connect(), (err: unknown) => err instanceof WalListenerError && err.code === 'WAL_PUBLISH_CONFIG' && /TLS.*self-signed certificate/.test(err.message));
    await untrusting.close();
    assert.deepEqual(clientsSeen, [], 'no handshake completes with an untrusted server certificate');

    const files = { caCert: join(dir, 'server.pem'), clientCert: join(dir, 'client.pem'), clientKey: join(dir, 'client.key') };
    const trusting = new KafkaPublisher(publisherConfig(address, { enableTLS: true, ackTimeout: '3s', ...files }), log);
    await assert.rejects(trusting.connect(), (err: unknown) => err instanceof PublishError && err.retryable);
    await trusting.close();
    assert.ok(clientsSeen.length > 0 && clientsSeen.every(Boolean), 'handshakes completed with the client certificate accepted');
  });

  // The mock cluster accepts records of any size (it does not enforce message.max.bytes) and has
  // no other refusal a producer can trigger, so the mapping of broker refusals is checked with the
  // exact error objects kafkajs produces for them (its own error table and retrier).
  test('broker refusals are final and name table, LSN and reason; transient errors are retryable', async () => {
    const require = createRequire(import.meta.url);
    const { createErrorFromCode } = require('kafkajs/src/protocol/error.js') as { createErrorFromCode(code: number): Error };
    const createRetry = require('kafkajs/src/retry/index.js') as (o: object) => (fn: () => Promise<never>) => Promise<never>;
    type ErrorClass = new (e: unknown, o?: object) => Error;
    const { KafkaJSNonRetriableError, KafkaJSConnectionError } = require('kafkajs') as { KafkaJSNonRetriableError: ErrorClass; KafkaJSConnectionError: ErrorClass };
    const exhaust = (err: Error): Promise<unknown> => createRetry({ retries: 1, initialRetryTime: 1 })(() => Promise.reject(err)).catch((e: unknown) => e);

    const small = change('wl', 'users', 'UPDATE', 1, '0/16B3748');
    const big = change('wl', 'big_rows', 'INSERT', 2, '0/16B3800', { blob: 'x'.repeat(2_000_000) });

    const retryable = (err: WalListenerError): boolean => err instanceof PublishError && err.retryable;
    // sendMessages bails with the broker's error itself when Kafka marks it non-retriable.
    // Two messages in the failing request (at 3 and 4 of a batch of 5): which one is too large is not known.
    const batch = [small, small, small, small, big];
    const tooLarge = publishError(createErrorFromCode(10), batch, 3, 2);
    assert.ok(tooLarge instanceof PublishError);
    assert.equal(tooLarge.retryable, false);
    assert.equal(tooLarge.rejected, undefined);
    assert.equal(tooLarge.code, 'WAL_PUBLISH_REJECTED');
    assert.match(tooLarge.message, /table public\.users, LSN 0\/16B3748.*largest 2000\d+ bytes/);
    assert.match(tooLarge.message, /MESSAGE_TOO_LARGE: The request included a message larger than the max message size/);
    // Alone in its request: the culprit is known, by its index in the batch.
    const alone = publishError(createErrorFromCode(10), batch, 4, 1);
    assert.ok(alone instanceof PublishError);
    assert.equal(alone.rejected, 4);
    assert.match(alone.message, /table public\.big_rows, LSN 0\/16B3800/);

    const invalid = publishError(createErrorFromCode(87 /* INVALID_RECORD */), [small, big], 0, 2);
    assert.ok(invalid instanceof PublishError && !invalid.retryable, invalid.message);
    assert.match(invalid.message, /table public\.users, LSN 0\/16B3748/);
    // The client's rights, not the message: a setup error that stops the daemon (never a dead letter).
    const denied = publishError(createErrorFromCode(29 /* TOPIC_AUTHORIZATION_FAILED */), [small, big], 0, 2);
    assert.ok(!(denied instanceof PublishError), denied.message);
    assert.equal(denied.code, 'WAL_PUBLISH_CONFIG');
    assert.equal(denied.fatal, true);

    const notLeader = publishError(await exhaust(createErrorFromCode(6)), [small], 0, 1);
    assert.ok(retryable(notLeader), notLeader.message);
    assert.match(notLeader.message, /NOT_LEADER_FOR_PARTITION/);

    const unknownTopic = publishError(await exhaust(createErrorFromCode(3)), [small], 0, 1);
    assert.ok(retryable(unknownTopic));
    assert.match(unknownTopic.message, /does not exist/);

    // What a send returns once the brokers are gone: a non-retriable wrapper around a connection error.
    const connection = new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:9092');
    const gone = publishError(new KafkaJSNonRetriableError(connection, { cause: connection }), [small], 0, 1);
    assert.ok(retryable(gone));
    assert.match(gone.message, /LSN 0\/16B3748.*ECONNREFUSED/);
  });
});
