import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import { parseDuration } from '../../src/config/duration.js';
import { ConfigError } from '../../src/errors.js';
import { configError } from '../support/config.js';

const MINIMAL = 'listener: { slotName: s1 }\npublisher: { type: nats, topic: wal_listener }\n';

test('defaults are applied', () => {
  const { config } = parseConfig(MINIMAL, 'test');
  assert.equal(config.listener.publication, 'wal-listener');
  assert.equal(config.listener.refreshConnection, 30_000);
  assert.equal(config.listener.heartbeatInterval, 10_000);
  assert.equal(config.listener.serverPort, null, 'probes off');
  assert.equal(config.listener.shutdownTimeout, 20_000, 'inside the 30 s Kubernetes grace period');
  assert.deepEqual(config.listener.topicsMap, {});
  assert.equal(config.logger.level, 'info');
  assert.equal(config.logger.fmt, 'json');
  assert.equal(config.database.port, 5432);
  assert.equal(config.publisher.exchangeKind, 'topic');
  assert.equal(config.monitoring.promAddr, '');
});

test('WAL_ overrides reach every section, also keys the file lacks', () => {
  const { config } = parseConfig(MINIMAL, 'test', {
    WAL_DATABASE_PORT: '5433',
    WAL_DATABASE_PASSWORD: '0123',
    WAL_LOGGER_LEVEL: 'debug',
    WAL_MONITORING_PROMADDR: ':2112',
    WAL_LISTENER_SLOTNAME: 'other',
    WAL_LISTENER_HEARTBEATINTERVAL: '1m30s',
    WAL_LISTENER_FILTER_TABLES: '{"users": ["insert"]}',
    WAL_LISTENER_TOPICSMAP: 'public_users: notifier',
    WAL_PUBLISHER_ENABLETLS: 'true',
    WAL_PUBLISHER_SASL_MECHANISM: 'plain',
    WAL_PUBLISHER_SASL_USERNAME: 'u',
    WAL_PUBLISHER_SASL_PASSWORD: 'p',
    UNRELATED: 'ignored',
  });
  assert.equal(config.database.port, 5433);
  assert.equal(config.database.password, '0123', 'a numeric-looking password stays a string');
  assert.equal(config.logger.level, 'debug');
  assert.equal(config.monitoring.promAddr, ':2112');
  assert.equal(config.listener.slotName, 'other');
  assert.equal(config.listener.heartbeatInterval, 90_000);
  assert.deepEqual(config.listener.filter.tables, { users: ['insert'] });
  assert.deepEqual(config.listener.topicsMap, { public_users: 'notifier' });
  assert.equal(config.publisher.enableTLS, true);
  assert.deepEqual(config.publisher.sasl, { mechanism: 'plain', username: 'u', password: 'p' });
});

test("ihippik/wal-listener's snake_case TLS keys are read as the camelCase ones", () => {
  const { config } = parseConfig(`${MINIMAL.replace('topic: wal_listener', 'topic: wal_listener, enable_tls: true, ca_cert: ca.pem')}`, 'test');
  assert.equal(config.publisher.enableTLS, true);
  assert.equal(config.publisher.caCert, 'ca.pem');
});

test('errors name the key', () => {
  const cases: [string, RegExp][] = [
    ['listener: { slotName: s1, filter: { tables: { users: [upsert] } } }\npublisher: { type: nats, topic: t }', /listener\.filter\.tables\.users\.0: expected one of insert, update, delete, truncate/],
    ['listener: { slotName: "Bad-Name" }\npublisher: { type: nats, topic: t }', /listener\.slotName: must be/],
    ['listener: { slotName: s1 }\npublisher: { type: carrier_pigeon, topic: t }', /publisher\.type/],
    ['listener: { slotName: s1 }\npublisher: { type: nats }', /publisher\.topic: is required/],
    ['listener: { slotName: s1 }\npublisher: { type: nats, topic: t }\nextra: 1', /unknown key extra/],
    ['- just\n- a list', /must be a mapping/],
    ['listener: { slotName: s1, serverPort: true }\npublisher: { type: nats, topic: t }', /listener\.serverPort: expected a port or "<host>:<port>", got true/],
    ['listener: { slotName: s1, heartbeatInterval: [1] }\npublisher: { type: nats, topic: t }', /listener\.heartbeatInterval: expected a duration such as "30s" or "1m30s", got \[1\]/],
  ];
  for (const [text, pattern] of cases) {
    assert.throws(() => parseConfig(text, 'test'), (err: unknown) => err instanceof ConfigError && pattern.test(err.message), text);
  }
});

