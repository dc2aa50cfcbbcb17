/**
 * The dispatcher's delivery rules, with a fake publisher (test/support/fake-publisher.ts): deadlines,
 * connection loss and restore, ordering per key across failures, rejections and dead-letter order.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { PublishError, WalListenerError } from '../../src/errors.js';
import { createLogger } from '../../src/observability/logger.js';
import type { DeadLetter, DeadLetterStore } from '../../src/pipeline/dead-letters.js';
import { Dispatcher, type Delivery, type DispatcherOptions } from '../../src/pipeline/dispatcher.js';
import { FakePublisher, testMessage } from '../support/fake-publisher.js';
import { waitFor } from '../support/ports.js';

const log = createLogger({ level: 'fatal', fmt: 'json' });

class CountingDelivery implements Delivery {
  acked = 0;
  ack(count: number): void {
    this.acked += count;
  }
}

class MemoryDeadLetters implements DeadLetterStore {
  readonly stored: DeadLetter[] = [];
  failuresLeft = 0;
  async store(letters: readonly DeadLetter[]): Promise<void> {
    if (this.failuresLeft > 0) {
      this.failuresLeft--;
      throw new Error('database unavailable');
    }
    this.stored.push(...letters);
  }
  async list(): Promise<never[]> {
    return [];
  }
  async remove(): Promise<void> {}
}

function setup(overrides: Partial<DispatcherOptions> = {}, publisher = new FakePublisher()) {
  const fatal: WalListenerError[] = [];
  const timeouts: number[] = [];
  const dispatcher = new Dispatcher({
    publisher,
    logger: log,
    maxInFlight: 1000,
    maxBatch: 2,
    ackTimeout: 10_000,
    retry: { initialMs: 1, maxMs: 5 },
    reconnect: { initialMs: 1, maxMs: 5 },
    deadLetters: null,
    onFatal: (err) => fatal.push(err),
    observer: { ackTimeout: () => timeouts.push(Date.now()) },
    ...overrides,
  });
  return { publisher, dispatcher, fatal, timeouts };
}

const settle = () => delay(5);

test('a batch not acknowledged by its deadline is aborted and re-sent; the deadline is the dispatcher\'s', async () => {
  const { publisher, dispatcher, timeouts } = setup({ ackTimeout: 40 });
  const d = new CountingDelivery();
  dispatcher.add(testMessage('a', 'k1'), d);
  dispatcher.flush();
  assert.equal(publisher.calls.length, 1);
  await waitFor('re-send after the deadline', () => publisher.calls.length === 2, 2000, 2);
  assert.ok(publisher.calls[0]!.signal.aborted);
  assert.equal(timeouts.length, 1);
  assert.deepEqual(publisher.sent(), [['a'], ['a']]);
  publisher.calls[1]!.ack();
  await dispatcher.drained();
  assert.equal(d.acked, 1);
  dispatcher.stop();
});

test('a lost connection fails every unacknowledged batch at once; they are re-sent in order when it is restored', async () => {
  const { publisher, dispatcher } = setup();
  const d = new CountingDelivery();
  for (const id of ['a', 'b', 'c', 'd']) dispatcher.add(testMessage(id, id), d);
  dispatcher.flush();
  assert.deepEqual(publisher.sent(), [['a', 'b'], ['c', 'd']]);
  const started = Date.now();
  publisher.lose();
  await settle();
  assert.ok(publisher.calls.every((c) => c.signal.aborted), 'both batches aborted without waiting for the 10 s deadline');
  assert.ok(Date.now() - started < 1000);
  assert.equal(dispatcher.healthy, false);
  // New changes wait while the connection is down.
  dispatcher.add(testMessage('e', 'e'), d);
  dispatcher.flush();
  await delay(30);
  assert.equal(publisher.calls.length, 2, 'nothing is sent into a lost connection');
  publisher.restore();
  // The oldest failed batch goes alone first (the probe); the rest follow once it is acknowledged.
  await waitFor('probe', () => publisher.calls.length === 3, 2000);
  assert.deepEqual(publisher.sent()[2], ['a', 'b']);
  publisher.calls[2]!.ack();
  await waitFor('rest', () => publisher.calls.length === 5, 2000);
  assert.deepEqual(publisher.sent().slice(3), [['c', 'd'], ['e']]);
  for (const c of publisher.pending()) c.ack();
  await dispatcher.drained();
  assert.equal(d.acked, 5);
  assert.equal(dispatcher.healthy, true);
  dispatcher.stop();
});

test('a recovery woken early by the restored connection does not block the next one when its pause ends later', async () => {
  const { publisher, dispatcher } = setup({ reconnect: { initialMs: 150, maxMs: 150 } });
  const d = new CountingDelivery();
  publisher.lose(); // idle: the recovery tries to reconnect, fails, pauses 150 ms
  await delay(20);
  publisher.restore(); // wakes the pause at once: the recovery ends
  await waitFor('healthy again', () => dispatcher.healthy, 2000, 2);
  await delay(250); // the pause's own timer fires now, after the recovery ended
  dispatcher.add(testMessage('a', 'a'), d);
  dispatcher.flush();
  assert.equal(publisher.calls.length, 1);
  publisher.calls[0]!.fail(new PublishError('broker hiccup', true));
  await waitFor('the failed batch re-sent (it stalled for good before)', () => publisher.calls.length === 2, 2000, 2);
  publisher.calls[1]!.ack();
  await dispatcher.drained();
  assert.equal(d.acked, 1);
  dispatcher.stop();
});

test('a batch is not sent while a batch with one of its keys is in flight, and later batches wait behind it', async () => {
  const { publisher, dispatcher } = setup();
  const d = new CountingDelivery();
  dispatcher.add(testMessage('a1', 'A'), d);
  dispatcher.add(testMessage('b1', 'B'), d); // batch 1: A, B
  dispatcher.add(testMessage('c1', 'C'), d);
  dispatcher.add(testMessage('d1', 'D'), d); // batch 2: C, D (no overlap: pipelined)
  dispatcher.add(testMessage('a2', 'A'), d); // batch 3: A (overlaps batch 1)
  dispatcher.flush();
  dispatcher.add(testMessage('e1', 'E'), d); // batch 4: E (no overlap, but behind batch 3)
  dispatcher.flush();
  assert.deepEqual(publisher.sent(), [['a1', 'b1'], ['c1', 'd1']]);
  publisher.calls[1]!.ack();
  await settle();
  assert.equal(publisher.calls.length, 2, 'batch 3 still waits for batch 1');
  publisher.calls[0]!.ack();
  await waitFor('held batches', () => publisher.calls.length === 4, 2000);
  assert.deepEqual(publisher.sent().slice(2), [['a2'], ['e1']]);
  for (const c of publisher.pending()) c.ack();
  await dispatcher.drained();
  dispatcher.stop();
});

test('a publisher that writes in order (stdout) gets batches with a common key at once: its order is the order of the calls', async () => {
  const { publisher, dispatcher } = setup({}, Object.assign(new FakePublisher(), { inOrder: true }));
  const d = new CountingDelivery();
  dispatcher.add(testMessage('a1', 'A'), d);
  dispatcher.add(testMessage('b1', 'B'), d); // batch 1: A, B
  dispatcher.add(testMessage('a2', 'A'), d); // batch 2: A, not held behind batch 1
  dispatcher.flush();
  assert.deepEqual(publisher.sent(), [['a1', 'b1'], ['a2']]);
  for (const c of publisher.pending()) c.ack();
  await dispatcher.drained();
  assert.equal(d.acked, 3);
  dispatcher.stop();
});

test('after a failure, a later change of the same key is never sent before the failed batch is acknowledged', async () => {
  const { publisher, dispatcher } = setup();
  const d = new CountingDelivery();
  dispatcher.add(testMessage('a1', 'A'), d);
  dispatcher.flush(); // batch 1: A
  dispatcher.add(testMessage('b1', 'B'), d);
  dispatcher.flush(); // batch 2: B, in flight together with batch 1
  publisher.calls[1]!.ack(); // B acknowledged first
  publisher.calls[0]!.fail(new PublishError('timeout', true)); // A's fate unknown
  dispatcher.add(testMessage('a2', 'A'), d);
  dispatcher.flush();
  await waitFor('probe of batch 1', () => publisher.calls.length === 3, 2000);
  assert.deepEqual(publisher.sent()[2], ['a1'], 'the failed batch is re-sent before the newer change of A');
  await delay(20);
  assert.equal(publisher.calls.length, 3, 'a2 waits until a1 is acknowledged');
  publisher.calls[2]!.ack();
  await waitFor('a2', () => publisher.calls.length === 4, 2000);
  assert.deepEqual(publisher.sent()[3], ['a2']);
  publisher.calls[3]!.ack();
  await dispatcher.drained();
  assert.equal(d.acked, 3);
  dispatcher.stop();
});

test('reconnect on publish: an unhealthy publisher is reconnected before a batch goes out', async () => {
  const { publisher, dispatcher } = setup();
  publisher.up = false;
  publisher.connectBringsUp = true;
  const d = new CountingDelivery();
  dispatcher.add(testMessage('a', 'A'), d);
  dispatcher.flush();
  await waitFor('sent after reconnect', () => publisher.calls.length === 1, 2000);
  assert.ok(publisher.connects >= 1);
  publisher.calls[0]!.ack();
  await dispatcher.drained();
  dispatcher.stop();
});

test('an oversized message is found before sending, in order: dead-lettered (after earlier messages go out), later ones follow', async () => {
  const store = new MemoryDeadLetters();
  store.failuresLeft = 2;
  const { publisher, dispatcher, fatal } = setup({ deadLetters: store });
  publisher.limit = 100;
  publisher.auto = 'ack';
  const d1 = new CountingDelivery();
  const d2 = new CountingDelivery();
  dispatcher.add(testMessage('a', 'A'), d1);
  dispatcher.add(testMessage('big', 'B', 'x'.repeat(500)), d1);
  dispatcher.add(testMessage('b', 'B'), d2);
  dispatcher.flush();
  await dispatcher.drained();
  assert.deepEqual(publisher.sent(), [['a'], ['b']], 'the big message is never sent');
  assert.deepEqual(store.stored.map((l) => l.message.id), ['big']);
  assert.match(store.stored[0]!.reason, /500 bytes exceeds the 100-byte limit/);
  assert.equal(d1.acked, 2, 'a stored dead letter counts as delivered');
  assert.equal(d2.acked, 1);
  assert.equal(fatal.length, 0);
  dispatcher.stop();
});

test('dead letters are stored in position order, also when stores are slow', async () => {
  const store = new MemoryDeadLetters();
  const { publisher, dispatcher } = setup({ deadLetters: store });
  publisher.limit = 100;
  publisher.auto = 'ack';
  const d = new CountingDelivery();
  for (let i = 0; i < 6; i++) dispatcher.add(testMessage(`m${i}`, `k${i}`, i % 2 ? 'y'.repeat(200) : '{}'), d);
  dispatcher.flush();
  await dispatcher.drained();
  assert.deepEqual(store.stored.map((l) => l.message.id), ['m1', 'm3', 'm5']);
  assert.equal(d.acked, 6);
  dispatcher.stop();
});

test('after a fatal error, drained() waits only for the publishes still under way, not for what can no longer be sent', async () => {
  const { publisher, dispatcher, fatal } = setup();
  const d = new CountingDelivery();
  dispatcher.add(testMessage('a1', 'A'), d);
  dispatcher.add(testMessage('b1', 'B'), d); // batch 1
  dispatcher.add(testMessage('c1', 'C'), d); // batch 2
  dispatcher.flush();
  assert.equal(publisher.calls.length, 2);
  publisher.calls[0]!.fail(new WalListenerError('WAL_STDOUT_CLOSED', 'gone'));
  await settle();
  assert.equal(fatal.length, 1);
  let drained = false;
  void dispatcher.drained().then(() => (drained = true));
  await settle();
  assert.equal(drained, false, 'batch 2 is still under way');
  publisher.calls[1]!.ack();
  await waitFor('drained', () => drained, 2000);
  assert.equal(d.acked, 1, 'batch 2 acknowledged; batch 1 never');
});

test('onReject stop: a message the broker refuses stops the pipeline; nothing after it is sent', async () => {
  const { publisher, dispatcher, fatal } = setup();
  const d = new CountingDelivery();
  dispatcher.add(testMessage('a', 'A'), d);
  dispatcher.flush();
  publisher.calls[0]!.fail(new PublishError('too large', false, { rejected: 0 }));
  await settle();
  assert.equal(fatal.length, 1);
  assert.match(fatal[0]!.message, /will never accept the message for table public\.t, LSN 0\/1 \(id a\): too large/);
  dispatcher.add(testMessage('b', 'B'), d);
  dispatcher.flush();
  await settle();
  assert.equal(publisher.calls.length, 1);
  assert.equal(d.acked, 0);
  dispatcher.stop();
});

test('a refusal that names no message is narrowed down by re-sending one message at a time', async () => {
  const store = new MemoryDeadLetters();
  const { publisher, dispatcher } = setup({ deadLetters: store, maxBatch: 4 });
  const d = new CountingDelivery();
  for (const id of ['a', 'b', 'c']) dispatcher.add(testMessage(id, id), d);
  dispatcher.flush();
  publisher.calls[0]!.fail(new PublishError('the stream refuses a message', false));
  // One at a time: a ok, b refused, then the rest of the batch (c) again.
  await waitFor('a alone', () => publisher.calls.length === 2, 2000);
  assert.deepEqual(publisher.sent()[1], ['a']);
  publisher.calls[1]!.ack();
  await waitFor('b alone', () => publisher.calls.length === 3, 2000);
  assert.deepEqual(publisher.sent()[2], ['b']);
  publisher.calls[2]!.fail(new PublishError('too big', false));
  publisher.auto = 'ack';
  await dispatcher.drained();
  assert.deepEqual(store.stored.map((l) => l.message.id), ['b']);
  assert.equal(d.acked, 3);
  dispatcher.stop();
});

test('the window: full at maxInFlight, whenBelow resolves as acknowledgements arrive', async () => {
  const { publisher, dispatcher } = setup({ maxInFlight: 4 });
  const d = new CountingDelivery();
  for (let i = 0; i < 4; i++) dispatcher.add(testMessage(`m${i}`, `k${i}`), d);
  assert.equal(dispatcher.full, true);
  let below = false;
  void dispatcher.whenBelow().then(() => (below = true));
  dispatcher.flush();
  publisher.calls[0]!.ack();
  await settle();
  assert.equal(below, false, 'half the window is 2: still 2 outstanding');
  publisher.calls[1]!.ack();
  await settle();
  assert.equal(below, true);
  assert.equal(dispatcher.full, false);
  dispatcher.stop();
});

test('the window in bytes: full at maxInFlightBytes; whenBelow waits for half of them, or for nothing in flight', async () => {
  const { publisher, dispatcher } = setup({ maxInFlight: 1000, maxInFlightBytes: 4000 });
  const d = new CountingDelivery();
  const big = (id: string, key: string) => ({ ...testMessage(id, key), payload: Buffer.alloc(1000, 0x61) });
  for (let i = 0; i < 3; i++) dispatcher.add(big(`m${i}`, `k${i}`), d);
  assert.equal(dispatcher.full, false, '3000 of 4000 bytes');
  dispatcher.add(big('m3', 'k3'), d);
  assert.equal(dispatcher.full, true, '4000 bytes, 4 messages');
  let below = false;
  void dispatcher.whenBelow().then(() => (below = true));
  dispatcher.flush();
  publisher.calls[0]!.ack();
  await settle();
  assert.equal(below, false, '2000 bytes outstanding: not below half');
  publisher.calls[1]!.ack();
  await settle();
  assert.equal(below, true);
  // One message larger than the whole window: full, and free again once it is acknowledged.
  dispatcher.add({ ...big('huge', 'h'), payload: Buffer.alloc(10_000) }, d);
  assert.equal(dispatcher.full, true);
  let drained = false;
  void dispatcher.whenBelow().then(() => (drained = true));
  dispatcher.flush();
  publisher.calls[2]!.ack();
  await settle();
  assert.equal(drained, true);
  assert.equal(dispatcher.full, false);
  dispatcher.stop();
});
