/**
 * PubSubPublisher against the real Pub/Sub emulator: ordering keys, attributes, topic checks and
 * creation, error mapping, the abort signal, and an outage of the emulator (connection state from
 * the gRPC channel). Tests about delivery rules (order per key across batches, re-sends after a
 * failure) drive the publisher through the real Dispatcher, which owns them.
 */
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { PubSub } from '@google-cloud/pubsub';
import { pino } from 'pino';
import { configSchema, type PublisherConfig } from '../../src/config/schema.js';
import { PublishError, WalListenerError } from '../../src/errors.js';
import { PubSubPublisher } from '../../src/publishers/google-pubsub.js';
import type { OutboundMessage } from '../../src/publishers/publisher.js';
import { dispatchAll } from '../support/dispatch.js';
import { waitFor } from '../support/ports.js';
import { emulatorClient, startPubSubEmulator, subscribeOrdered, type PubSubEmulator, type ReceivedMessage } from '../support/pubsub.js';

/** publish()'s abort signal when a test sets no deadline of its own. */
const NO_SIGNAL = new AbortController().signal;

const PROJECT = 'wl-test';
const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

let emulator: PubSubEmulator | undefined;
let admin: PubSub;
const cleanups: (() => Promise<unknown>)[] = [];

before(async () => {
  emulator = await startPubSubEmulator();
  // The client library reads the emulator address from the environment (src/ never does).
  process.env.PUBSUB_EMULATOR_HOST = emulator.host;
  admin = emulatorClient(emulator.host, PROJECT);
});

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  await admin?.close().catch(() => undefined);
  await emulator?.stop();
});

function publisherConfig(overrides: Record<string, unknown> = {}): PublisherConfig {
  return configSchema.parse({
    listener: { slotName: 'unused' },
    publisher: { type: 'google_pubsub', topic: 'wl', pubSubProjectId: PROJECT, ackTimeout: '5s', ...overrides },
  }).publisher;
}

async function connected(overrides: Record<string, unknown> = {}): Promise<PubSubPublisher> {
  const publisher = new PubSubPublisher(publisherConfig(overrides), log);
  cleanups.push(() => publisher.close());
  await publisher.connect();
  return publisher;
}

let lsnCounter = 0x1000;
function nextLsn(): string {
  return `0/${(lsnCounter += 0x40).toString(16).toUpperCase()}`;
}

function change(table: string, rowId: number, action: string, lsn: string, seq: number): OutboundMessage {
  const id = randomUUID();
  return {
    id,
    subject: `wl.public_${table}`,
    key: JSON.stringify({ id: rowId }),
    payload: JSON.stringify({ id, schema: 'public', table, action, data: action === 'DELETE' ? {} : { id: rowId, seq }, lsn }),
    lsn,
    schema: 'public',
    table,
    action,
    headers: null,
    properties: null,
    exchange: null,
  };
}

/**
 * Every published change arrived (once or more) with its attributes, data and ordering key, and
 * each ordering key's changes arrived in publish order (first arrivals; later copies are redeliveries).
 */
function assertDelivered(published: readonly OutboundMessage[], received: readonly ReceivedMessage[]): void {
  const byId = new Map(published.map((m) => [m.id, m]));
  const arrivals = new Map<string, string[]>(); // subject + ordering key -> ids in first-arrival order
  const seen = new Set<string>();
  for (const message of received) {
    const id = message.attributes.id ?? '';
    const sent = byId.get(id);
    assert.ok(sent, `unexpected message id ${id}`);
    assert.deepEqual(message.attributes, { id: sent.id, lsn: sent.lsn, table: `public.${sent.table}`, action: sent.action });
    assert.equal(message.orderingKey, sent.key);
    assert.equal(message.data, sent.payload);
    if (seen.has(id)) continue;
    seen.add(id);
    const key = `${sent.subject} ${sent.key}`;
    arrivals.set(key, [...(arrivals.get(key) ?? []), id]);
  }
  assert.equal(seen.size, published.length, 'every change arrives');
  const expected = new Map<string, string[]>();
  for (const m of published) {
    const key = `${m.subject} ${m.key}`;
    expected.set(key, [...(expected.get(key) ?? []), m.id]);
  }
  for (const [key, ids] of expected) assert.deepEqual(arrivals.get(key), ids, `changes of ${key} arrive in publish order`);
}