test('durations', () => {
  assert.equal(parseDuration('30s'), 30_000);
  assert.equal(parseDuration('1m30s'), 90_000);
  assert.equal(parseDuration('250ms'), 250);
  assert.equal(parseDuration('2h'), 7_200_000);
  assert.equal(parseDuration('1.5s'), 1500);
  assert.equal(parseDuration('10'), 10_000);
  assert.equal(parseDuration('soon'), undefined);
  assert.equal(parseDuration('10x'), undefined);
  assert.equal(parseDuration(''), undefined);
});

test('config_example.yml is a valid config', async () => {
  const { loadConfig } = await import('../../src/config/load.js');
  const { config } = loadConfig(new URL('../../config_example.yml', import.meta.url).pathname, {});
  assert.equal(config.listener.slotName, 'myslot_1');
  assert.equal(config.publisher.type, 'nats');
});

test('publisher settings that a broker needs are required for that broker', () => {
  assert.throws(() => parseConfig('listener: { slotName: s1 }\npublisher: { type: google_pubsub, topic: t }', 'test'), /publisher\.pubSubProjectId: is required for publisher\.type google_pubsub/);
  assert.throws(() => parseConfig('listener: { slotName: s1 }\npublisher: { type: kafka, topic: t }', 'test'), /publisher\.address: is required for publisher\.type kafka/);
  assert.throws(() => parseConfig('listener: { slotName: s1 }\npublisher: { type: rabbitmq, topic: t }', 'test'), /publisher\.address: is required for publisher\.type rabbitmq/);
  assert.doesNotThrow(() => parseConfig('listener: { slotName: s1 }\npublisher: { type: nats, topic: t }', 'test'));
});

const withListener = (keys: string) => MINIMAL.replace('slotName: s1', `slotName: s1, ${keys}`);
const withPublisher = (keys: string) => MINIMAL.replace('topic: wal_listener', `topic: wal_listener, ${keys}`);
const withDatabase = (keys: string) => `${MINIMAL}database: { ${keys} }\n`;

test("ihippik/wal-listener's own config_example.yml loads with only host, database, slot and address changed", () => {
  const fixture = new URL('../fixtures/go-config_example.yml', import.meta.url).pathname;
  const { config, warnings } = loadConfig(fixture, {
    WAL_DATABASE_HOST: '127.0.0.1',
    WAL_DATABASE_NAME: 'orders',
    WAL_LISTENER_SLOTNAME: 'orders_slot',
    WAL_PUBLISHER_ADDRESS: '127.0.0.1:9092',
  });
  assert.equal(config.database.host, '127.0.0.1');
  assert.equal(config.listener.slotName, 'orders_slot');
  // enableTLS: false with sslMode: require is plain text in the Go daemon, and here.
  assert.equal(config.database.sslMode, 'disable');
  assert.equal(config.database.enableTLS, false);
  assert.ok(warnings.some((w) => /database\.sslMode require has no effect because database\.enableTLS is false/.test(w)), warnings.join('\n'));
  assert.equal(config.publisher.type, 'kafka');
  assert.equal(config.publisher.enableTLS, true, 'enable_tls is read as enableTLS');
  assert.deepEqual(config.listener.serverPort, { host: undefined, port: 80 });
});

test('database.enableTLS: sslMode applies only when it is true', () => {
  const db = (keys: string) => parseConfig(withDatabase(keys), 'test').config.database;
  assert.equal(db('enableTLS: false, sslMode: verify-full').sslMode, 'disable');
  assert.equal(db('enableTLS: true').sslMode, 'require', 'the Go default');
  assert.equal(db('enableTLS: true, sslMode: verify-ca').sslMode, 'verify-ca');
  assert.equal(db('sslMode: require').sslMode, 'require', 'without enableTLS, sslMode alone decides');
  assert.equal(db('port: 5432').sslMode, 'disable');
  assert.equal(parseConfig(MINIMAL, 'test', { WAL_DATABASE_ENABLETLS: 'true' }).config.database.sslMode, 'require');
  assert.match(configError(withDatabase('enableTLS: true, sslMode: disable')), /database\.sslMode: "disable" contradicts database\.enableTLS: true/);
});

test('an empty table filter is a config error, from the file or the environment', () => {
  const expected = /listener\.filter\.tables: is empty, so every change would be dropped; remove the key to publish every table/;
  assert.match(configError(withListener('filter: { tables: {} }')), expected);
  assert.match(configError(withListener('filter: { tables: }')), expected);
  assert.match(configError(MINIMAL, { WAL_LISTENER_FILTER_TABLES: '{}' }), expected);
  assert.equal(parseConfig(withListener('filter: {}'), 'test').config.listener.filter.tables, undefined, 'no tables key: every table');
});

