/**
 * Credentials in every broker's address never leave the process (issue 10 #8): each broker's
 * failure paths (unreachable, password refused by a real server) at trace level, with PostgreSQL
 * unreachable too (its password in the config) and Sentry on. No password or DSN key may appear in
 * any log line, stdout, /ready, a Sentry envelope, or the output of `check` and `status`.
 * Pub/Sub takes no credentials from the config (the emulator, or the file GOOGLE_APPLICATION_CREDENTIALS
 * names), so it has no case here. Needs no database: not part of the PostgreSQL 18 run.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, before, test } from 'node:test';
import { runCli, startDaemon, writeConfig, type DaemonProcess } from '../support/daemon.js';
import { freePort, waitFor } from '../support/ports.js';
import { httpGet, startSentryEndpoint, type SentryEndpoint } from '../support/ops.js';

const PG_PASSWORD = 'Pg-Pa55word-in-yaml';
const BROKER_PASSWORD = 'Br0ker-Pa55word-in-address';
const KEY = 'secretDsnKey0123456789abcdef';
const SECRETS = [PG_PASSWORD, BROKER_PASSWORD, KEY];

let endpoint: SentryEndpoint;
const daemons: DaemonProcess[] = [];

before(async () => {
  endpoint = await startSentryEndpoint();
});

after(async () => {
  for (const d of daemons) await d.kill();
  await endpoint?.close();
});

function assertClean(where: string, text: string): void {
  for (const secret of SECRETS) assert.ok(!text.includes(secret), `${secret} appears in ${where}`);
}

/** A nats-server that requires user alice with a password that is not BROKER_PASSWORD. */
async function startAuthNats(): Promise<{ port: number; stop(): Promise<void> }> {
  const port = await freePort();
  const child: ChildProcess = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), '--user', 'alice', '--pass', 'the-right-one'], { stdio: 'ignore' });
  await waitFor(`nats-server with auth on ${port}`, () => httpGet(port, '/').then(() => true, (err: NodeJS.ErrnoException) => (err.code === 'ECONNREFUSED' ? undefined : true)), 15_000);
  return {
    port,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
  };
}

test('every broker address with credentials, unreachable or refused: no secret in logs, errors, Sentry, /ready, check or status', async () => {
  const authNats = await startAuthNats();
  const dead = await freePort();
  const brokers: Record<string, Record<string, unknown>> = {
    'NATS unreachable': { type: 'nats', address: `nats://alice:${BROKER_PASSWORD}@127.0.0.1:${dead}`, topic: 'secrets' },
    'NATS refusing the password': { type: 'nats', address: `nats://alice:${BROKER_PASSWORD}@127.0.0.1:${authNats.port}`, topic: 'secrets' },
    'RabbitMQ unreachable': { type: 'rabbitmq', address: `amqp://guest:${BROKER_PASSWORD}@127.0.0.1:${dead}`, topic: 'wl_ops_secrets' },
    'RabbitMQ refusing the password': { type: 'rabbitmq', address: `amqp://guest:${BROKER_PASSWORD}@127.0.0.1:5672`, topic: 'wl_ops_secrets' },
    'Kafka with SASL, unreachable': { type: 'kafka', address: `127.0.0.1:${dead}`, topic: 'wl_ops_secrets', sasl: { mechanism: 'plain', username: 'u', password: BROKER_PASSWORD } },
    // Pub/Sub takes no credentials from the config (the emulator, or GOOGLE_APPLICATION_CREDENTIALS' file).
  };
  const sentBefore = endpoint.bodies.length;
  try {
    await Promise.all(
      Object.entries(brokers).map(async ([name, publisher]) => {
        const port = await freePort();
        const config = {
          listener: { slotName: 'wl_ops_secrets', serverPort: `127.0.0.1:${port}`, refreshConnection: '1s' },
          logger: { level: 'trace' },
          // PostgreSQL is unreachable too: its retries do not stop the broker's.
          database: { host: '127.0.0.1', port: dead, name: 'db', user: 'postgres', password: PG_PASSWORD },
          publisher,
          monitoring: { sentryDSN: endpoint.dsn(KEY) },
        };
        const daemon = await startDaemon(config, { waitForStreaming: false });
        daemons.push(daemon);
        // A failed attempt (or the end, for a refusal that is fatal), then /ready while it retries.
        await waitFor(`${name}: a failed publisher attempt or an exit\n${daemon.stderr().slice(-2000)}`, () => daemon.child.exitCode !== null || daemon.logs().some((r) => r.msg === 'publisher not reachable; retrying'), 60_000, 200);
        const ready = daemon.child.exitCode === null ? (await httpGet(port, '/ready').catch(() => ({ status: 0, body: '' }))).body : '';
        await daemon.stop();
        const path = writeConfig(config);
        // status reads only PostgreSQL (its password is the same in every case): run it once.
        const [check, status] = await Promise.all([runCli(['check', '-c', path]), name === 'NATS unreachable' ? runCli(['status', '-c', path]) : { stdout: '', stderr: '' }]);
        const logs = daemon.stderr();
        assert.ok(/publisher|NATS|RabbitMQ|Kafka|broker/i.test(logs), `${name}: the broker's failure was logged:\n${logs}`);
        assert.match(check.stdout, /problem/, `${name}: check reports the broker`);
        for (const [i, line] of logs.split('\n').entries()) assertClean(`${name}, log line ${i}: ${line}`, line);
        assertClean(`${name}, stdout`, daemon.stdout());
        assertClean(`${name}, /ready`, ready);
        assertClean(`${name}, check`, check.stdout + check.stderr);
        assertClean(`${name}, status`, status.stdout + status.stderr);
      }),
    );
  } finally {
    await authNats.stop();
  }
  const sent = endpoint.bodies.slice(sentBefore);
  for (const body of sent) assertClean('a Sentry envelope', body);
});