test('delivers every change with its attributes, one ordering key per row, in publish order', async () => {
  const tables = ['users', 'orders'];
  const rows = 100;
  const updateRounds = 25;
  const subs = await Promise.all(tables.map((t) => subscribeOrdered(admin, `wl.public_${t}`, `sub_${t}_${randomUUID().slice(0, 8)}`)));
  cleanups.push(() => Promise.all(subs.map((s) => s.close())));
  const publisher = await connected();

  // Inserts, many rounds of updates of the same rows (one batch per round), deletes.
  const batches: OutboundMessage[][] = [];
  let seq = 0;
  const round = (action: string): void => {
    const lsn = nextLsn();
    batches.push(tables.flatMap((t) => Array.from({ length: rows }, (_, i) => change(t, i + 1, action, lsn, ++seq))));
  };
  round('INSERT');
  for (let r = 0; r < updateRounds; r++) round('UPDATE');
  round('DELETE');
  const published = batches.flat();

  // Through the dispatcher: batches of other keys in flight at once, each key's batches in order.
  const started = Date.now();
  await dispatchAll(publisher, batches);
  const publishMs = Date.now() - started;
  assert.equal(publisher.healthy(), true);

  await Promise.all(subs.map((s) => s.waitForIds(published.length / tables.length, 60_000)));
  const perSecond = Math.round((published.length * 1000) / publishMs);
  console.log(`# published ${published.length} messages in ${publishMs} ms (${perSecond} msg/s, emulator)`);

  assertDelivered(published, subs.flatMap((sub) => sub.received));
  for (const t of tables) {
    for (let rowId = 1; rowId <= rows; rowId++) {
      assert.equal(published.filter((m) => m.table === t && m.key === JSON.stringify({ id: rowId })).length, updateRounds + 2);
    }
  }
  await Promise.all(subs.map((s) => s.close()));
});

test('a missing topic is a configuration error naming it; with createTopics it is created', async () => {
  const table = `missing_${randomUUID().slice(0, 8)}`;
  const strict = await connected();
  const lsn = nextLsn();
  const isSetupError = (err: unknown): boolean => {
    // A setup error stops the daemon; it is no PublishError, so never taken for a rejected message.
    assert.ok(err instanceof WalListenerError && !(err instanceof PublishError), String(err));
    assert.equal(err.code, 'WAL_PUBLISH_CONFIG');
    assert.equal(err.fatal, true);
    assert.match(err.message, new RegExp(`wl\\.public_${table}`));
    assert.match(err.message, /createTopics/);
    return true;
  };
  await assert.rejects(strict.publish([change(table, 1, 'INSERT', lsn, 1)], NO_SIGNAL), isSetupError);
  // Not remembered as ready: the next attempt checks again.
  await assert.rejects(strict.publish([change(table, 1, 'INSERT', lsn, 1)], NO_SIGNAL), isSetupError);
  const [existsBefore] = await admin.topic(`wl.public_${table}`).exists();
  assert.equal(existsBefore, false);

  const creating = await connected({ createTopics: true });
  const other = await connected({ createTopics: true }); // races the first one for the same topic
  const messages = Array.from({ length: 3 }, (_, i) => change(table, i + 1, 'INSERT', lsn, i));
  await Promise.all([creating.publish(messages.slice(0, 2), NO_SIGNAL), creating.publish(messages.slice(2), NO_SIGNAL), other.publish(messages, NO_SIGNAL)]);
  const [existsAfter] = await admin.topic(`wl.public_${table}`).exists();
  assert.equal(existsAfter, true);
});

