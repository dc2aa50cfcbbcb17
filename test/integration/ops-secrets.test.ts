/**
 * Secrets never leave the process: across failing runs at trace level (PostgreSQL unreachable, the
 * broker dying, a wrong password refused by a real server), no password or Sentry DSN key appears in
 * any log line, stdout, probe body, /metrics or Sentry envelope. Broker addresses with credentials:
 * ops-secrets-brokers.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startEmbeddedPostgres, type EmbeddedServer } from '../../scripts/embedded-postgres.js';
import { startDaemon, type DaemonProcess } from '../support/daemon.js';
import { startNats, type NatsServer } from '../support/nats.js';
import { freePort, waitFor } from '../support/ports.js';
import { httpGet, startSentryEndpoint, type SentryEndpoint } from '../support/ops.js';

const FILE_PASSWORD = 'File-Pa55word-in-yaml';
const ENV_PASSWORD = 'Env-Pa55word-from-WAL';
const KEY = 'secretDsnKey9876543210fedcba';
const SECRETS = [FILE_PASSWORD, ENV_PASSWORD, KEY];

let endpoint: SentryEndpoint;
let nats: NatsServer;
let pgServer: EmbeddedServer;
const daemons: DaemonProcess[] = [];

before(async () => {
  [endpoint, nats, pgServer] = await Promise.all([startSentryEndpoint(), startNats(), startEmbeddedPostgres()]);
});

after(async () => {
  for (const d of daemons) await d.kill();
  await endpoint?.close();
  await nats?.stop();
  await pgServer?.destroy();
});

function assertClean(where: string, text: string): void {
  for (const secret of SECRETS) assert.ok(!text.includes(secret), `${secret} appears in ${where}`);
}

test('PostgreSQL unreachable and the broker killed, at trace level: no secret anywhere', async () => {
  const port = await freePort();
  const deadPort = await freePort();
  const daemon = await startDaemon(
    {
      listener: { slotName: 'secrets_slot', serverPort: port, refreshConnection: '1s' },
      logger: { level: 'trace' },
      database: { host: '127.0.0.1', port: deadPort, name: 'db', user: 'postgres', password: FILE_PASSWORD, debug: true },
      publisher: { type: 'nats', address: nats.url, topic: 'secrets' },
      monitoring: { sentryDSN: endpoint.dsn(KEY), promAddr: `:${port}` },
    },
    { waitForStreaming: false, env: { WAL_DATABASE_PASSWORD: ENV_PASSWORD } },
  );
  daemons.push(daemon);
  await waitFor('three failed PostgreSQL attempts', () => daemon.logs().filter((r) => r.msg === 'PostgreSQL not available; retrying').length >= 3, 45_000);
  await nats.kill();
  let bodies: string[];
  try {
    await new Promise((r) => setTimeout(r, 1_000));
    bodies = await Promise.all(['/healthz', '/ready', '/metrics'].map(async (path) => (await httpGet(port, path)).body));
    assert.equal(await daemon.stop(), 0);
  } finally {
    // test/support/nats.ts: stop() after kill() waits for an exit that already happened; give it a live server.
    await nats.restart();
  }

  assert.ok(daemon.logs().length >= 8, 'the run logged something to check');
  assert.ok(daemon.logs().some((r) => r.level === 'warn' && /ECONNREFUSED/.test(String(r.err))));
  for (const [i, line] of daemon.stderr().split('\n').entries()) assertClean(`log line ${i}: ${line}`, line);
  assertClean('stdout', daemon.stdout());
  for (const body of bodies) assertClean('an HTTP response', body);
  for (const body of endpoint.bodies) assertClean('a Sentry envelope', body);
});

test('a wrong password refused by PostgreSQL: exit 1, reported to Sentry, no secret anywhere', async () => {
  const sentBefore = endpoint.bodies.length;
  const daemon = await startDaemon(
    {
      listener: { slotName: 'secrets_slot2' },
      logger: { level: 'trace' },
      database: { host: pgServer.host, port: pgServer.port, name: 'postgres', user: pgServer.user, password: FILE_PASSWORD },
      publisher: { type: 'stdout', topic: 'secrets' },
      monitoring: { sentryDSN: endpoint.dsn(KEY) },
    },
    { waitForStreaming: false },
  );
  daemons.push(daemon);
  assert.equal(await daemon.exited, 1);
  const fatal = daemon.logs().find((r) => r.level === 'fatal');
  assert.equal(fatal?.code, 'WAL_PG_AUTH', daemon.stderr());
  assert.equal(fatal?.sqlstate, '28P01', daemon.stderr());
  assert.match(String(fatal?.err), /password authentication failed/);
  for (const [i, line] of daemon.stderr().split('\n').entries()) assertClean(`log line ${i}: ${line}`, line);
  assertClean('stdout', daemon.stdout());
  const sent = endpoint.bodies.slice(sentBefore);
  assert.ok(sent.some((b) => b.includes('password authentication failed')), 'the error reached Sentry');
  for (const body of sent) assertClean('a Sentry envelope', body);
});
