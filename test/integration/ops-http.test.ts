/**
 * The daemon's HTTP side as operators check it: /metrics passes `promtool check metrics` (the lint
 * Prometheus users run in CI), and listener.serverPort "host:port" binds that interface only.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { after, before, test } from 'node:test';
import { databaseSection, startDaemon, type DaemonProcess } from '../support/daemon.js';
import { httpGet } from '../support/ops.js';
import { freePort, waitFor } from '../support/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

let db: TestDatabase;
let daemon: DaemonProcess | undefined;
let port: number;

before(async () => {
  db = await createTestDatabase('wl_http');
  await db.sql('CREATE TABLE items (id int PRIMARY KEY)');
  port = await freePort();
  daemon = await startDaemon({
    listener: { slotName: db.slotName(), serverPort: `127.0.0.1:${port}` },
    database: databaseSection(db),
    publisher: { type: 'stdout', topic: 'http' },
    monitoring: { promAddr: `127.0.0.1:${port}` },
  });
  // Some traffic, so the labelled series exist too.
  await db.sql('INSERT INTO items SELECT generate_series(1, 5)');
  await waitFor('5 events', () => daemon!.events().length >= 5);
});

after(async () => {
  await daemon?.kill();
  await db?.drop();
});

test('/metrics passes promtool check metrics', async () => {
  const body = await waitFor('published_events_total counted', async () => {
    const text = (await httpGet(port, '/metrics')).body;
    return text.includes('published_events_total{subject="http.public_items"') ? text : undefined;
  });
  const lint = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' });
  assert.equal(lint.error, undefined, 'promtool runs (Debian package prometheus)');
  assert.equal(lint.status, 0, `promtool check metrics:\n${lint.stdout}${lint.stderr}`);
  assert.match(body, /^nodejs_active_handles\{/m, 'the per-type process gauges stay');
});

test('serverPort "127.0.0.1:<port>" serves probes and metrics on loopback only', async () => {
  assert.equal((await httpGet(port, '/healthz')).status, 200);
  assert.equal((await httpGet(port, '/metrics')).status, 200);
  // 127.0.0.2 is this machine too: a server bound to every interface would answer there.
  const refused = await new Promise<string>((resolve) => {
    const socket = connect({ host: '127.0.0.2', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
  assert.equal(refused, 'ECONNREFUSED');
  const serving = daemon!.logs().find((r) => r.msg === 'serving probes and metrics over HTTP');
  assert.equal(serving?.host, '127.0.0.1');
  assert.equal(await daemon!.stop(), 0);
  daemon = undefined;
});