test('a message Pub/Sub can never accept is a non-retryable error naming table, LSN and reason', async () => {
  const publisher = await connected();
  const sub = await subscribeOrdered(admin, 'wl.public_big', `sub_big_${randomUUID().slice(0, 8)}`);
  cleanups.push(() => sub.close());
  const lsn = nextLsn();
  const big = { ...change('big', 1, 'INSERT', lsn, 1), payload: 'x'.repeat(11 * 1024 * 1024) };
  // The dispatcher checks maxPayloadBytes before sending; publish() refuses it too, naming its index.
  assert.ok(publisher.maxPayloadBytes(big) < 10 * 1024 * 1024 && publisher.maxPayloadBytes(big) > 10 * 1024 * 1024 - 1024);
  assert.ok(Buffer.byteLength(big.payload) > publisher.maxPayloadBytes(big));
  await assert.rejects(publisher.publish([change('big', 2, 'INSERT', lsn, 2), big], NO_SIGNAL), (err: unknown) => {
    assert.ok(err instanceof PublishError);
    assert.equal(err.retryable, false);
    assert.equal(err.rejected, 1);
    assert.match(err.message, /public\.big/);
    assert.match(err.message, new RegExp(lsn.replace('/', '\\/')));
    assert.match(err.message, /at most 10485760 bytes/);
    return true;
  });
  // Nothing of the batch was sent: the small message before it did not arrive either.
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(sub.received.length, 0);
});

test('an ordering key over 1 KB (a long text primary key) is replaced by its SHA-256, still one per row', async () => {
  const publisher = await connected();
  const sub = await subscribeOrdered(admin, 'wl.public_longkey', `sub_longkey_${randomUUID().slice(0, 8)}`);
  cleanups.push(() => sub.close());
  const rowKey = JSON.stringify({ id: 'é'.repeat(600) }); // 600 characters, 1,200+ bytes
  const keyed = (action: string): OutboundMessage => ({ ...change('longkey', 1, action, nextLsn(), 1), key: rowKey });
  const published = [keyed('INSERT'), keyed('UPDATE'), keyed('DELETE')];
  await publisher.publish(published.slice(0, 2), NO_SIGNAL);
  await publisher.publish(published.slice(2), NO_SIGNAL);
  await sub.waitForIds(3);
  const expectedKey = `sha256:${createHash('sha256').update(rowKey).digest('hex')}`;
  assert.deepEqual(sub.received.map((m) => m.orderingKey), [expectedKey, expectedKey, expectedKey]);
  assert.deepEqual(sub.received.map((m) => m.attributes.action), ['INSERT', 'UPDATE', 'DELETE']);
});

test('connect without pubSubProjectId is a configuration error', async () => {
  // Config validation already refuses this (exit 2); the publisher checks again for other callers.
  const publisher = new PubSubPublisher({ ...publisherConfig(), pubSubProjectId: '' }, log);
  await assert.rejects(publisher.connect(), (err: unknown) => {
    assert.ok(err instanceof WalListenerError);
    assert.equal(err.code, 'WAL_PUBLISH_CONFIG');
    assert.match(err.message, /pubSubProjectId/);
    return true;
  });
  await publisher.close();
  await publisher.close();
});

test('emulator hung: publish rejects retryable after ackTimeout, and works again once it answers', async () => {
  const em = emulator!;
  const keepAlive = setInterval(() => undefined, 1000); // see the next test
  cleanups.push(async () => {
    clearInterval(keepAlive);
    em.thaw();
  });
  const publisher = await connected({ ackTimeout: '2s' });
  const sub = await subscribeOrdered(admin, 'wl.public_hung', `sub_hung_${randomUUID().slice(0, 8)}`);
  cleanups.push(() => sub.close());
  const first = [change('hung', 1, 'INSERT', nextLsn(), 1)];
  await publisher.publish(first, NO_SIGNAL);

  em.freeze();
  const stuck = [change('hung', 1, 'UPDATE', nextLsn(), 2)];
  const started = Date.now();
  await assert.rejects(publisher.publish(stuck, NO_SIGNAL), (err: unknown) => {
    assert.ok(err instanceof PublishError);
    assert.equal(err.retryable, true);
    assert.match(err.message, /public\.hung, LSN .*DEADLINE_EXCEEDED/);
    return true;
  });
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 1_900 && elapsed < 2_000 + 2_000, `rejected after ${elapsed} ms`);
  em.thaw();

  // The request may have reached the server before it froze: the retry can duplicate, never reorder.
  const next = [change('hung', 1, 'DELETE', nextLsn(), 3)];
  await publisher.publish(stuck, NO_SIGNAL);
  await publisher.publish(next, NO_SIGNAL);
  await sub.waitForIds(3);
  assertDelivered([...first, ...stuck, ...next], sub.received);
});

