import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import { parseDuration } from '../../src/config/duration.js';
import { ConfigError } from '../../src/errors.js';

const MINIMAL = 'listener: { slotName: s1 }\npublisher: { type: nats, topic: wal_listener }\n';

test('defaults are applied', () => {
  const { config } = parseConfig(MINIMAL, 'test');
  assert.equal(config.listener.publication, 'wal-listener');
  assert.equal(config.listener.refreshConnection, 30_000);
  assert.equal(config.listener.heartbeatInterval, 10_000);
  assert.equal(config.listener.serverPort, 0);
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
