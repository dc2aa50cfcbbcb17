/**
 * Self-healing: the walsender is killed (pg_terminate_backend) twice, once while idle and once right
 * after a large transaction commits, while rows keep arriving. The daemon must reconnect by itself,
 * resume from the confirmed LSN and deliver every row to JetStream exactly once (redelivered changes
 * carry the same event id, so the stream's dedup drops them), without exiting.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { parseLsn } from '../../src/sources/postgres/pgoutput.js';
import { databaseSection, startDaemon, type DaemonProcess } from '../support/daemon.js';
import { freePort, waitFor } from '../support/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import { httpGet, metricValue } from '../support/ops.js';
import { readStream, startNats, streamCount, type NatsServer } from '../support/nats.js';

let db: TestDatabase;
let nats: NatsServer;
let nc: NatsConnection;
let daemon: DaemonProcess | undefined;

before(async () => {
  db = await createTestDatabase('wl_reconnect');
  await db.sql('CREATE TABLE items (id int PRIMARY KEY, note text)');
  nats = await startNats();
  nc = await nats.connect();
});

after(async () => {
  await daemon?.kill();
  await nc?.close();
  await nats?.stop();
  await db?.drop();
});

async function terminateWalsender(slot: string): Promise<number> {
  const pid = await waitFor(`walsender of ${slot}`, async () => {
    const r = await db.sql<{ pid: number | null }>('SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1', [slot]);
    return r.rows[0]?.pid ?? undefined;
  });
  const r = await db.sql<{ ok: boolean }>('SELECT pg_terminate_backend($1) AS ok', [pid]);
  assert.equal(r.rows[0]?.ok, true);
  return pid;
}

test('reconnects after pg_terminate_backend of the walsender and loses no change', async () => {
  const slot = db.slotName();
  const promPort = await freePort();
  daemon = await startDaemon({
    listener: { slotName: slot, refreshConnection: '2s' },
    database: databaseSection(db),
    publisher: { type: 'nats', address: nats.url, topic: 'rc' },
    monitoring: { promAddr: `127.0.0.1:${promPort}` },
  });

  // 1. Idle connection killed once the first rows are confirmed: streaming must resume from there.
  await db.sql('INSERT INTO items SELECT g, $1 FROM generate_series(1, 50) g', ['before']);
  await waitFor('first 50 rows in the stream', async () => (await streamCount(nc, 'rc')) >= 50);
  const commitLsn = parseLsn(String((await readStream(nc, 'rc'))[0]!.json.lsn));
  await waitFor('the daemon confirmed the first transaction', async () => parseLsn((await db.confirmedFlush(slot)) ?? '0/0') > commitLsn);
  const firstPid = await terminateWalsender(slot);
  for (let id = 51; id <= 100; id++) await db.sql('INSERT INTO items VALUES ($1, $2)', [id, 'while reconnecting']);
  await daemon.waitForLog('replication connection lost; reconnecting');
  const resumed = await waitFor('streaming again', () => daemon!.logs().filter((r) => r.msg === 'replication streaming')[1]);
  assert.ok(parseLsn(String(resumed.from)) > commitLsn, `resumed from the confirmed LSN ${String(resumed.from)}, past the first transaction`);

  // 2. Killed right after a large transaction commits: part of it may be published and not confirmed.
  const secondPid = await terminateWalsender(slot);
  assert.notEqual(secondPid, firstPid, 'a new walsender serves the reconnected daemon');
  await db.sql("INSERT INTO items SELECT g, repeat('x', 200) FROM generate_series(101, 3000) g");
  await terminateWalsender(slot).catch(() => {
    // Already gone: the daemon may be between connections; the rows must still all arrive.
  });
  for (let id = 3001; id <= 3020; id++) await db.sql('INSERT INTO items VALUES ($1, $2)', [id, 'after']);

  await waitFor('3020 rows in the stream', async () => (await streamCount(nc, 'rc')) >= 3020, 45_000, 250);
  // Give redeliveries a moment to show up if dedup were broken.
  await new Promise((r) => setTimeout(r, 1_500));
  const messages = await readStream(nc, 'rc');
  const ids = messages.map((m) => (m.json.data as { id: number }).id);
  const unique = new Set(ids);
  assert.equal(unique.size, 3020, 'every row arrived');
  assert.equal(messages.length, 3020, 'no duplicate was stored: redelivered changes carried the same event id');
  for (let id = 1; id <= 3020; id++) assert.ok(unique.has(id), `row ${id} missing`);
  for (const m of messages) assert.equal(m.msgId, m.json.id, 'Nats-Msg-Id is the event id');

  assert.equal(daemon.child.exitCode, null, 'the daemon kept running');
  const lost = daemon.logs().filter((r) => r.msg === 'replication connection lost; reconnecting');
  assert.ok(lost.length >= 2, `logged each lost connection (${lost.length})`);
  const streaming = daemon.logs().filter((r) => r.msg === 'replication streaming');
  assert.ok(streaming.length >= 3, `streamed again after each loss (${streaming.length})`);

  const metrics = await waitFor('lag back to 0', async () => {
    const text = (await httpGet(promPort, '/metrics')).body;
    return metricValue(text, 'replication_lag_bytes', {}) === 0 ? text : undefined;
  }, 15_000, 250);
  assert.ok(metricValue(metrics, 'reconnects_total', { target: 'postgres' })! >= 2);
  assert.equal(metricValue(metrics, 'published_events_total', { subject: 'rc.public_items', table: 'items' })! >= 3020, true);
  assert.equal(metricValue(metrics, 'in_flight_events', {}), 0);

  assert.equal(await daemon.stop(), 0);
  daemon = undefined;
});

/**
 * A stream that fails right after START_REPLICATION succeeds must still back off: the backoff is
 * reset only after a session streamed for a while. Here every walsender of the slot is terminated
 * as soon as it appears.
 */
test('a stream that keeps failing right after it starts is retried with growing delays', async () => {
  const slot = db.slotName('loop');
  const loopDaemon = await startDaemon({
    listener: { slotName: slot, refreshConnection: '4s' },
    database: databaseSection(db),
    publisher: { type: 'stdout', topic: 'loop' },
  });
  let terminating = true;
  const terminator = (async () => {
    while (terminating) {
      await db.sql('SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL', [slot]).catch(() => {});
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  try {
    await loopDaemon.waitForLog('replication connection lost; reconnecting');
    await new Promise((r) => setTimeout(r, 6_000));
    const lost = loopDaemon.logs().filter((r) => r.msg === 'replication connection lost; reconnecting').length;
    // With 500 ms doubling to the 4 s cap: 0.5 + 1 + 2 + 4 s → at most about 5 attempts in 6 s.
    assert.ok(lost <= 6, `${lost} reconnects in 6 s`);
    assert.equal(loopDaemon.child.exitCode, null);
  } finally {
    terminating = false;
    await terminator;
    await loopDaemon.stop();
  }
});
