/**
 * RabbitMQ faults through the real daemon (issue 9, "broker loss, measured"; "ordering across
 * failures"; "shutdown"):
 *  - the broker closes the daemon's connection (rabbitmqctl close_connection, on the shared broker,
 *    only our connection);
 *  - a private RabbitMQ node (never the shared one) stopped and started again, and blocking
 *    publishers (memory alarm);
 *  - a broker that stops answering between two updates of the same row (a TCP proxy that freezes);
 *  - SIGTERM while the broker is down.
 * Measured: /ready 503 after the loss (polled every 100 ms), the first error-level log line, every
 * change committed during the outage in the queue after the broker's return, and
 * reconnects_total{target="publisher"}. Nothing may be lost; each row's changes arrive in commit order.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { ConsumeMessage } from 'amqplib';
import { parseLsn } from '../../src/sources/postgres/pgoutput.js';
import { databaseSection, startDaemon, type DaemonProcess } from '../support/daemon.js';
import { assertStopWhileDown, firstErrorLog, loggedOutageMs, publisherReconnects, ReadyWatcher, reportOutage, whenCount, writeDuringOutage } from '../support/outage.js';
import { freePort, waitFor } from '../support/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import {
  cleanup,
  closeConnectionsNamed,
  declareBoundQueue,
  QueueReader,
  RABBIT_URL,
  rabbitConnect,
  startRabbitNode,
  startRabbitProxy,
  uniqueName,
  type RabbitNode,
} from '../support/rabbitmq.js';

let db: TestDatabase;
let node: RabbitNode;
const daemons: DaemonProcess[] = [];
const sharedNames = { queues: [] as string[], exchanges: [] as string[] };

before(async () => {
  [db, node] = await Promise.all([createTestDatabase('wl_rmqfault'), startRabbitNode()]);
});

after(async () => {
  for (const d of daemons) await d.kill();
  await node?.destroy();
  await cleanup(sharedNames);
  await db?.drop();
});

interface Setup {
  daemon: DaemonProcess;
  exchange: string;
  queue: string;
  slot: string;
  serverPort: number;
  promPort: number;
}

/** A table, an exchange with a durable queue bound to it (on `url`), and a daemon publishing there. */
async function setUp(table: string, url: string, publisher: Record<string, unknown> = {}, listener: Record<string, unknown> = {}): Promise<Setup> {
  await db.sql(`CREATE TABLE ${table} (id int PRIMARY KEY, n int NOT NULL)`);
  const exchange = uniqueName('wl_rmqf');
  const queue = uniqueName('wl_rmqf_q');
  if (url === RABBIT_URL) {
    sharedNames.exchanges.push(exchange);
    sharedNames.queues.push(queue);
  }
  // Bound before the daemon starts: RabbitMQ drops (and confirms) messages no queue is bound for.
  await declareBoundQueue(exchange, queue, '#', 'topic', url);
  const slot = db.slotName(table);
  const serverPort = await freePort();
  const promPort = await freePort();
  const daemon = await startDaemon({
    listener: { slotName: slot, publication: `p_${slot}`, serverPort, filter: { tables: { [table]: null } }, ...listener }, // each filter its own publication
    database: databaseSection(db),
    publisher: { type: 'rabbitmq', address: url, topic: exchange, ackTimeout: '5s', ...publisher },
    monitoring: { promAddr: `127.0.0.1:${promPort}` },
  });
  daemons.push(daemon);
  return { daemon, exchange, queue, slot, serverPort, promPort };
}

interface RowEvent {
  id: string;
  action: string;
  lsn: string;
  data: { id: number; n: number };
}

/** First appearance of each change, per row: the row's `n` values in arrival order; every message checked. */
function rowsInArrivalOrder(messages: readonly ConsumeMessage[], table: string): Map<number, number[]> {
  const seen = new Set<string>();
  const rows = new Map<number, number[]>();
  const lsns = new Map<number, string>();
  for (const msg of messages) {
    const event = JSON.parse(msg.content.toString('utf8')) as RowEvent & { table: string };
    assert.equal(msg.properties.messageId, event.id, 'messageId is the event id');
    assert.equal(msg.properties.deliveryMode, 2, 'persistent');
    assert.equal(event.table, table);
    if (seen.has(event.id)) continue;
    seen.add(event.id);
    const id = event.data.id;
    const previous = lsns.get(id);
    assert.ok(previous === undefined || parseLsn(event.lsn) > parseLsn(previous), `row ${id}: commit LSNs increase (${previous} then ${event.lsn})`);
    lsns.set(id, event.lsn);
    rows.set(id, [...(rows.get(id) ?? []), event.data.n]);
  }
  return rows;
}

