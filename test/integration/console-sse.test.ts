/**
 * The live console's SSE feed (`/events`) through the real daemon (stdout publisher): loopback
 * without a token, a token on every interface (wrong or missing → 401), table and action filters,
 * the Last-Event-ID answer, console.maxClients, and 20 clients that never read: they are dropped,
 * and the pipeline and a reading client keep getting every change. (Throughput with and without
 * stuck clients is measured in bench/console-clients.ts, not asserted here.)
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { databaseSection, startDaemon, type DaemonProcess } from '../support/daemon.js';
import { httpGet, metricValue } from '../support/ops.js';
import { freePort, waitFor } from '../support/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import { drainToEnd, openSse, stuckClient, type SseClient } from '../support/sse.js';

const TOKEN = 's3cret-console-token';
const MAX_CLIENTS = 22;

let db: TestDatabase;
let local: DaemonProcess | undefined;
let open: DaemonProcess | undefined;
let localPort: number;
let openPort: number;
let metricsPort: number;
const clients: SseClient[] = [];

function lines(daemon: DaemonProcess): number {
  let count = 0;
  const out = daemon.stdout();
  for (let i = out.indexOf('\n'); i >= 0; i = out.indexOf('\n', i + 1)) count++;
  return count;
}

/** Closes the streams earlier tests left open (also after a failure) and waits until the daemon counts none. */
async function noClients(): Promise<void> {
  for (const c of clients.splice(0)) c.close();
  await waitFor('no console clients left', async () => metricValue((await httpGet(metricsPort, '/metrics')).body, 'console_clients', {}) === 0);
}

async function sse(port: number, path: string, headers: Record<string, string> = {}): Promise<SseClient> {
  const client = await openSse(port, path, headers);
  clients.push(client);
  return client;
}

before(async () => {
  db = await createTestDatabase('wl_cons');
  await db.sql('CREATE TABLE orders (id int PRIMARY KEY, status text, total numeric)');
  await db.sql('CREATE TABLE users (id int PRIMARY KEY, name text)');
  [localPort, openPort, metricsPort] = await Promise.all([freePort(), freePort(), freePort()]);
  const common = { database: databaseSection(db), publisher: { type: 'stdout', topic: 'cons' } };
  [local, open] = await Promise.all([
    startDaemon({ ...common, listener: { slotName: db.slotName() }, console: { addr: `127.0.0.1:${localPort}`, maxClients: MAX_CLIENTS }, monitoring: { promAddr: `127.0.0.1:${metricsPort}` } }),
    // Every interface: a token is required.
    startDaemon({ ...common, listener: { slotName: db.slotName() }, console: { addr: `:${openPort}` } }, { env: { WAL_CONSOLE_TOKEN: TOKEN } }),
  ]);
});

after(async () => {
  for (const c of clients) c.close();
  await Promise.all([local?.kill(), open?.kill()]);
  await db?.drop();
});

test('loopback without a token: /console and /events answer; the page is self-contained', async () => {
  const page = await httpGet(localPort, '/console');
  assert.equal(page.status, 200);
  assert.match(page.body, /^<!doctype html>/);
  assert.doesNotMatch(page.body, /<script[^>]+src=|<link[^>]+href=|https?:\/\/(?!www\.w3\.org\/2000\/svg)/, 'no external script, stylesheet or URL');
  const feed = await sse(localPort, '/events');
  assert.equal(feed.status, 200);
  assert.match(String(feed.headers['content-type']), /^text\/event-stream/);
  await db.sql("INSERT INTO orders VALUES (1, 'new', 9.5)");
  const [event] = await feed.waitForChanges(1);
  assert.equal(event!.table, 'orders');
  assert.equal(event!.action, 'INSERT');
  const frame = feed.events.find((e) => e.type === 'message')!;
  assert.equal(frame.id, event!.id, 'the SSE id is the event id');
  assert.equal(frame.key, '{"id":1}', 'the key field carries the message key');
  assert.deepEqual(event!.data, { id: 1, status: 'new', total: '9.5' });
  const published = local!.events().find((e) => e.id === event!.id);
  assert.deepEqual(published, event, 'the SSE data is the published event');
  feed.close();
});

