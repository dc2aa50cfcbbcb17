/**
 * Keys are read the way ihippik/wal-listener (viper) reads them: in any letter case. WAL_
 * variables that name no key are ignored, as Kubernetes sets such variables in every pod.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import { closestName, editDistance } from '../../src/config/suggest.js';
import { configError } from '../support/config.js';

const MINIMAL = 'listener: { slotName: s1 }\npublisher: { type: nats, topic: wal_listener }\n';

test('keys are read in any letter case, as the schema spells them', () => {
  const text = `Listener:
  slotname: s1
  SERVERPORT: 8081
  Filter: { Tables: { Users: [Insert] } }
  topicsmap: { Public_Users: Notifier }
Database: { enabletls: true, SSLMODE: require, Port: 5433 }
publisher:
  Type: google_pubsub
  topic: wl
  pubSubProjectID: my-project
  Sasl: { MECHANISM: plain, UserName: u, password: p }
`;
  const { config } = parseConfig(text, 'test');
  assert.equal(config.listener.slotName, 's1');
  assert.equal(config.database.port, 5433);
  assert.equal(config.database.sslMode, 'require');
  assert.equal(config.publisher.pubSubProjectId, 'my-project');
  assert.deepEqual(config.publisher.sasl, { mechanism: 'plain', username: 'u', password: 'p' });
  // Map keys are table names and subjects: kept as written.
  assert.deepEqual(config.listener.filter.tables, { Users: ['insert'] });
  assert.deepEqual(config.listener.topicsMap, { Public_Users: 'Notifier' });
});

test('the same key twice in different spellings is an error naming both', () => {
  const message = configError('listener: { slotName: s1, slotname: s2 }\npublisher: { type: nats, topic: t }');
  assert.match(message, /config keys listener\.slotName and listener\.slotname are the same setting/);
  assert.match(configError('listener: { slotName: s1 }\npublisher: { type: nats, topic: t, enableTLS: true, enable_tls: false }'), /publisher\.enableTLS and publisher\.enable_tls/);
  assert.match(configError('listener: { slotName: s1 }\nPublisher: { type: nats, topic: t }\npublisher: { type: nats, topic: t }'), /config keys Publisher and publisher are the same setting/);
});

test('an unknown key gets "did you mean" when a known key is close', () => {
  assert.match(configError('listener: { slotName: s1, slotNmae: x }\npublisher: { type: nats, topic: t }'), /unknown key listener\.slotNmae \(did you mean listener\.slotName\?\)/);
  assert.match(configError('listener: { slotName: s1, slot_name: x }\npublisher: { type: nats, topic: t }'), /unknown key listener\.slot_name \(did you mean listener\.slotName\?\)/);
  assert.match(configError('listener: { slotName: s1 }\npublisher: { type: nats, topic: t, topicPrefx: a }'), /did you mean publisher\.topicPrefix\?/);
  assert.match(configError(`${MINIMAL}monitorin: {}`), /unknown key monitorin \(did you mean monitoring\?\)/);
  const far = configError(`${MINIMAL.replace('slotName: s1', 'slotName: s1, colour: blue')}`);
  assert.match(far, /unknown key listener\.colour/);
  assert.doesNotMatch(far, /did you mean/);
});

test('Kubernetes service variables for a Service named wal-listener are ignored, not fatal', () => {
  const env = {
    WAL_LISTENER_SERVICE_HOST: '10.0.0.1',
    WAL_LISTENER_SERVICE_PORT: '8080',
    WAL_LISTENER_SERVICE_PORT_HTTP: '8080',
    WAL_LISTENER_PORT: 'tcp://10.0.0.11:8080',
    WAL_LISTENER_PORT_8080_TCP: 'tcp://10.0.0.11:8080',
    WAL_LISTENER_PORT_8080_TCP_PROTO: 'tcp',
    WAL_LISTENER_PORT_8080_TCP_PORT: '8080',
    WAL_LISTENER_PORT_8080_TCP_ADDR: '10.0.0.11',
    WAL_SOMETHING_ELSE_ENTIRELY: 'x',
  };
  const { config, warnings, ignoredVariables } = parseConfig(MINIMAL, 'test', env);
  assert.equal(config.listener.slotName, 's1');
  assert.equal(config.listener.serverPort, null, 'WAL_LISTENER_PORT is not listener.serverPort');
  assert.deepEqual(warnings, []);
  assert.deepEqual(ignoredVariables.sort(), Object.keys(env).sort());
});

test('a near miss of a real key is not applied and warns with "did you mean"', () => {
  const { config, warnings, ignoredVariables } = parseConfig(MINIMAL, 'test', {
    WAL_LISTENER_SLOTNAM: 'typo',
    WAL_LISTENER_SERVER_PORT: '9000',
    WAL_DATABSE_PORT: '5433',
    WAL_LISTENER_SERVERPORT: '8081',
  });
  assert.equal(config.listener.slotName, 's1');
  assert.equal(config.database.port, 5432);
  assert.deepEqual(config.listener.serverPort, { host: undefined, port: 8081 }, 'the real key is applied');
  assert.deepEqual(warnings.sort(), [
    'environment variable WAL_DATABSE_PORT names no config key and is ignored; did you mean WAL_DATABASE_PORT?',
    'environment variable WAL_LISTENER_SERVER_PORT names no config key and is ignored; did you mean WAL_LISTENER_SERVERPORT?',
    'environment variable WAL_LISTENER_SLOTNAM names no config key and is ignored; did you mean WAL_LISTENER_SLOTNAME?',
  ]);
  assert.deepEqual(ignoredVariables, []);
});

test('a Kubernetes link that collides with a real key says so', () => {
  assert.match(configError(MINIMAL, { WAL_DATABASE_PORT: 'tcp://10.0.0.12:5432' }), /WAL_DATABASE_PORT: expected a decimal number, got "tcp:\/\/10\.0\.0\.12:5432" \(a variable Kubernetes sets/);
});

test('edit distance and closest name', () => {
  assert.equal(editDistance('slotname', 'slotnmae'), 1);
  assert.equal(editDistance('kitten', 'sitting'), 3);
  assert.equal(closestName('slotnam', ['slotName', 'serverPort']), 'slotName');
  assert.equal(closestName('SLOT-NAME', ['slotName']), 'slotName');
  assert.equal(closestName('colour', ['slotName', 'serverPort']), undefined);
});
