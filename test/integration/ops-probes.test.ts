/**
 * /healthz and /ready through the real daemon in each state: streaming, broker down, PostgreSQL down
 * (an embedded PostgreSQL 18 that the test stops and starts; the machine's server is shared), and
 * PostgreSQL never reachable. Changes made while something is down still arrive once it is back.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { startEmbeddedPostgres, type EmbeddedServer } from '../../scripts/embedded-postgres.js';
import { startDaemon, type DaemonProcess } from '../support/daemon.js';
import { freePort, waitFor } from '../support/ports.js';
import { httpGet, type HttpResult } from '../support/ops.js';
import { readStream, startNats, streamCount, type NatsServer } from '../support/nats.js';

let pgServer: EmbeddedServer;
let nats: NatsServer;
let nc: NatsConnection;
const daemons: DaemonProcess[] = [];

before(async () => {
  [pgServer, nats] = await Promise.all([startEmbeddedPostgres(), startNats()]);
  nc = await nats.connect();
  await pgServer.createDatabase('probes');
  const c = await pgServer.client('probes');
  await c.query('CREATE TABLE items (id int PRIMARY KEY)');
  await c.end();
});

after(async () => {
  for (const d of daemons) await d.kill();
  await nc?.close();
  await nats?.stop();
  await pgServer?.destroy();
});

async function insert(from: number, to: number): Promise<void> {
  const c = await pgServer.client('probes');
  try {
    await c.query('INSERT INTO items SELECT generate_series($1::int, $2::int)', [from, to]);
  } finally {
    await c.end();
  }
}

async function probes(port: number): Promise<{ healthz: HttpResult; ready: HttpResult }> {
  const [healthz, ready] = await Promise.all([httpGet(port, '/healthz'), httpGet(port, '/ready')]);
  return { healthz, ready };
}

function waitForReady(port: number, status: number, body: RegExp, timeoutMs = 20_000): Promise<HttpResult> {
  return waitFor(`/ready ${status} ${body}`, async () => {
    const ready = await httpGet(port, '/ready');
    return ready.status === status && body.test(ready.body) ? ready : undefined;
  }, timeoutMs, 100);
}

test('probes while streaming, with the broker down, and with PostgreSQL down; nothing lost', async () => {
  const port = await freePort();
  const daemon = await startDaemon({
    listener: { slotName: 'probes_slot', serverPort: port, refreshConnection: '2s' },
    database: { host: pgServer.host, port: pgServer.port, name: 'probes', user: pgServer.user, password: pgServer.password },
    publisher: { type: 'nats', address: nats.url, topic: 'probes', ackTimeout: '2s' },
  });
  daemons.push(daemon);

  let state = await probes(port);
  assert.deepEqual([state.healthz.status, state.ready.status], [200, 200]);
  assert.equal(state.ready.body, 'ready: streaming, publisher nats connected\n');
  assert.equal(state.healthz.body, 'ok: streaming\n');
  await insert(1, 10);
  await waitFor('10 rows', async () => (await streamCount(nc, 'probes')) >= 10);

  // Broker down: alive, not ready; changes wait.
  await nats.kill();
  await waitForReady(port, 503, /^not ready: publisher nats is not connected/);
  assert.equal((await httpGet(port, '/healthz')).status, 200);
  await insert(11, 20);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal((await httpGet(port, '/ready')).status, 503);
  await nats.restart();
  await waitForReady(port, 200, /^ready/);
  await waitFor('20 rows after the broker came back', async () => (await streamCount(nc, 'probes')) >= 20, 20_000, 200);

  // PostgreSQL down: alive (reconnecting), not ready.
  await pgServer.stop();
  state = await waitFor('reconnecting', async () => {
    const s = await probes(port);
    return s.ready.status === 503 ? s : undefined;
  });
  assert.match(state.ready.body, /^not ready: PostgreSQL replication connection lost or not available; reconnecting/);
  assert.equal(state.healthz.status, 200);
  assert.match(state.healthz.body, /^ok: (reconnecting|streaming)/);
  await daemon.waitForLog('PostgreSQL not available; retrying');
  assert.equal((await httpGet(port, '/healthz')).body, 'ok: reconnecting\n');
  await pgServer.start();
  await waitForReady(port, 200, /^ready/);
  await insert(21, 30);
  await waitFor('30 rows after PostgreSQL came back', async () => (await streamCount(nc, 'probes')) >= 30, 20_000, 200);

  const ids = (await readStream(nc, 'probes')).map((m) => (m.json.data as { id: number }).id).sort((a, b) => a - b);
  assert.deepEqual(ids, Array.from({ length: 30 }, (_, i) => i + 1));
  assert.equal(daemon.child.exitCode, null);
  assert.equal(await daemon.stop(), 0);
});

test('PostgreSQL never reachable: alive, not ready, retries with capped backoff (no busy loop)', async () => {
  const port = await freePort();
  const deadPort = await freePort();
  const daemon = await startDaemon(
    {
      listener: { slotName: 'never_slot', serverPort: port, refreshConnection: '2s' },
      database: { host: '127.0.0.1', port: deadPort, name: 'nowhere', user: 'postgres', password: 'irrelevant' },
      publisher: { type: 'stdout', topic: 'never' },
    },
    { waitForStreaming: false },
  );
  daemons.push(daemon);
  await daemon.waitForLog('PostgreSQL not available; retrying');
  const state = await probes(port);
  assert.deepEqual([state.healthz.status, state.ready.status], [200, 503]);
  assert.match(state.ready.body, /^not ready: PostgreSQL/);

  const started = Date.now();
  await new Promise((r) => setTimeout(r, 6_000));
  const elapsed = Date.now() - started;
  const retries = daemon.logs().filter((r) => r.msg === 'PostgreSQL not available; retrying');
  const delays = retries.map((r) => Number(r.retryInMs));
  // 500 ms doubling to the 2 s cap (±25% jitter): about 5 attempts in 6.5 s, never hundreds.
  assert.ok(retries.length >= 3 && retries.length <= 9, `attempts in ${elapsed} ms: ${retries.length} (${delays.join(', ')})`);
  assert.ok(delays[0]! <= 625 && delays.every((d) => d <= 2_500), `delays ${delays.join(', ')}`);
  assert.ok(delays.slice(3).every((d) => d >= 1_500), `delays reach the cap: ${delays.join(', ')}`);
  assert.equal(daemon.child.exitCode, null, 'still running');
  assert.equal(await daemon.stop(), 0);
});