test('durations have bounds, and none overflows a Node.js timer', () => {
  const cases: [string, RegExp][] = [
    [withListener('heartbeatInterval: 0'), /listener\.heartbeatInterval: must be at least 100ms, got 0 \(the standby status would be sent in a busy loop\)/],
    [withListener('heartbeatInterval: 50ms'), /listener\.heartbeatInterval: must be at least 100ms/],
    [withListener('heartbeatInterval: 2h'), /listener\.heartbeatInterval: must be at most 1h/],
    [withListener('refreshConnection: 0s'), /listener\.refreshConnection: must be at least 100ms/],
    [withListener('refreshConnection: 600h'), /listener\.refreshConnection: must be at most 2147483647ms \(a Node\.js timer cannot wait longer than about 24\.8 days\)/],
    [withListener('shutdownTimeout: 11m'), /listener\.shutdownTimeout: must be at most 10m/],
    [withPublisher('ackTimeout: 0'), /publisher\.ackTimeout: must be at least 100ms, got 0 \(0 does not turn the timeout off/],
    [withPublisher('duplicateWindow: 1000h'), /publisher\.duplicateWindow: must be at most/],
  ];
  for (const [text, pattern] of cases) assert.match(configError(text), pattern, text);
  const { config } = parseConfig(withListener('heartbeatInterval: 100ms, shutdownTimeout: 0s'), 'test');
  assert.equal(config.listener.heartbeatInterval, 100);
  assert.equal(config.listener.shutdownTimeout, 0, 'do not wait at all: allowed');
});

test('numbers from the environment are decimal only', () => {
  for (const value of ['0xd9b3', '1e3', ' 5432', '5_432', '', '0o17', '5432 ']) {
    assert.match(configError(MINIMAL, { WAL_DATABASE_PORT: value }), /environment variable WAL_DATABASE_PORT: expected a decimal number/, JSON.stringify(value));
  }
  assert.equal(parseConfig(MINIMAL, 'test', { WAL_DATABASE_PORT: '5433' }).config.database.port, 5433);
  assert.match(configError(MINIMAL, { WAL_DATABASE_PORT: '0' }), /database\.port: /);
});

test('listener.serverPort takes a port, ":port" or "host:port", like monitoring.promAddr', () => {
  const serverPort = (value: string, env: Record<string, string> = {}) => parseConfig(withListener(`serverPort: ${value}`), 'test', env).config.listener.serverPort;
  assert.deepEqual(serverPort('8080'), { host: undefined, port: 8080 });
  assert.equal(serverPort('0'), null, '0 = off');
  assert.deepEqual(serverPort('":8080"'), { host: undefined, port: 8080 });
  assert.deepEqual(serverPort('"127.0.0.1:8080"'), { host: '127.0.0.1', port: 8080 });
  assert.deepEqual(serverPort('"[::1]:8080"'), { host: '::1', port: 8080 });
  assert.deepEqual(serverPort('8080', { WAL_LISTENER_SERVERPORT: '127.0.0.1:9090' }), { host: '127.0.0.1', port: 9090 });
  assert.equal(serverPort('8080', { WAL_LISTENER_SERVERPORT: '0' }), null);
  assert.match(configError(withListener('serverPort: 70000')), /listener\.serverPort: expected ":<port>" or "<host>:<port>"/);
  assert.match(configError(withListener('serverPort: "localhost"')), /listener\.serverPort: expected/);
  assert.match(configError(`${withListener('serverPort: 8080')}monitoring: { promAddr: "127.0.0.1:8080" }\n`), /monitoring\.promAddr: names port 8080 like listener\.serverPort but another host/);
  assert.match(configError(`${MINIMAL}monitoring: { promAddr: "http://x:1" }\n`), /monitoring\.promAddr: expected/);
});

test('Kafka connection settings that can be checked offline are config errors', () => {
  const kafka = (extra: string): string => `listener: { slotName: s1 }\npublisher: { type: kafka, topic: wal, ${extra} }`;
  for (const address of ['a:9092', 'a:9092,b.example.com:9093', ' 10.0.0.1:9092 , [::1]:9092 ']) {
    assert.doesNotThrow(() => parseConfig(kafka(`address: "${address}"`), 'test'), address);
  }
  for (const [address, bad] of [['localhost', 'localhost'], ['a:9092,b', 'b'], ['a:9092,,b:9092', ''], ['a:0', 'a:0'], ['a:65536', 'a:65536'], ['kafka://a:9092', 'kafka://a:9092'], ['a:9092;b:9092', 'a:9092;b:9092']]) {
    assert.throws(() => parseConfig(kafka(`address: "${address}"`), 'test'), new RegExp(`publisher\\.address: expected a comma-separated list of Kafka brokers as host:port, got ${JSON.stringify(bad).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`), address);
  }
  assert.throws(() => parseConfig(kafka('address: "a:1", enableTLS: true, clientKey: k.pem'), 'test'), /publisher\.clientCert: .*go together/);
  assert.doesNotThrow(() => parseConfig(kafka('address: "a:1", enableTLS: true, clientCert: c.pem, clientKey: k.pem'), 'test'));
});
