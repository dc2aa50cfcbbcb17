/**
 * At-least-once under faults, with JetStream dedup making duplicates invisible:
 *  - kill -9 of the daemon in the middle of a 20,000-row transaction;
 *  - kill -9 in the middle of a COPY of 10,000 rows (rows of one multi-insert WAL record share an LSN);
 *  - nats-server killed and restarted mid-stream, while the slot's confirmed_flush_lsn must never
 *    pass a commit that is not in the stream; measured (issue 9): /ready 503 and an error-level
 *    log line after the loss, every change of the outage in the stream soon after the return.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { parseLsn } from '../../src/sources/postgres/pgoutput.js';
import type { NatsConnection } from '@nats-io/transport-node';
import { databaseSection, startDaemon, type DaemonProcess } from '../support/daemon.js';
import { readStream, startNats, streamCount, type NatsServer } from '../support/nats.js';
import { assertStopWhileDown, firstErrorLog, loggedOutageMs, publisherReconnects, ReadyWatcher, reportOutage, whenCount, writeDuringOutage } from '../support/outage.js';
import { freePort, waitFor } from '../support/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

let db: TestDatabase;
let nats: NatsServer;
let nc: NatsConnection;
const daemons: DaemonProcess[] = [];

before(async () => {
  db = await createTestDatabase('wl_faults');
  nats = await startNats();
  nc = await nats.connect();
});

after(async () => {
  for (const d of daemons) await d.kill();
  await nc?.close();
  await nats?.stop();
  await db?.drop();
});


async function currentLsn(): Promise<bigint> {
  return parseLsn((await db.sql<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l);
}

async function start(slot: string, topic: string, listener: Record<string, unknown> = {}, publisher: Record<string, unknown> = {}, monitoring: Record<string, unknown> = {}): Promise<DaemonProcess> {
  const d = await startDaemon({
    listener: { slotName: slot, publication: `p_${slot}`, ...listener }, // each filter its own publication
    database: databaseSection(db),
    publisher: { type: 'nats', address: nats.url, topic, ackTimeout: '2s', ...publisher },
    monitoring,
  });
  daemons.push(d);
  return d;
}

test('kill -9 in the middle of a 20,000-row transaction: every change in the stream, no duplicate', async () => {
  const topic = 'crash_events';
  const slot = db.slotName('crash');
  await db.sql('CREATE TABLE big (id int PRIMARY KEY, payload text)');
  // A small window slows publishing down enough to kill the daemon mid-transaction.
  const first = await start(slot, topic, { maxInFlight: 64, filter: { tables: { big: null } } });
  const before = await currentLsn();
  await db.sql("INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 20000) g");
  const atKill = await waitFor('part of the transaction in the stream', async () => {
    const n = await streamCount(nc, topic);
    return n >= 1000 ? n : undefined;
  }, 30_000, 5);
  await first.kill();
  assert.ok(atKill < 20_000, `killed mid-transaction (had ${atKill} of 20000)`);
  const confirmedAtKill = await db.confirmedFlush(slot);
  assert.ok(confirmedAtKill === null || parseLsn(confirmedAtKill) <= before, 'the unfinished transaction was not confirmed');

  await start(slot, topic, { filter: { tables: { big: null } } });
  await waitFor('all 20,000 changes', async () => (await streamCount(nc, topic)) >= 20_000, 60_000);
  const end = await currentLsn();
  await waitFor('slot confirmed past the transaction', async () => parseLsn((await db.confirmedFlush(slot)) ?? '0/0') >= end, 20_000);
  const stored = await readStream(nc, topic);
  assert.equal(stored.length, 20_000, 'no duplicate stored');
  const ids = new Set(stored.map((m) => m.json.id));
  assert.equal(ids.size, 20_000);
  const rows = stored.map((m) => (m.json.data as { id: number }).id).sort((a, b) => a - b);
  assert.deepEqual(rows, Array.from({ length: 20_000 }, (_, i) => i + 1));
  assert.equal(new Set(stored.map((m) => m.json.lsn)).size, 1, 'one transaction');
  for (const d of daemons.splice(0)) assert.equal(d === first ? 0 : await d.stop(), 0);
});

test('kill -9 in the middle of a COPY of 10,000 rows: every row once, each with its own id', async () => {
  const topic = 'copy_events';
  const slot = db.slotName('copy');
  await db.sql('CREATE TABLE copied (id int PRIMARY KEY, label text)');
  const first = await start(slot, topic, { maxInFlight: 32, filter: { tables: { copied: null } } });
  await db.sql("COPY copied FROM PROGRAM 'seq 1 10000 | sed s/$/,row/' WITH (FORMAT csv)");
  const atKill = await waitFor('part of the COPY in the stream', async () => {
    const n = await streamCount(nc, topic);
    return n >= 500 ? n : undefined;
  }, 30_000, 5);
  await first.kill();
  assert.ok(atKill < 10_000, `killed mid-COPY (had ${atKill} of 10000)`);

  const second = await start(slot, topic, { filter: { tables: { copied: null } } });
  await waitFor('all 10,000 rows', async () => (await streamCount(nc, topic)) >= 10_000, 60_000);
  await new Promise((r) => setTimeout(r, 300));
  const stored = await readStream(nc, topic);
  assert.equal(stored.length, 10_000, 'no duplicate stored');
  assert.equal(new Set(stored.map((m) => m.json.id)).size, 10_000, 'every row has its own id');
  const rows = stored.map((m) => (m.json.data as { id: number }).id).sort((a, b) => a - b);
  assert.deepEqual(rows, Array.from({ length: 10_000 }, (_, i) => i + 1));
  assert.ok(stored.every((m) => (m.json.data as { label: string }).label === 'row'));
  assert.equal(await second.stop(), 0);
  daemons.splice(0);
});

test('nats-server killed and restarted mid-stream: /ready 503, an error log, caught up soon after its return; nothing lost, nothing confirmed early, no duplicate', async () => {
  const topic = 'outage_events';
  const slot = db.slotName('outage');
  await db.sql('CREATE TABLE ledger (id int PRIMARY KEY, n int)');
  const serverPort = await freePort();
  const promPort = await freePort();
  const daemon = await start(slot, topic, { filter: { tables: { ledger: null } }, serverPort }, {}, { promAddr: `127.0.0.1:${promPort}` });
  const ready = new ReadyWatcher(serverPort);
  try {
    for (let i = 1; i <= 100; i++) await db.sql('INSERT INTO ledger VALUES ($1, $1)', [i]);
    await waitFor('first 100 in the stream', async () => (await streamCount(nc, topic)) >= 100, 30_000);
    await ready.waitFor(200, Date.now(), 10_000);
    const reconnectsBefore = await publisherReconnects(promPort);

    const lost = Date.now();
    await nats.kill();
    // The bound is read inside the outage's first transaction, before its commit (see writeDuringOutage).
    const beforeOutage = await writeDuringOutage(db, 'INSERT INTO ledger VALUES (101, 101)');
    for (let i = 102; i <= 300; i++) await db.sql('INSERT INTO ledger VALUES ($1, $1)', [i]);
    // While the broker is down, several heartbeats (1s) pass: the confirmed LSN must stay behind
    // every commit made during the outage.
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 500));
      const confirmed = await db.confirmedFlush(slot);
      assert.ok(confirmed !== null && parseLsn(confirmed) <= beforeOutage, `confirmed ${confirmed} passed an unpublished commit (outage began at ${beforeOutage})`);
    }
    assert.equal(daemon.child.exitCode, null, 'the daemon keeps running while NATS is down');
    const ready503 = await ready.waitFor(503, lost, 10_000);
    const errorLog = (await waitFor('an error-level log line', () => firstErrorLog(daemon, lost), 10_000)).at;

    await nats.restart();
    const back = Date.now();
    await nc.close();
    nc = await nats.connect();
    const caughtUp = await whenCount('the changes committed during the outage', () => streamCount(nc, topic), 300, 15_000).catch((err: Error) => {
      throw new Error(`${err.message}\n--- daemon log ---\n${daemon.stderr().slice(-4000)}`);
    });
    for (let i = 301; i <= 400; i++) await db.sql('INSERT INTO ledger VALUES ($1, $1)', [i]);
    await waitFor('all 400 in the stream', async () => (await streamCount(nc, topic)) >= 400, 30_000);
    const end = await currentLsn();
    await waitFor('slot confirmed to the end', async () => parseLsn((await db.confirmedFlush(slot)) ?? '0/0') >= end, 30_000);
    await ready.waitFor(200, caughtUp, 10_000);
    const reconnectsAfter = await publisherReconnects(promPort);
    const outageMs = loggedOutageMs(daemon, lost);
    const figures = reportOutage({ broker: 'nats', fault: 'server killed and restarted', lost, ready503, errorLog, back, caughtUp, outageMs, changes: 200, reconnectsBefore, reconnectsAfter });
    assert.ok(figures.readySeconds !== null && figures.readySeconds <= 10, `/ready 503 within 10 s of the loss (${figures.readySeconds} s)`);
    assert.ok(figures.errorLogSeconds !== null && figures.errorLogSeconds <= 10, `an error log within 10 s of the loss (${figures.errorLogSeconds} s)`);
    assert.ok(figures.catchUpSeconds <= 15, `caught up within 15 s of the return (${figures.catchUpSeconds} s)`);
    assert.ok(reconnectsAfter > reconnectsBefore, `reconnects_total{target="publisher"} moved (${reconnectsBefore} → ${reconnectsAfter})`);

    const stored = await readStream(nc, topic);
    assert.equal(stored.length, 400, 'no duplicate stored');
    const rows = stored.map((m) => (m.json.data as { id: number }).id);
    assert.deepEqual([...rows].sort((a, b) => a - b), Array.from({ length: 400 }, (_, i) => i + 1));
    assert.equal(await daemon.stop(), 0);
  } finally {
    await ready.stop();
  }
});

test('nats-server stops answering between two updates of row 1: the stream holds the row\'s changes in commit order, once each', async () => {
  const topic = 'ordered_events';
  const slot = db.slotName('ordered');
  await db.sql('CREATE TABLE ordered (id int PRIMARY KEY, n int NOT NULL)');
  const daemon = await start(slot, topic, { filter: { tables: { ordered: null } } }, { ackTimeout: '1s' });
  await db.sql('INSERT INTO ordered VALUES (1, 0), (2, 0)');
  await waitFor('the inserts in the stream', async () => (await streamCount(nc, topic)) >= 2, 30_000);
  nats.freeze(); // SIGSTOP: connections stay open, nothing is answered
  try {
    await db.sql('UPDATE ordered SET n = 1 WHERE id = 1');
    // The update's publish passes its 1 s deadline: its fate is unknown (the server may store it later).
    await daemon.waitForLog('publish failed; holding newer messages and re-sending in order', 10_000);
    await db.sql('UPDATE ordered SET n = 2 WHERE id = 1');
    await db.sql('UPDATE ordered SET n = 2 WHERE id = 2');
    await new Promise((r) => setTimeout(r, 1_500));
  } finally {
    nats.thaw();
  }
  await db.sql('UPDATE ordered SET n = 3 WHERE id = 1');
  await waitFor('every change in the stream', async () => (await streamCount(nc, topic)) >= 6, 30_000);
  await new Promise((r) => setTimeout(r, 1_000)); // late copies of re-sent messages would show now
  const stored = await readStream(nc, topic);
  assert.equal(stored.length, 6, 'no duplicate stored');
  const values = (id: number) => stored.filter((m) => (m.json.data as { id: number }).id === id).map((m) => (m.json.data as { n: number }).n);
  assert.deepEqual(values(1), [0, 1, 2, 3], 'row 1 in commit order');
  assert.deepEqual(values(2), [0, 2], 'row 2 in commit order');
  assert.equal(await daemon.stop(), 0);
});

test('SIGTERM while nats-server is down: exit 0 within listener.shutdownTimeout, having confirmed only what was acknowledged', async () => {
  const topic = 'shutdown_events';
  const slot = db.slotName('shutdown');
  await db.sql('CREATE TABLE parted (id int PRIMARY KEY)');
  const listener = { filter: { tables: { parted: null } }, shutdownTimeout: '4s' };
  const promPort = await freePort();
  const daemon = await start(slot, topic, listener, {}, { promAddr: `127.0.0.1:${promPort}` });
  await db.sql('INSERT INTO parted SELECT generate_series(1, 10)');
  const acknowledged = await currentLsn();
  await waitFor('the first changes in the stream', async () => (await streamCount(nc, topic)) >= 10, 30_000);
  await waitFor('the first changes confirmed', async () => parseLsn((await db.confirmedFlush(slot)) ?? '0/0') >= acknowledged, 15_000);
  await nats.kill();
  const beforeOutage = await writeDuringOutage(db, 'INSERT INTO parted SELECT generate_series(11, 20)');
  await daemon.waitForLog('publish failed; holding newer messages and re-sending in order', 10_000);

  await assertStopWhileDown(daemon, { broker: 'nats', promPort, shutdownMs: 4_000, confirmed: async () => parseLsn((await db.confirmedFlush(slot)) ?? '0/0'), acknowledged, beforeOutage });

  // Nothing lost: the next run delivers what the first could not, once.
  await nats.restart();
  await nc.close();
  nc = await nats.connect();
  const again = await start(slot, topic, listener);
  await waitFor('the changes of the outage after a restart', async () => (await streamCount(nc, topic)) >= 20, 30_000);
  const stored = await readStream(nc, topic);
  assert.deepEqual(stored.map((m) => (m.json.data as { id: number }).id), Array.from({ length: 20 }, (_, i) => i + 1));
  assert.equal(await again.stop(), 0);
});
