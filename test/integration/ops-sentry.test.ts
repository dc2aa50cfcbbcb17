/**
 * Sentry against a local HTTP endpoint used as the DSN: a fatal error of the real daemon (database
 * does not exist → exit 1) and crashes (uncaught exception, unhandled rejection → one fatal JSON
 * line with code WAL_INTERNAL, exit 1) arrive as events tagged with the version; no password or DSN
 * key appears in any event or log line.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import pkg from '../../package.json' with { type: 'json' };
import { REPO_ROOT, startDaemon } from '../support/daemon.js';
import { PG_HOST, PG_PORT, PG_USER, uniqueName } from '../support/postgres.js';
import { startSentryEndpoint, type SentryEndpoint } from '../support/ops.js';

const { version } = pkg;
const PASSWORD = 'Sentry-Pa55word-not-for-logs';
const KEY = 'dsnPublicKey0123456789abcdef';

let endpoint: SentryEndpoint;

before(async () => {
  endpoint = await startSentryEndpoint();
});

after(async () => {
  await endpoint?.close();
});

function assertNoSecrets(where: string, text: string): void {
  assert.ok(!text.includes(PASSWORD), `password in ${where}`);
  assert.ok(!text.includes(KEY), `DSN key in ${where}`);
}

test('a fatal error of the daemon reaches Sentry, tagged with the version, without secrets', async () => {
  const daemon = await startDaemon(
    {
      listener: { slotName: 'sentry_slot' },
      database: { host: PG_HOST, port: PG_PORT, user: PG_USER, name: uniqueName('wl_missing'), password: PASSWORD },
      publisher: { type: 'stdout', topic: 'sentry' },
      monitoring: { sentryDSN: endpoint.dsn(KEY) },
    },
    { waitForStreaming: false },
  );
  assert.equal(await daemon.exited, 1, 'a database that does not exist is fatal: exit 1, never 0');
  const fatal = daemon.logs().find((r) => r.msg === 'fatal error; stopping');
  assert.ok(fatal, daemon.stderr());
  assert.equal(fatal.code, 'WAL_PG_DATABASE');
  assert.equal(fatal.sqlstate, '3D000');

  const events = endpoint.events();
  const event = events.find((e) => e.level === 'fatal');
  assert.ok(event, `no fatal event among ${events.length}: ${endpoint.bodies.join('\n')}`);
  assert.equal(event.release, `wal-listener@${version}`);
  assert.equal((event.tags as Record<string, string>).version, version);
  assert.match(JSON.stringify(event), /does not exist/);
  assert.match(JSON.stringify(event), /fatal error; stopping/);
  // The key travels in the auth header only (that is how Sentry authenticates), never in a body.
  assert.ok(endpoint.requests.every((r) => r.auth.includes(KEY) || r.url.includes(KEY)));
  for (const body of endpoint.bodies) assertNoSecrets('a Sentry envelope', body);
  assertNoSecrets('the logs', daemon.stderr());
  assertNoSecrets('stdout', daemon.stdout());
});

/** Runs a script that sets up the logger, crash handlers and Sentry like the daemon does, then crashes the way `crash` says. */
function crash(crashCode: string): Promise<{ code: number | null; stderr: string }> {
  const module = (name: string): string => JSON.stringify(pathToFileURL(`${REPO_ROOT}/src/observability/${name}.ts`).href);
  const secrets = `[${JSON.stringify(PASSWORD)}, ${JSON.stringify(KEY)}]`;
  const script = `
    const { initSentry } = await import(${module('sentry')});
    const { createLogger } = await import(${module('logger')});
    const { installCrashHandlers } = await import(${module('crash')});
    const log = createLogger({ level: 'info', fmt: 'json' }, undefined, ${secrets});
    let sentry;
    installCrashHandlers(log, () => sentry.flush(2000));
    sentry = await initSentry({ dsn: ${JSON.stringify(endpoint.dsn(KEY))}, version: '7.7.7', secrets: ${secrets} });
    ${crashCode}
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stderr })));
}

test('uncaught exceptions and unhandled rejections are reported, scrubbed, and still exit 1', async () => {
  const before = endpoint.events().length;
  const thrown = await crash(`setTimeout(() => { throw new Error('boom with ${PASSWORD} inside'); }, 10);`);
  assert.equal(thrown.code, 1, thrown.stderr);
  const rejected = await crash(`setTimeout(() => { Promise.reject(new Error('rejected ${KEY}')); }, 10);`);
  assert.equal(rejected.code, 1, rejected.stderr);
  // One fatal JSON line each, with a code and the stack as a field: never Node's raw stack trace.
  for (const { stderr } of [thrown, rejected]) {
    const lines = stderr.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, stderr);
    const record = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.equal(record.level, 'fatal');
    assert.equal(record.code, 'WAL_INTERNAL');
    assert.match(String(record.stack), /^Error: /);
    assertNoSecrets('the crash line', stderr);
  }

  const events = endpoint.events().slice(before);
  const values = events.map((e) => JSON.stringify(e.exception));
  assert.ok(values.some((v) => v.includes('boom with [redacted] inside')), values.join('\n'));
  assert.ok(values.some((v) => v.includes('rejected [redacted]')), values.join('\n'));
  for (const e of events) {
    assert.equal(e.level, 'fatal');
    assert.equal(e.release, 'wal-listener@7.7.7');
    assert.equal((e.tags as Record<string, string>).version, '7.7.7');
    assertNoSecrets('a crash event', JSON.stringify(e));
  }
});