test('token on every interface: missing or wrong gets 401; bearer header and ?token= are accepted', async () => {
  const missing = await sse(openPort, '/events');
  assert.equal(missing.status, 401);
  assert.match(String(missing.headers['www-authenticate']), /^Bearer/);
  const wrong = await sse(openPort, '/events', { authorization: 'Bearer nope' });
  assert.equal(wrong.status, 401);
  assert.equal((await httpGet(openPort, '/events?token=nope')).status, 401);
  assert.equal((await httpGet(openPort, '/console')).status, 401, 'the page needs the token too');
  assert.equal((await httpGet(openPort, `/console?token=${TOKEN}`)).status, 200);
  const byHeader = await sse(openPort, '/events', { authorization: `Bearer ${TOKEN}` });
  const byQuery = await sse(openPort, `/events?token=${TOKEN}`);
  assert.equal(byHeader.status, 200);
  assert.equal(byQuery.status, 200);
  await db.sql("INSERT INTO users VALUES (1, 'ann')");
  await byHeader.waitForChanges(1);
  await byQuery.waitForChanges(1);
  assert.ok(!open!.stderr().includes(TOKEN), 'the token is not logged');
  byHeader.close();
  byQuery.close();
});

test('filters: ?tables= (table or schema.table) and ?actions=; a bad action is a 400', async () => {
  const orders = await sse(localPort, '/events?tables=orders');
  const usersQualified = await sse(localPort, '/events?tables=public.users');
  const deletes = await sse(localPort, '/events?actions=delete');
  const updatesOfOrders = await sse(localPort, '/events?tables=orders,nothing&actions=UPDATE');
  const all = await sse(localPort, '/events');
  const bad = await sse(localPort, '/events?actions=upsert');
  assert.equal(bad.status, 400);
  assert.match(bad.body(), /unknown action "upsert"/);
  await db.sql("INSERT INTO users VALUES (2, 'bob'); UPDATE orders SET status = 'paid' WHERE id = 1; DELETE FROM users WHERE id = 2; INSERT INTO orders VALUES (2, 'new', 1)");
  await all.waitForChanges(4);
  await new Promise((r) => setTimeout(r, 300)); // the same batches went to every client
  const summary = (c: SseClient): string[] => c.changes().map((e) => `${String(e.table)} ${String(e.action)}`);
  assert.deepEqual(summary(all), ['users INSERT', 'orders UPDATE', 'users DELETE', 'orders INSERT']);
  assert.deepEqual(summary(orders), ['orders UPDATE', 'orders INSERT']);
  assert.deepEqual(summary(usersQualified), ['users INSERT', 'users DELETE']);
  assert.deepEqual(summary(deletes), ['users DELETE']);
  assert.deepEqual(summary(updatesOfOrders), ['orders UPDATE']);
  const update = all.changes()[1]!;
  assert.deepEqual(update.dataOld, {}, 'REPLICA IDENTITY DEFAULT: no old row, as published');
  for (const c of [orders, usersQualified, deletes, updatesOfOrders, all]) c.close();
});

test('Last-Event-ID is accepted and answered with a gap event: the feed is live, nothing is replayed', async () => {
  const first = await sse(localPort, '/events?tables=users');
  // Stays connected: it shows when the feed has passed the change made while `first` is away.
  const witness = await sse(localPort, '/events?tables=users');
  await db.sql("INSERT INTO users VALUES (3, 'cy')");
  const [seen] = await first.waitForChanges(1);
  first.close();
  await db.sql("INSERT INTO users VALUES (4, 'di')"); // while disconnected: not replayed
  await witness.waitForChanges(2); // streamed before the reconnect, not after it
  witness.close();
  const again = await sse(localPort, '/events?tables=users', { 'last-event-id': String(seen!.id) });
  assert.equal(again.status, 200);
  await waitFor('gap event', () => again.events.find((e) => e.type === 'gap'));
  const gap = JSON.parse(again.events.find((e) => e.type === 'gap')!.data) as Record<string, unknown>;
  assert.equal(gap.lastEventId, seen!.id);
  assert.equal(gap.replayed, false);
  await db.sql("INSERT INTO users VALUES (5, 'ed')");
  const [next] = await again.waitForChanges(1);
  assert.deepEqual(next!.data, { id: 5, name: 'ed' }, 'the first change after reconnecting is a new one, not id 4');
  again.close();
});