async function currentLsn(): Promise<bigint> {
  return parseLsn((await db.sql<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l);
}

/** 100 rows delivered and /ready 200 before the fault; returns reconnects_total{target="publisher"} then. */
async function warmUp(table: string, reader: QueueReader, ready: ReadyWatcher, promPort: number): Promise<number> {
  await db.sql(`INSERT INTO ${table} SELECT g, 0 FROM generate_series(1, 100) g`);
  await whenCount('the first 100 changes', async () => reader.ids.size, 100, 30_000);
  await ready.waitFor(200, Date.now(), 10_000);
  return publisherReconnects(promPort);
}

/** Commits single-row inserts `from`.. one after another until `stop()`; resolves with the last id. */
function insertContinuously(table: string, from: number): { stop(): Promise<number> } {
  let running = true;
  let next = from;
  const loop = (async () => {
    const client = await db.client();
    try {
      while (running) {
        await client.query(`INSERT INTO ${table} VALUES ($1, 0)`, [next]);
        next++;
        await delay(10);
      }
    } finally {
      await client.end();
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return next - 1;
    },
  };
}

describe('RabbitMQ faults through the daemon', () => {
  test('the broker closes the daemon\'s connection: reconnected at once, every change arrives, each row in commit order', async () => {
    const table = 'closed_conn';
    const { daemon, exchange, queue, serverPort, promPort } = await setUp(table, RABBIT_URL);
    const reader = new QueueReader(queue);
    const ready = new ReadyWatcher(serverPort);
    try {
      const reconnectsBefore = await warmUp(table, reader, ready, promPort);

      // Changes are committed all through the close. Only the daemon's connection is closed: the
      // broker is shared. The close happens at the end of the command (the CLI takes a second or
      // two to start), so the loss is timed at its return; the broker itself never goes away.
      const inserter = insertContinuously(table, 101);
      await delay(500);
      const closing = Date.now();
      assert.equal(await closeConnectionsNamed(`wal-listener:${exchange}`, 'test'), 1, "the daemon's connection was closed");
      const lost = Date.now();
      const last = await inserter.stop();
      const back = lost;
      const caughtUp = await whenCount('every change', async () => reader.ids.size, last, 15_000);
      await ready.waitFor(200, caughtUp, 10_000);
      const reconnectsAfter = await waitFor('publisher reconnect counted', async () => {
        const n = await publisherReconnects(promPort);
        return n > reconnectsBefore ? n : undefined;
      }, 10_000);
      const outageMs = loggedOutageMs(daemon, closing);
      const figures = reportOutage({
        broker: 'rabbitmq',
        fault: 'connection closed by the server',
        lost,
        ready503: ready.first(503, closing),
        errorLog: firstErrorLog(daemon, closing)?.at,
        back,
        caughtUp,
        outageMs,
        changes: last - 100,
        reconnectsBefore,
        reconnectsAfter,
      });
      assert.ok(daemon.logs().some((r) => r.msg === 'RabbitMQ connection lost' && /CONNECTION_FORCED/.test(String(r.err))), 'the daemon saw the close');
      assert.ok(outageMs !== null, 'publishing went down and recovered');
      // The daemon reconnects at once: an outage shorter than a poll may not show on /ready, and
      // one shorter than 3 s logs a warning only (the error comes when an outage lasts).
      if (figures.readySeconds === null) assert.ok(outageMs < 1_000, `no 503 seen, so the outage was shorter than a poll (${outageMs} ms)`);
      else assert.ok(figures.readySeconds <= 10);
      if (figures.errorLogSeconds === null) assert.ok(outageMs < 3_000, `no error log, so the outage was short (${outageMs} ms)`);
      else assert.ok(figures.errorLogSeconds <= 10);
      assert.ok(figures.catchUpSeconds <= 15, `caught up within 15 s (${figures.catchUpSeconds} s)`);

      const rows = rowsInArrivalOrder(reader.messages, table);
      assert.equal(rows.size, last, 'every row arrived');
      assert.equal(await daemon.stop(), 0);
    } finally {
      await ready.stop();
      await reader.stop();
    }
  });

  test('a private RabbitMQ node stopped and started again: /ready 503, an error log, caught up soon after its return', async () => {
    const table = 'restarted';
    const { daemon, queue, slot, serverPort, promPort } = await setUp(table, node.url);
    const reader = new QueueReader(queue, node.url);
    const ready = new ReadyWatcher(serverPort);
    try {
      const reconnectsBefore = await warmUp(table, reader, ready, promPort);

      // The loss: when the node closes its client connections (a connection of our own shows it).
      const probe = await rabbitConnect(node.url);
      const probeClosed = new Promise<number>((resolve) => probe.model.once('close', () => resolve(Date.now())));
      const stopping = node.stop();
      const lost = await probeClosed;
      await stopping;
      // The bound is read inside the outage's first transaction, before its commit (see writeDuringOutage).
      const beforeOutage = await writeDuringOutage(db, `INSERT INTO ${table} VALUES (101, 0)`);
      const client = await db.client();
      for (let id = 102; id <= 300; id++) await client.query(`INSERT INTO ${table} VALUES ($1, 0)`, [id]);
      await client.end();
      const confirmed = await db.confirmedFlush(slot);
      assert.ok(confirmed !== null && parseLsn(confirmed) <= beforeOutage, `nothing of the outage confirmed (${confirmed})`);
      const ready503 = await ready.waitFor(503, lost, 10_000);
      const errorLog = (await waitFor('an error-level log line', () => firstErrorLog(daemon, lost), 10_000)).at;

      await node.start();
      const back = Date.now();
      const caughtUp = await whenCount('the changes committed during the outage', async () => reader.ids.size, 300, 15_000).catch((err: Error) => {
        throw new Error(`${err.message} (have ${reader.ids.size})\n--- daemon log ---\n${daemon.stderr().slice(-4000)}`);
      });
      await ready.waitFor(200, caughtUp, 10_000);
      const reconnectsAfter = await publisherReconnects(promPort);
      const figures = reportOutage({ broker: 'rabbitmq', fault: 'server stopped and started', lost, ready503, errorLog, back, caughtUp, outageMs: loggedOutageMs(daemon, lost), changes: 200, reconnectsBefore, reconnectsAfter });
      assert.ok(figures.readySeconds !== null && figures.readySeconds <= 10, `/ready 503 within 10 s of the loss (${figures.readySeconds} s)`);
      assert.ok(figures.errorLogSeconds !== null && figures.errorLogSeconds <= 10, `an error log within 10 s of the loss (${figures.errorLogSeconds} s)`);
      assert.ok(figures.catchUpSeconds <= 15, `caught up within 15 s of the return (${figures.catchUpSeconds} s)`);
      assert.ok(reconnectsAfter > reconnectsBefore, `reconnects_total{target="publisher"} moved (${reconnectsBefore} → ${reconnectsAfter})`);

      const rows = rowsInArrivalOrder(reader.messages, table);
      assert.equal(rows.size, 300, 'every row arrived');
      assert.equal(await daemon.stop(), 0);
    } finally {
      await ready.stop();
      await reader.stop();
    }
  });

  test('the private node blocks publishing (memory alarm): /ready 503 and an error log while blocked, everything arrives once unblocked', async () => {
    const table = 'blocked';
    const { daemon, queue, serverPort, promPort } = await setUp(table, node.url);
    const reader = new QueueReader(queue, node.url);
    const ready = new ReadyWatcher(serverPort);
    try {
      await warmUp(table, reader, ready, promPort);
      // A watermark of 0 sets the memory alarm off at once: RabbitMQ blocks publishing connections.
      const blocked = Date.now();
      await node.ctl('set_vm_memory_high_watermark', '0');
      try {
        // RabbitMQ blocks (and says so) when the connection next publishes.
        await db.sql(`INSERT INTO ${table} SELECT g, 0 FROM generate_series(101, 150) g`);
        await daemon.waitForLog('RabbitMQ blocked publishing (memory or disk alarm); waiting', 10_000);
        await ready.waitFor(503, blocked, 10_000);
        await waitFor('an error-level log line', () => firstErrorLog(daemon, blocked), 10_000);
        assert.ok(reader.ids.size < 150, 'nothing published while blocked');
      } finally {
        await node.ctl('set_vm_memory_high_watermark', '0.4');
      }
      await whenCount('the changes made while blocked', async () => reader.ids.size, 150, 15_000);
      await ready.waitFor(200, Date.now(), 10_000);
      assert.equal(rowsInArrivalOrder(reader.messages, table).size, 150);
      assert.equal(await daemon.stop(), 0);
    } finally {
      await ready.stop();
      await reader.stop();
    }
  });

  test('a broker that stops answering between two updates of row 1: the row\'s changes arrive in commit order', async (t) => {
    // The daemon talks to the shared broker through a TCP proxy that can freeze (a hung broker or a
    // black hole, for this one client only); the queue is read directly.
    const proxy = await startRabbitProxy();
    t.after(() => proxy.stop());
    const table = 'ordered';
    const { daemon, queue } = await setUp(table, proxy.url, { ackTimeout: '1s' });
    const reader = new QueueReader(queue);
    try {
      await db.sql(`INSERT INTO ${table} VALUES (1, 0), (2, 0)`);
      await whenCount('the inserts', async () => reader.ids.size, 2, 30_000);
      proxy.freeze();
      await db.sql(`UPDATE ${table} SET n = 1 WHERE id = 1`);
      // The update's publish passes its 1 s deadline: its fate is unknown (it sits in the frozen connection).
      await daemon.waitForLog('publish failed; holding newer messages and re-sending in order', 10_000);
      await db.sql(`UPDATE ${table} SET n = 2 WHERE id = 1`);
      await db.sql(`UPDATE ${table} SET n = 2 WHERE id = 2`);
      await delay(1_500);
      proxy.thaw();
      await db.sql(`UPDATE ${table} SET n = 3 WHERE id = 1`);
      await whenCount('every change', async () => reader.ids.size, 6, 30_000);
      await delay(1_000); // late copies of re-sent messages would show now
      const rows = rowsInArrivalOrder(reader.messages, table);
      assert.deepEqual(rows.get(1), [0, 1, 2, 3], 'row 1 in commit order');
      assert.deepEqual(rows.get(2), [0, 2], 'row 2 in commit order');
      assert.equal(await daemon.stop(), 0);
    } finally {
      await reader.stop();
    }
  });

  test('SIGTERM while the broker is down: exit 0 within listener.shutdownTimeout, having confirmed only what was acknowledged', async () => {
    const table = 'shutdown';
    const { daemon, exchange, queue, slot, promPort } = await setUp(table, node.url, {}, { shutdownTimeout: '4s' });
    const reader = new QueueReader(queue, node.url);
    try {
      await db.sql(`INSERT INTO ${table} SELECT g, 0 FROM generate_series(1, 10) g`);
      const acknowledged = await currentLsn();
      await whenCount('the first changes', async () => reader.ids.size, 10, 30_000);
      await waitFor('the first changes confirmed', async () => parseLsn((await db.confirmedFlush(slot)) ?? '0/0') >= acknowledged, 15_000);
      await node.stop();
      const beforeOutage = await writeDuringOutage(db, `INSERT INTO ${table} SELECT g, 0 FROM generate_series(11, 20) g`);
      await daemon.waitForLog('publish failed; holding newer messages and re-sending in order', 10_000);

      await assertStopWhileDown(daemon, { broker: 'rabbitmq', promPort, shutdownMs: 4_000, confirmed: async () => parseLsn((await db.confirmedFlush(slot)) ?? '0/0'), acknowledged, beforeOutage });

      // Nothing lost: the next run delivers what the first could not.
      await node.start();
      const again = await startDaemon({
        listener: { slotName: slot, publication: `p_${slot}`, filter: { tables: { [table]: null } } },
        database: databaseSection(db),
        publisher: { type: 'rabbitmq', address: node.url, topic: exchange },
      });
      daemons.push(again);
      await whenCount('the changes of the outage after a restart', async () => reader.ids.size, 20, 30_000);
      assert.equal(await again.stop(), 0);
    } finally {
      await reader.stop();
    }
  });
});
