/**
 * The leader locks of each source kind against real servers (the daemon-level failover is in
 * ha.test.ts): one holder at a time, freed when the holder's session ends or is killed, and the
 * elector fencing a leader whose lock backend is terminated while a waiting elector takes over only
 * after the fencing wait.
 *  - PgQ: a PostgreSQL advisory lock keyed by queue and consumer;
 *  - MySQL/MariaDB: GET_LOCK keyed by mysql.serverId (the machine's MariaDB).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { configSchema } from '../../src/config/schema.js';
import { FENCE_MS, LeaderElector, type Leadership } from '../../src/ha/elector.js';
import { createLeaderLock } from '../../src/sources/index.js';
import type { LeaderLock, LeaderLockSession } from '../../src/sources/source.js';
import { mysqlSourceConfig, query as mysqlQuery } from '../support/mysql.js';
import { captureLogger, pgqConfig } from '../support/pgq.js';
import { waitFor } from '../support/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

let db: TestDatabase;
const sessions: LeaderLockSession[] = [];

before(async () => {
  db = await createTestDatabase('wl_ha_locks');
});

after(async () => {
  for (const s of sessions) await s.close();
  await db?.drop();
});

async function open(lock: LeaderLock): Promise<LeaderLockSession> {
  const session = await lock.connect();
  sessions.push(session);
  return session;
}

/** Two sessions of one lock: exclusive; freed by a clean close and by a killed session. */
async function exclusive(lock: LeaderLock, kill: (holder: LeaderLockSession) => Promise<void>): Promise<void> {
  const [a, b, c] = [await open(lock), await open(lock), await open(lock)];
  assert.equal(await a.tryLock(), true, 'the first session takes the lock');
  assert.equal(await b.tryLock(), false, 'a second session does not get it');
  await a.close();
  await waitFor('the lock freed by a clean close', () => b.tryLock());
  assert.equal(await c.tryLock(), false);
  await kill(b);
  const reason = await Promise.race([b.lost, new Promise<null>((r) => setTimeout(() => r(null), 5_000))]);
  assert.ok(reason instanceof Error, 'the killed session reports its loss');
  await waitFor('the lock freed by the killed session', () => c.tryLock(), 10_000);
  await c.ping(2_000);
  await c.close();
}

test('PgQ: the advisory lock is keyed by queue and consumer, exclusive, freed when the holder ends or is terminated', async () => {
  const lock = await createLeaderLock(pgqConfig(db, { queue: 'jobs', consumerName: 'c1' }));
  assert.equal(lock.key, 'wal-listener:pgq:jobs:c1');
  await exclusive(lock, async () => {
    const pids = await db.sql<{ pid: number }>("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())");
    assert.equal(pids.rowCount, 1);
    await db.sql('SELECT pg_terminate_backend($1)', [pids.rows[0]!.pid]);
  });
});

test('MySQL: GET_LOCK keyed by mysql.serverId, exclusive, freed when the holder ends or its connection is killed', async () => {
  const config = mysqlSourceConfig({ databases: [] });
  const lock = await createLeaderLock(config);
  assert.equal(lock.key, `wal-listener:mysql:${config.mysql!.serverId}`);
  await exclusive(lock, async () => {
    const rows = await mysqlQuery<{ id: number }[]>('SELECT IS_USED_LOCK(?) AS id', [lock.key]);
    assert.ok(rows[0]?.id);
    await mysqlQuery(`KILL ${Number(rows[0]!.id)}`);
  });
});

test('elector: a leader whose lock backend is terminated is fenced at once; the standby leads only after the fencing wait', async () => {
  const config = configSchema.parse({ listener: { slotName: 'wl_ha_locks_slot' }, database: { host: db.host, port: db.port, name: db.name, user: db.user, password: db.password ?? '' }, publisher: { type: 'stdout', topic: 'wl' } });
  const lock = await createLeaderLock(config);
  assert.equal(lock.key, 'wal-listener:wl_ha_locks_slot');
  const elector = (log: ReturnType<typeof captureLogger>) => new LeaderElector({ lock, pollMs: 200, retryMaxMs: 1_000, log: log.logger, observer: {}, onUnavailable: () => {} });
  const [logA, logB] = [captureLogger('info'), captureLogger('info')];
  const [a, b] = [elector(logA), elector(logB)];
  const stop = new AbortController();
  const first = (await a.acquire(stop.signal))!;
  assert.equal(first.startAt, 0, 'the lock was free at the first try: no wait');
  let second: Leadership | null = null;
  const waiting = b.acquire(stop.signal).then((l) => (second = l));
  await waitFor('b is a standby', () => logB.records().some((r) => r.msg === 'standby: another daemon leads; waiting for the lock'));

  const pid = await db.sql<{ pid: number }>("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())");
  const terminatedAt = Date.now();
  await db.sql('SELECT pg_terminate_backend($1)', [pid.rows[0]!.pid]);
  await waitFor('a fenced', () => first.fenced.aborted, 5_000, 10);
  const fencedAfter = Date.now() - terminatedAt;
  assert.ok(logA.records().some((r) => r.msg === 'leader fenced'));
  await waiting;
  assert.ok(second !== null);
  const takeover = second as Leadership;
  assert.ok(takeover.startAt - terminatedAt >= FENCE_MS, `the new leader reads ${takeover.startAt - terminatedAt} ms after the lock freed, not before the fencing wait`);
  assert.ok(fencedAfter < takeover.startAt - terminatedAt, `fenced (${fencedAfter} ms) before the new leader may read`);
  await first.release(false);
  await takeover.release(true);
  assert.ok(logB.records().some((r) => r.msg === 'leader revoked'));
  stop.abort();
  await a.close();
  await b.close();
});
