/**
 * The elector's timing rules with a scripted lock. A test double: a lock connection that stops
 * answering without closing (a hung server or a silent network) cannot be produced on the shared
 * PostgreSQL; the real locks are in test/integration/ha-locks.test.ts and ha.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { FENCE_MS, LeaderElector, PING_MS, standbyPollMs } from '../../src/ha/elector.js';
import { Probes } from '../../src/observability/health-server.js';
import type { LeaderLock, LeaderLockSession } from '../../src/sources/source.js';
import { waitFor } from '../support/ports.js';

const log = pino({ level: 'silent' });

/** A lock whose sessions hold it in turn; `hang` makes pings never answer. */
function scriptedLock(): { lock: LeaderLock; hang(): void; held: () => boolean } {
  let holder: object | null = null;
  let hung = false;
  const lock: LeaderLock = {
    key: 'wal-listener:test',
    async connect(): Promise<LeaderLockSession> {
      const me = {};
      let end: (err: Error) => void = () => {};
      const lost = new Promise<Error>((resolve) => (end = resolve));
      return {
        lost,
        async tryLock() {
          holder ??= me;
          return holder === me;
        },
        ping: (timeoutMs) => (hung ? new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)) : Promise.resolve()),
        async close() {
          if (holder === me) holder = null;
          end(new Error('closed'));
        },
      };
    },
  };
  return { lock, hang: () => (hung = true), held: () => holder !== null };
}

test('standby retry period: refreshConnection/4, at most 5 s', () => {
  assert.equal(standbyPollMs(30_000), 5_000);
  assert.equal(standbyPollMs(2_000), 500);
  assert.equal(standbyPollMs(100), 100);
});

test('a leader whose lock connection stops answering is fenced within the fencing time; release frees the lock', async () => {
  const { lock, hang, held } = scriptedLock();
  const states: string[] = [];
  const leading: boolean[] = [];
  const elector = new LeaderElector({ lock, pollMs: 100, retryMaxMs: 1_000, log, observer: { state: (s) => states.push(s), leader: (l) => leading.push(l) }, onUnavailable: () => {} });
  const leadership = (await elector.acquire(new AbortController().signal))!;
  assert.equal(leadership.startAt, 0);
  assert.deepEqual(leading, [true]);
  await new Promise((r) => setTimeout(r, PING_MS * 1.5));
  assert.equal(leadership.fenced.aborted, false, 'answered pings keep the leadership');
  hang();
  await waitFor('fenced', () => leadership.fenced.aborted, 10_000, 20);
  assert.match(String((leadership.fenced.reason as Error).message), /lock connection failed: no answer within 2000 ms|no answer on the lock connection/);
  assert.deepEqual(leading, [true, false]);
  await leadership.release(false);
  assert.equal(held(), false);
});

test('a standby waits, then takes over with the fencing wait; SIGTERM while waiting returns null', async () => {
  const { lock } = scriptedLock();
  const states: string[] = [];
  const first = new LeaderElector({ lock, pollMs: 50, retryMaxMs: 1_000, log, observer: {}, onUnavailable: () => {} });
  const second = new LeaderElector({ lock, pollMs: 50, retryMaxMs: 1_000, log, observer: { state: (s) => states.push(s) }, onUnavailable: () => {} });
  const leader = (await first.acquire(new AbortController().signal))!;
  const stop = new AbortController();
  const waiting = second.acquire(stop.signal);
  await waitFor('standby', () => states.includes('standby'));
  await leader.release(true);
  const next = (await waiting)!;
  assert.ok(next.startAt >= Date.now() + FENCE_MS - 500, 'took over from a leader it saw: reads after the fencing wait');
  await next.release(true);

  const third = new LeaderElector({ lock, pollMs: 50, retryMaxMs: 1_000, log, observer: {}, onUnavailable: () => {} });
  const again = (await first.acquire(new AbortController().signal))!;
  const aborted = new AbortController();
  const pending = third.acquire(aborted.signal);
  setTimeout(() => aborted.abort(), 200);
  assert.equal(await pending, null);
  await again.release(true);
});

test('/ready: a standby is ready only while its publisher is connected', () => {
  const probes = new Probes();
  const hooks = probes.observer();
  let up = true;
  hooks.health(() => (up ? { ok: true, reason: 'publisher nats connected' } : { ok: false, reason: 'publisher nats is not connected; retrying' }));
  hooks.state('standby');
  assert.deepEqual([probes.readiness().status, probes.readiness().body], [200, 'standby\n']);
  up = false;
  assert.deepEqual([probes.readiness().status, probes.readiness().body], [503, 'not ready: standby, publisher nats is not connected; retrying\n']);
});
