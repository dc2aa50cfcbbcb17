/** Probes, the HTTP server, listen addresses and secret scrubbing (no daemon; real sockets on free ports). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { configSchema } from '../../src/config/schema.js';
import { ConfigError } from '../../src/errors.js';
import { HttpServer, Probes, parseListenAddress } from '../../src/observability/health-server.js';
import { configSecrets, createObservability } from '../../src/observability/index.js';
import { createLogger, redactUrlCredentials, textScrubber } from '../../src/observability/logger.js';
import { checkDsn, secretScrubber } from '../../src/observability/sentry.js';
import { freePort } from '../support/ports.js';
import { httpGet } from '../support/ops.js';

test('probes: /healthz alive unless stopping; /ready only while streaming with a healthy, acknowledging publisher', () => {
  const probes = new Probes();
  const hooks = probes.observer();
  let up = true;
  let oldest = 0;
  hooks.health(() => (up ? { ok: true, reason: 'publisher nats connected' } : { ok: false, reason: 'publisher nats is not connected; retrying' }));
  hooks.oldestUnacked(() => oldest);
  assert.deepEqual([probes.liveness().status, probes.readiness().status], [200, 503]);
  assert.match(probes.readiness().body, /not ready: starting/);
  hooks.reconnect('publisher');
  assert.match(probes.readiness().body, /publisher is not reachable yet/);
  hooks.state('streaming');
  assert.deepEqual([probes.liveness().status, probes.readiness().status], [200, 200]);
  assert.equal(probes.readiness().body, 'ready: streaming, publisher nats connected\n');
  up = false;
  assert.deepEqual([probes.liveness().status, probes.readiness().status], [200, 503]);
  assert.match(probes.readiness().body, /publisher nats is not connected/);
  up = true;
  oldest = 4_000;
  assert.equal(probes.readiness().status, 503);
  assert.match(probes.readiness().body, /has not acknowledged a batch for 4\.0 s/);
  oldest = 0;
  hooks.reconnect('postgres');
  hooks.state('reconnecting');
  assert.deepEqual([probes.liveness().status, probes.readiness().status], [200, 503]);
  assert.match(probes.readiness().body, /PostgreSQL replication connection lost or not available; reconnecting/);
  assert.match(probes.liveness().body, /ok: reconnecting/);
  hooks.state('standby');
  assert.deepEqual([probes.readiness().status, probes.readiness().body], [200, 'standby\n']);
  hooks.state('stopping');
  assert.deepEqual([probes.liveness().status, probes.readiness().status], [503, 503]);
});

test('listen addresses: ":2112", "host:port", "[::1]:port", bare port; empty is off; garbage throws', () => {
  assert.deepEqual(parseListenAddress(':2112'), { host: undefined, port: 2112 });
  assert.deepEqual(parseListenAddress('0.0.0.0:9000'), { host: '0.0.0.0', port: 9000 });
  assert.deepEqual(parseListenAddress('localhost:9000'), { host: 'localhost', port: 9000 });
  assert.deepEqual(parseListenAddress('[::1]:9000'), { host: '::1', port: 9000 });
  assert.deepEqual(parseListenAddress('2112'), { host: undefined, port: 2112 });
  assert.equal(parseListenAddress(''), null);
  for (const bad of ['http://x:1', ':99999', 'host:', ':abc', '::1:80']) assert.throws(() => parseListenAddress(bad), /expected/, bad);
});

test('HTTP server: GET and HEAD routes, 404 and 405, closes with open keep-alive sockets', async () => {
  const server = new HttpServer(new Map([['/ready', () => ({ status: 503, body: 'not ready: x\n' })]]));
  const port = await server.listen('127.0.0.1', 0);
  try {
    assert.deepEqual(await httpGet(port, '/ready?verbose=1'), { status: 503, body: 'not ready: x\n' });
    const missing = await httpGet(port, '/nope');
    assert.equal(missing.status, 404);
    assert.match(missing.body, /\/ready/);
    const head = await fetch(`http://127.0.0.1:${port}/ready`, { method: 'HEAD' });
    assert.equal(head.status, 503);
    assert.equal(await head.text(), '');
    const post = await fetch(`http://127.0.0.1:${port}/ready`, { method: 'POST' });
    assert.equal(post.status, 405);
    await post.text();
  } finally {
    await server.close();
  }
  await assert.rejects(httpGet(port, '/ready'));
});

test('createObservability: one server when serverPort and promAddr share a port; bad promAddr is a config error', async () => {
  const port = await freePort();
  const base = { listener: { slotName: 's', serverPort: port }, publisher: { type: 'stdout', topic: 't' } };
  const log = createLogger({ level: 'fatal', fmt: 'json' });
  const obs = await createObservability(configSchema.parse({ ...base, monitoring: { promAddr: `:${port}` } }), log, '9.9.9');
  await obs.start();
  try {
    assert.deepEqual([...obs.ports.values()], [port, port, port]);
    assert.equal((await httpGet(port, '/healthz')).status, 200);
    assert.equal((await httpGet(port, '/ready')).status, 503);
    const metrics = await httpGet(port, '/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /wal_listener_build_info\{version="9.9.9",app="wal-listener"\} 1/);
    // Hooks from both metrics and probes are wired (reconnect goes to both).
    obs.observer.reconnect?.('postgres');
    assert.match((await httpGet(port, '/metrics')).body, /reconnects_total\{target="postgres",app="wal-listener"\} 1/);
    // A second daemon on the same port fails to start, naming the key.
    const other = await createObservability(configSchema.parse(base), log, '9.9.9');
    await assert.rejects(other.start(), /listener\.serverPort.*EADDRINUSE/);
    await other.stop();
  } finally {
    await obs.stop();
    await obs.stop();
  }
  // A bad promAddr is refused with the config, before anything starts.
  const bad = configSchema.safeParse({ ...base, monitoring: { promAddr: 'http://x' } });
  assert.deepEqual(bad.error?.issues.map((issue) => issue.path.join('.')), ['monitoring.promAddr']);
  // Everything off: only the progress log line's hooks (logger.progressInterval, always on).
  const off = await createObservability(configSchema.parse({ ...base, listener: { slotName: 's' } }), log, '1');
  assert.deepEqual(Object.keys(off.observer).sort(), ['acked', 'inFlight', 'lag', 'state']);
  await off.start();
  await off.stop();
});

test('secrets: scrubbed from every string and key of an event; DSN checked without echoing it', () => {
  const config = configSchema.parse({
    listener: { slotName: 's' },
    database: { password: 'pg-S3cret' },
    publisher: { type: 'rabbitmq', topic: 't', address: 'amqp://user:rabbit%40pw@host:5672', sasl: { mechanism: 'plain', username: 'u', password: 'sasl-pw' } },
    monitoring: { sentryDSN: 'https://pubKey123@o1.ingest.sentry.io/42' },
  });
  const secrets = configSecrets(config);
  for (const s of ['pg-S3cret', 'sasl-pw', 'rabbit%40pw', 'rabbit@pw', 'pubKey123', 'https://pubKey123@o1.ingest.sentry.io/42']) assert.ok(secrets.includes(s), s);
  const scrub = secretScrubber(secrets);
  const event = {
    message: 'auth failed for pg-S3cret',
    extra: { nested: ['x pubKey123 y', { 'pg-S3cret': 1 }], n: 5 },
    exception: { values: [{ value: 'amqp://user:rabbit@pw@host' }] },
  };
  const clean = JSON.stringify(scrub(event));
  for (const s of ['pg-S3cret', 'pubKey123', 'rabbit@pw']) assert.ok(!clean.includes(s), `${s} in ${clean}`);
  assert.match(clean, /\[redacted\]/);
  assert.equal(secretScrubber([])('same'), 'same');

  assert.doesNotThrow(() => checkDsn('https://pubKey123@o1.ingest.sentry.io/42'));
  for (const bad of ['nope', 'https://o1.ingest.sentry.io/42', 'ftp://k@h/1', 'https://secretish@host/']) {
    assert.throws(() => checkDsn(bad), (err: unknown) => err instanceof ConfigError && !err.message.includes(bad) && /monitoring\.sentryDSN/.test(err.message));
  }
});

test('secrets in broker addresses: user:password and NATS tokens are collected; log lines lose them and any URL credentials', () => {
  const nats = configSchema.parse({ listener: { slotName: 's' }, publisher: { type: 'nats', topic: 't', address: 'nats://alice:na%22ts-pw@h1:4222, tok3nValue@h2:4222,h3:4222' } });
  const secrets = configSecrets(nats);
  for (const s of ['na%22ts-pw', 'na"ts-pw', 'tok3nValue']) assert.ok(secrets.includes(s), s);
  const scrub = textScrubber(secrets);
  const line = JSON.stringify({ err: 'cannot connect to nats://alice:na"ts-pw@h1:4222 or tok3nValue@h2', other: 'amqp://bob:unlisted@h/v' });
  const clean = scrub(line);
  for (const s of ['na"ts-pw', 'na\\"ts-pw', 'tok3nValue', 'unlisted']) assert.ok(!clean.includes(s), `${s} in ${clean}`);
  assert.doesNotThrow(() => JSON.parse(clean), 'still one JSON line');
  assert.match(clean, /amqp:\/\/bob:\*\*\*@h\/v/);
  assert.equal(redactUrlCredentials('nats://h:4222 and user@host'), 'nats://h:4222 and user@host', 'no credentials, nothing changed');
});

test('a password that is one of the daemon\'s own words (postgres) does not blank those words out of log lines', () => {
  const scrub = textScrubber(['postgres', 'Real-Secret-1']);
  assert.equal(scrub('{"source":"postgres","err":"Real-Secret-1"}'), '{"source":"postgres","err":"[redacted]"}');
  assert.equal(scrub('postgres://postgres:postgres@h/db'), 'postgres://postgres:***@h/db');
});

test('a very short password is not searched for in whole lines (it would match inside words and keys)', () => {
  const line = '{"level":"info","msg":"replication streaming"}';
  assert.equal(textScrubber(['e'])(line), line);
});
