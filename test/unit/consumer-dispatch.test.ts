/**
 * The consumer's shared dispatch, fed with deliveries built here (its input, as adapters build
 * them): per-key order, retries, dead letter or stop, dedup, and stop. The broker tests
 * (test/integration/consumer-*.test.ts) run the same code against real brokers.
 */
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, it } from 'node:test';
import type { Delivery } from '../../src/consumer/adapters/adapter.js';
import { MemoryDedupWindow } from '../../src/consumer/dedup.js';
import { createDecoder } from '../../src/consumer/decode.js';
import { Dispatcher, type DispatcherOptions } from '../../src/consumer/dispatch.js';
import { HandlerFailedError } from '../../src/consumer/errors.js';
import type { Change, Handler } from '../../src/consumer/types.js';

interface Settled {
  outcome: 'ack' | 'release' | 'dead' | undefined;
}

function delivery(id: string, key: number, n: number, options: { deadLetter?: boolean } = {}): Delivery & Settled {
  const body = JSON.stringify({ id, schema: 'public', table: 't', action: 'UPDATE', data: { k: key, n }, dataOld: {}, commitTime: '2024-02-29T08:15:56.000000Z', lsn: '0/1', xid: 1 });
  const d: Delivery & Settled = {
    body,
    outcome: undefined,
    ack: () => void (d.outcome = 'ack'),
    release: () => void (d.outcome = 'release'),
    ...(options.deadLetter ? { deadLetter: async () => void (d.outcome = 'dead') } : {}),
  };
  return d;
}

function dispatcher(handler: Handler, overrides: Partial<DispatcherOptions> = {}): { d: Dispatcher; fatal: Error[]; reported: Error[] } {
  const fatal: Error[] = [];
  const reported: Error[] = [];
  const d = new Dispatcher({
    decode: createDecoder({ format: 'native', tables: { 'public.t': { columns: { k: 'int4', n: 'int4' }, key: ['k'] } } }),
    handlers: new Map([['public.t', handler]]),
    concurrency: 4,
    maxAttempts: 3,
    initialDelayMs: 1,
    maxDelayMs: 5,
    dedup: new MemoryDedupWindow(1000),
    onError: (e) => reported.push(e),
    fatal: (e) => fatal.push(e),
    ...overrides,
  });
  return { d, fatal, reported };
}

const until = async (what: string, check: () => boolean): Promise<void> => {
  for (let i = 0; i < 500 && !check(); i++) await delay(5);
  assert.ok(check(), what);
};