test('at most console.maxClients streams; one more gets 503, and a place frees when one leaves', async () => {
  await noClients();
  const held: SseClient[] = [];
  for (let i = 0; i < MAX_CLIENTS; i++) held.push(await sse(localPort, '/events'));
  assert.ok(held.every((c) => c.status === 200));
  const extra = await sse(localPort, '/events');
  assert.equal(extra.status, 503);
  assert.match(extra.body(), /too many console clients: 22 connected \(console\.maxClients\)/);
  const metrics = (await httpGet(metricsPort, '/metrics')).body;
  assert.equal(metricValue(metrics, 'console_clients', {}), MAX_CLIENTS);
  assert.ok(metricValue(metrics, 'console_clients_closed_total', { reason: 'full' })! >= 1);
  held[0]!.close();
  await held[0]!.closed;
  const replacement = await waitFor('a free place', async () => {
    const c = await sse(localPort, '/events');
    return c.status === 200 ? c : undefined;
  });
  for (const c of [...held, replacement]) c.close();
});

test('20 clients that never read are dropped; the pipeline and a reading client get every change', async () => {
  await noClients();
  const stuck: Socket[] = [];
  for (let i = 0; i < 20; i++) stuck.push(await stuckClient(localPort, '/events'));
  const reader = await sse(localPort, '/events?tables=orders');
  const before = lines(local!);
  // One transaction of 30,000 rows, ~10 MB of events in a burst: more than the stuck clients'
  // socket buffers, so all of them stall and are dropped; the reading client is not.
  const rows = 30_000;
  await db.sql(`INSERT INTO orders SELECT g, repeat('x', 200), g FROM generate_series(1000, ${1000 + rows - 1}) g`);
  await waitFor(`${rows} events published`, () => lines(local!) - before >= rows, 60_000);
  const got = await reader.waitForChanges(rows, 30_000).catch((err: Error) => {
    const drops = local!.logs().filter((r) => String(r.msg).startsWith('console client dropped'));
    throw new Error(`${err.message}; drops logged: ${JSON.stringify(drops.map((r) => [r.client, r.bufferedBytes]))}`);
  });
  assert.equal(new Set(got.map((e) => e.id)).size, got.length, 'no duplicates');
  const dropped = await waitFor('20 drops logged', () => {
    const logged = local!.logs().filter((r) => r.msg === 'console client dropped: it does not read its event stream fast enough');
    return logged.length >= 20 ? logged : undefined;
  });
  const stuckNames = stuck.map((s) => `127.0.0.1:${s.localPort}`).sort();
  assert.deepEqual(dropped.map((r) => String(r.client)).sort(), stuckNames, 'the stuck clients were dropped, and only they');
  assert.ok(dropped.every((r) => Number(r.bufferedBytes) > 0));
  const metrics = (await httpGet(metricsPort, '/metrics')).body;
  assert.equal(metricValue(metrics, 'console_clients_closed_total', { reason: 'slow' }), 20);
  assert.equal(metricValue(metrics, 'console_clients', {}), 1, 'the reader stays connected');
  // A dropped client's connection has ended: read what it was sent, to the end.
  const sent = await Promise.all(stuck.map((s) => drainToEnd(s)));
  assert.ok(sent.every((bytes) => bytes > 0 && bytes < rows * 200), `each stuck client got part of the stream, then its end: ${sent.join(', ')}`);
  reader.close();
});