test('the abort signal settles a publish at once with its reason; a publish waiting for its topic check sends nothing after the abort', async () => {
  const publisher = await connected({ createTopics: true });
  const table = `abort_${randomUUID().slice(0, 8)}`;
  const sub = await subscribeOrdered(admin, `wl.public_${table}`, `sub_${table}`);
  cleanups.push(() => sub.close());
  const controller = new AbortController();
  const reason = new PublishError('deadline passed', true);
  // The topic is not checked yet by this publisher: the publish waits for the check, then must not send.
  const aborted = [change(table, 1, 'INSERT', nextLsn(), 1)];
  const publishing = publisher.publish(aborted, controller.signal);
  controller.abort(reason);
  await assert.rejects(publishing, (err: unknown) => err === reason);
  await assert.rejects(publisher.publish(aborted, controller.signal), (err: unknown) => err === reason, 'an aborted signal rejects at once');
  const marker = [change(table, 1, 'UPDATE', nextLsn(), 2)];
  await publisher.publish(marker, NO_SIGNAL);
  await sub.waitForIds(1);
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(sub.received.map((m) => m.attributes.id), [marker[0]!.id]);
});

// Last: it stops the emulator.
test('emulator killed: `lost` from the gRPC channel, publishes fail retryable, connect() rejects; restarted on the same port: `restored`, and the failed batches re-sent in order through the dispatcher', async () => {
  const em = emulator!;
  // gRPC unrefs its timers and sockets; in the daemon the replication connection keeps the process
  // alive while a publish waits for its deadline. Here nothing else may, so hold the loop open.
  const keepAlive = setInterval(() => undefined, 1000);
  cleanups.push(async () => clearInterval(keepAlive));
  const publisher = await connected({ ackTimeout: '3s', createTopics: true });
  const events: string[] = [];
  publisher.events.on('lost', () => events.push('lost'));
  publisher.events.on('restored', () => events.push('restored'));
  let seq = 0;
  const round = (action: string): OutboundMessage[] => {
    const lsn = nextLsn();
    return Array.from({ length: 5 }, (_, i) => change('outage', i + 1, action, lsn, ++seq));
  };
  await publisher.publish(round('INSERT'), NO_SIGNAL);
  assert.equal(events.length, 0);

  const killedAt = Date.now();
  await em.stop();
  await waitFor('lost', () => events.includes('lost'), 5_000, 10);
  console.log(`# lost reported ${Date.now() - killedAt} ms after the emulator was killed`);
  assert.equal(publisher.healthy(), false);
  // The library pauses a key whose request failed: these keys must be resumed for the re-send.
  const failed = [round('UPDATE'), round('UPDATE')];
  const started = Date.now();
  for (const batch of failed) {
    await assert.rejects(publisher.publish(batch, NO_SIGNAL), (err: unknown) => {
      assert.ok(err instanceof PublishError, String(err));
      assert.equal(err.retryable, true, err.message);
      assert.match(err.message, /public\.outage, LSN/);
      return true;
    });
  }
  assert.ok(Date.now() - started < 2 * 3_000 + 2_000, `rejected after ${Date.now() - started} ms`);
  await assert.rejects(publisher.connect(), (err: unknown) => err instanceof PublishError && err.retryable);

  // A fresh emulator on the same port has lost every topic. Subscribe first (that creates the
  // topic), then let the dispatcher re-send the failed batches and a new one.
  emulator = await startPubSubEmulator(em.port);
  const admin2 = emulatorClient(emulator.host, PROJECT);
  cleanups.push(() => admin2.close());
  const sub = await subscribeOrdered(admin2, 'wl.public_outage', `sub_outage_${randomUUID().slice(0, 8)}`);
  cleanups.push(() => sub.close());
  await waitFor('restored', () => events.includes('restored'), 15_000, 10);
  await publisher.connect();
  assert.deepEqual(events, ['lost', 'restored']);
  assert.equal(publisher.healthy(), true);
  const after = round('DELETE');
  await dispatchAll(publisher, [...failed, after]);
  const published = [...failed.flat(), ...after];
  await sub.waitForIds(published.length);
  assertDelivered(published, sub.received);

  await publisher.close();
  await publisher.close();
  await assert.rejects(publisher.publish(after, NO_SIGNAL), (err: unknown) => err instanceof PublishError && err.retryable);
});
