/**
 * The pipeline as a source sees it (ChangeSink), with a real dispatcher over a fake publisher:
 * routing and filtering, event ids independent of the filter, the daemon's own schema never
 * published, and confirmation through dead-lettered transactions, at most once a second.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { createLogger } from '../../src/observability/logger.js';
import { UNCHANGED, type TableDescriptor, type TransactionInfo } from '../../src/pipeline/change.js';
import type { DeadLetter, DeadLetterStore } from '../../src/pipeline/dead-letters.js';
import { Dispatcher } from '../../src/pipeline/dispatcher.js';
import { nativeEncoder } from '../../src/pipeline/encoder.js';
import { eventIdPrefix } from '../../src/pipeline/event-id.js';
import { compileFilter } from '../../src/pipeline/filter.js';
import { Pipeline } from '../../src/pipeline/pipeline.js';
import { compileRouter } from '../../src/pipeline/router.js';
import { FakePublisher } from '../support/fake-publisher.js';

const log = createLogger({ level: 'fatal', fmt: 'json' });
const quote = (v: string): string => JSON.stringify(v);
const int = (v: string): string => v;

const users: TableDescriptor = {
  schema: 'public',
  table: 'users',
  columns: [
    { name: 'id', toJson: int, inIdentity: true },
    { name: 'email', toJson: quote, inIdentity: false },
    { name: 'bio', toJson: quote, inIdentity: false },
  ],
  keyColumns: [0],
};

class Letters implements DeadLetterStore {
  readonly stored: DeadLetter[] = [];
  release: (() => void) | null = null;
  async store(letters: readonly DeadLetter[]): Promise<void> {
    await new Promise<void>((resolve) => (this.release = resolve));
    this.stored.push(...letters);
  }
  async list(): Promise<never[]> {
    return [];
  }
  async remove(): Promise<void> {}
}

function setup(options: { filter?: Record<string, ('insert' | 'update' | 'delete' | 'truncate')[]>; deadLetters?: DeadLetterStore; confirmEveryMs?: number } = {}) {
  const publisher = new FakePublisher();
  publisher.auto = 'ack';
  const skipped: string[] = [];
  const confirmed: bigint[] = [];
  const dispatcher = new Dispatcher({ publisher, logger: log, maxInFlight: 100, ackTimeout: 5000, deadLetters: options.deadLetters ?? null, onFatal: (err) => assert.fail(err.message) });
  const pipeline = new Pipeline<bigint>({
    filter: compileFilter({ tables: options.filter }),
    router: compileRouter({ public_orders: 'notifier' }, { topic: 'wal', topicPrefix: 'app.' }),
    encoder: nativeEncoder,
    messageKeyFrom: '',
    dispatcher,
    compare: (a, b) => (a < b ? -1 : a > b ? 1 : 0),
    confirm: (p) => confirmed.push(p),
    observer: { skipped: (t) => skipped.push(`${t.schema}.${t.table}`) },
    confirmEveryMs: options.confirmEveryMs ?? 0,
  });
  return { publisher, dispatcher, pipeline, skipped, confirmed };
}

const txn = (lsn: bigint): TransactionInfo => ({ idPrefix: eventIdPrefix(lsn, 7), commitTime: '2024-02-29T08:15:56.123456Z', position: `0/${lsn.toString(16).toUpperCase()}`, xid: 42 });

test('routes, filters and encodes; ids count every change, filtered or not; the own schema is invisible', async () => {
  const { publisher, pipeline, skipped, dispatcher } = setup({ filter: { users: ['insert', 'delete'] } });
  const table = pipeline.table(users);
  const orders = pipeline.table({ ...users, table: 'orders' });
  const own = pipeline.table({ ...users, schema: 'wal_listener', table: 'dead_letters' });
  const t = pipeline.begin(txn(0x100n));
  pipeline.update(t, table, ['1', 'b@c', UNCHANGED], ['1', null, null], true); // filtered: position 0
  pipeline.insert(t, own, ['1', 'x', 'y']); // position 1, never published
  pipeline.insert(t, table, ['2', 'a@b', null]); // position 2
  pipeline.insert(t, orders, ['3', 'o', 'p']); // not in the filter: position 3
  pipeline.delete(t, table, ['2', null, null], true); // position 4
  pipeline.commit(t, 0x200n);
  await dispatcher.drained();
  const sent = publisher.calls.flatMap((c) => c.batch);
  assert.deepEqual(sent.map((m) => [m.subject, m.key, m.action, m.id.slice(-8)]), [
    ['wal.app.public_users', '{"id":2}', 'INSERT', '00000002'],
    ['wal.app.public_users', '{"id":2}', 'DELETE', '00000004'],
  ]);
  assert.equal(
    sent[0]!.payload.toString(),
    `{"id":"${sent[0]!.id}","schema":"public","table":"users","action":"INSERT","data":{"id":2,"email":"a@b","bio":null},"dataOld":{},"commitTime":"2024-02-29T08:15:56.123456Z","lsn":"0/100","xid":42}`,
  );
  assert.match(sent[1]!.payload.toString(), /"data":\{\},"dataOld":\{"id":2\}/);
  assert.deepEqual(skipped, ['public.users', 'public.orders'], 'filtered changes are counted; the own schema is not');
  dispatcher.stop();
});

test('unchanged TOAST: absent from data and listed, unless the full old row supplies it', async () => {
  const { publisher, pipeline, dispatcher } = setup();
  const table = pipeline.table(users);
  const t = pipeline.begin(txn(0x300n));
  pipeline.update(t, table, ['1', 'n@x', UNCHANGED], null, false);
  pipeline.update(t, table, ['1', 'n@x', UNCHANGED], ['1', 'o@x', 'long bio'], false);
  pipeline.commit(t, 0x400n);
  await dispatcher.drained();
  const [a, b] = publisher.calls.flatMap((c) => c.batch).map((m) => JSON.parse(m.payload.toString()) as Record<string, unknown>);
  assert.deepEqual([a!.data, a!.unchangedToast], [{ id: 1, email: 'n@x' }, ['bio']]);
  assert.deepEqual([b!.data, b!.unchangedToast], [{ id: 1, email: 'n@x', bio: 'long bio' }, undefined]);
  dispatcher.stop();
});

test('a transaction with a dead-lettered change is confirmed only once the letter is stored, in order', async () => {
  const letters = new Letters();
  const { publisher, pipeline, confirmed, dispatcher } = setup({ deadLetters: letters });
  publisher.limit = 400;
  const table = pipeline.table(users);
  const t1 = pipeline.begin(txn(0x1000n));
  pipeline.insert(t1, table, ['1', 'a', null]);
  pipeline.commit(t1, 0x1100n);
  const t2 = pipeline.begin(txn(0x2000n));
  pipeline.insert(t2, table, ['2', 'b', 'x'.repeat(500)]); // over the limit: dead-lettered
  pipeline.commit(t2, 0x2100n);
  const t3 = pipeline.begin(txn(0x3000n));
  pipeline.insert(t3, table, ['3', 'c', null]);
  pipeline.commit(t3, 0x3100n);
  await delay(20);
  assert.deepEqual(confirmed, [0x1100n], 't2 and t3 wait for the dead letter to be stored');
  assert.deepEqual(publisher.calls.flatMap((c) => c.batch).map((m) => m.key), ['{"id":1}', '{"id":3}'], 'later changes go on meanwhile');
  letters.release!();
  await dispatcher.drained();
  await delay(5);
  assert.equal(confirmed.at(-1), 0x3100n);
  assert.deepEqual(letters.stored.map((l) => l.message.key), ['{"id":2}']);
  dispatcher.stop();
});

test('confirmations are sent as soon as the position moved, at most once per interval; idle positions only when nothing is in flight', async () => {
  const { pipeline, confirmed, dispatcher, publisher } = setup({ confirmEveryMs: 200 });
  const table = pipeline.table(users);
  for (let i = 1; i <= 3; i++) {
    const t = pipeline.begin(txn(BigInt(i * 0x100)));
    pipeline.insert(t, table, [String(i), 'x', null]);
    pipeline.commit(t, BigInt(i * 0x100 + 0x10));
    await dispatcher.drained();
  }
  assert.deepEqual(confirmed, [0x110n], 'the first at once, the rest wait for the interval');
  await delay(260);
  assert.deepEqual(confirmed, [0x110n, 0x310n]);
  publisher.auto = null; // the next change stays in flight
  const t = pipeline.begin(txn(0x400n));
  pipeline.insert(t, table, ['4', 'x', null]);
  pipeline.commit(t, 0x410n);
  await delay(5);
  pipeline.idle(0x500n);
  pipeline.flushConfirm();
  assert.equal(confirmed.at(-1), 0x310n, 'no idle confirmation while a change is in flight');
  publisher.calls.at(-1)!.ack();
  await dispatcher.drained();
  pipeline.idle(0x500n);
  pipeline.flushConfirm();
  assert.equal(confirmed.at(-1), 0x500n);
  dispatcher.stop();
});

test('a table whose subject the broker cannot use is refused before sending (stop, or a dead letter)', async () => {
  const publisher = new FakePublisher();
  publisher.auto = 'ack';
  const stored: string[] = [];
  const store: DeadLetterStore = { store: async (l) => void stored.push(...l.map((x) => x.reason)), list: async () => [], remove: async () => {} };
  const dispatcher = new Dispatcher({ publisher, logger: log, maxInFlight: 100, ackTimeout: 5000, deadLetters: store, onFatal: (err) => assert.fail(err.message) });
  const pipeline = new Pipeline<bigint>({
    filter: compileFilter({}),
    router: compileRouter({}, { topic: 'wal', topicPrefix: '' }),
    encoder: nativeEncoder,
    messageKeyFrom: '',
    dispatcher,
    checkSubject: (subject) => (/\s/.test(subject) ? `NATS subject "${subject}" cannot be used: it contains whitespace` : null),
    confirm: () => {},
  });
  const spaced = pipeline.table({ ...users, table: 'my table' });
  const fine = pipeline.table(users);
  const t = pipeline.begin(txn(0x100n));
  pipeline.insert(t, spaced, ['1', 'a', null]);
  pipeline.insert(t, fine, ['2', 'b', null]);
  pipeline.commit(t, 0x200n);
  await dispatcher.drained();
  assert.deepEqual(stored, ['NATS subject "wal.public_my table" cannot be used: it contains whitespace']);
  assert.deepEqual(publisher.calls.flatMap((c) => c.batch).map((m) => m.subject), ['wal.public_users']);
  dispatcher.stop();
});