describe('Dispatcher', () => {
  it('runs one change per key at a time, keys in parallel, each key in arrival order, acking after the handler', async () => {
    const seen = new Map<number, number[]>();
    const running = new Map<number, number>();
    let active = 0;
    let maxActive = 0;
    let maxPerKey = 0;
    const { d } = dispatcher(async (change: Change) => {
      const { k, n } = change.after as { k: number; n: number };
      running.set(k, (running.get(k) ?? 0) + 1);
      maxPerKey = Math.max(maxPerKey, running.get(k)!);
      maxActive = Math.max(maxActive, ++active);
      await delay(Math.random() * 3);
      seen.set(k, [...(seen.get(k) ?? []), n]);
      running.set(k, running.get(k)! - 1);
      active--;
    });
    const all: (Delivery & Settled)[] = [];
    for (let n = 0; n < 30; n++) for (let k = 0; k < 6; k++) all.push(delivery(`id-${k}-${n}`, k, n));
    for (const x of all) d.deliver(x);
    await until('every change acknowledged', () => all.every((x) => x.outcome === 'ack'));
    for (let k = 0; k < 6; k++) assert.deepEqual(seen.get(k), Array.from({ length: 30 }, (_, n) => n), `key ${k} in order`);
    assert.equal(maxPerKey, 1, 'never two handlers for one key');
    assert.equal(maxActive, 4, 'keys run in parallel up to the concurrency');
    assert.equal(d.stats.handled, 180);
  });

  it('retries a failing handler in place, then goes on with the key', async () => {
    const calls: string[] = [];
    const { d, reported } = dispatcher(async (change, { attempt }) => {
      calls.push(`${change.id}#${attempt}`);
      if (change.id === 'a' && attempt < 3) throw new Error('not yet');
    });
    const [a, b] = [delivery('a', 1, 1), delivery('b', 1, 2)];
    d.deliver(a);
    d.deliver(b);
    await until('both acknowledged', () => a.outcome === 'ack' && b.outcome === 'ack');
    assert.deepEqual(calls, ['a#1', 'a#2', 'a#3', 'b#1']);
    assert.equal(d.stats.retries, 2);
    assert.equal(reported.length, 2);
    assert.ok(reported[0] instanceof HandlerFailedError);
  });

  it('dead-letters a change that fails every try, where the broker can, and goes on', async () => {
    const { d, fatal, reported } = dispatcher(async (change) => {
      if (change.id === 'a') throw new Error('poison');
    });
    const [a, b] = [delivery('a', 1, 1, { deadLetter: true }), delivery('b', 1, 2, { deadLetter: true })];
    d.deliver(a);
    d.deliver(b);
    await until('settled', () => a.outcome === 'dead' && b.outcome === 'ack');
    assert.equal(fatal.length, 0);
    assert.equal(d.stats.deadLettered, 1);
    assert.match(reported.at(-1)!.message, /handler for public\.t failed 3 times on event a \(lsn 0\/1\): poison/);
  });

  it('without a dead-letter destination, stops: the change is released and its key goes no further', async () => {
    const handled: string[] = [];
    const { d, fatal } = dispatcher(async (change) => {
      if (change.id === 'a') throw new Error('poison');
      handled.push(change.id);
    });
    const [a, b] = [delivery('a', 1, 1), delivery('b', 1, 2)];
    d.deliver(a);
    d.deliver(b);
    await until('fatal reported', () => fatal.length === 1);
    assert.ok(fatal[0] instanceof HandlerFailedError && fatal[0].code === 'WAL_CONSUMER_HANDLER');
    assert.equal(a.outcome, 'release');
    await d.drain(1000);
    assert.equal(b.outcome, 'release');
    assert.deepEqual(handled, []);
  });

  it('skips a redelivered id, even one that arrives while the first copy is still running', async () => {
    let calls = 0;
    const { d } = dispatcher(async () => {
      calls++;
      await delay(10);
    });
    const copies = [delivery('same', 1, 1), delivery('same', 1, 1), delivery('other', 2, 1)];
    for (const c of copies) d.deliver(c);
    await until('all acknowledged', () => copies.every((c) => c.outcome === 'ack'));
    d.deliver(delivery('same', 1, 1));
    await delay(5);
    assert.equal(calls, 2);
    assert.equal(d.stats.duplicates, 2);
  });

  it('uses a pluggable async dedup store: asks it before the handler, tells it after', async () => {
    const stored = new Map<string, string>([['seen-before', 'public.t']]);
    const store = {
      has: async (id: string) => (await delay(1), stored.has(id)),
      add: async (id: string, change: Change) => void (await delay(1), stored.set(id, `${change.schema}.${change.table}`)),
    };
    const calls: string[] = [];
    const { d } = dispatcher(async (change) => void calls.push(change.id), { dedup: store });
    const copies = [delivery('seen-before', 1, 1), delivery('new', 2, 1), delivery('new', 2, 1)];
    for (const c of copies) d.deliver(c);
    await until('all acknowledged', () => copies.every((c) => c.outcome === 'ack'));
    assert.deepEqual(calls, ['new']);
    assert.equal(stored.get('new'), 'public.t');
    assert.equal(d.stats.duplicates, 2);
  });

  it('drain: lets running handlers finish and acknowledges them, releases what has not started', async () => {
    const { d } = dispatcher(async () => delay(30), { concurrency: 1 });
    const [a, b, c] = [delivery('a', 1, 1), delivery('b', 1, 2), delivery('c', 2, 1)];
    for (const x of [a, b, c]) d.deliver(x);
    await delay(5);
    await d.drain(1000);
    assert.deepEqual([a.outcome, b.outcome, c.outcome], ['ack', 'release', 'release']);
    const late = delivery('d', 3, 1);
    d.deliver(late);
    assert.equal(late.outcome, 'release');
  });

  it('a message that is not an event stops the consumer, or is dead-lettered', async () => {
    const { d, fatal } = dispatcher(async () => undefined);
    const bad = { ...delivery('x', 1, 1), body: '{"nope":1}' };
    d.deliver(bad);
    await until('fatal', () => fatal.length === 1);
    assert.equal(fatal[0]!.name, 'EventDecodeError');
    const dl = dispatcher(async () => undefined);
    const bad2 = { ...delivery('x', 1, 1, { deadLetter: true }), body: 'garbage' };
    bad2.deadLetter = async () => void (bad2.outcome = 'dead');
    dl.d.deliver(bad2);
    await until('dead-lettered', () => bad2.outcome === 'dead');
  });
});
