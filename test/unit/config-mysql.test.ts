/** source.type and the mysql section: defaults, the cross-section rules, and messages that name the key. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from '../../src/config/load.js';

const PUBLISHER = 'publisher: { type: nats, topic: wal_listener }\n';
const MYSQL = `source: { type: mysql }\nmysql: { user: repl, serverId: 4242 }\n${PUBLISHER}`;

test('a mysql source needs only user and serverId; the rest has defaults', () => {
  const { config } = parseConfig(MYSQL, 'test');
  assert.equal(config.source.type, 'mysql');
  assert.deepEqual(config.mysql, { host: 'localhost', port: 3306, user: 'repl', password: '', serverId: 4242, databases: [], positionStore: { kind: 'table' } });
  assert.equal(config.listener.slotName, '', 'no slot for a mysql source');
});

test('source.type defaults to postgres, which still requires listener.slotName', () => {
  assert.equal(parseConfig(`listener: { slotName: s1 }\n${PUBLISHER}`, 'test').config.source.type, 'postgres');
  assert.throws(() => parseConfig(PUBLISHER, 'test'), /listener\.slotName: is required for source\.type postgres/);
});

test('positionStore: table or file:<path>', () => {
  const file = parseConfig(MYSQL.replace('serverId: 4242', 'serverId: 4242, positionStore: "file:/var/lib/wl/pos.json"'), 'test');
  assert.deepEqual(file.config.mysql?.positionStore, { kind: 'file', path: '/var/lib/wl/pos.json' });
  assert.throws(() => parseConfig(MYSQL.replace('serverId: 4242', 'serverId: 4242, positionStore: redis'), 'test'), /mysql\.positionStore: expected "table" or "file:<path>", got "redis"/);
  assert.throws(() => parseConfig(MYSQL.replace('serverId: 4242', 'serverId: 4242, positionStore: "file:"'), 'test'), /mysql\.positionStore: expected/);
});

test('errors name the key', () => {
  const cases: [string, RegExp][] = [
    [`source: { type: mysql }\n${PUBLISHER}`, /mysql: is required for source\.type mysql/],
    [`source: { type: mysql }\nmysql: { serverId: 1 }\n${PUBLISHER}`, /mysql\.user: is required/],
    [`source: { type: mysql }\nmysql: { user: u }\n${PUBLISHER}`, /mysql\.serverId: is required \(a replica server id/],
    [MYSQL.replace('4242', '0'), /mysql\.serverId: must be 1 or more/],
    [MYSQL.replace('4242', '4294967296'), /mysql\.serverId: must be at most 4294967295/],
    [MYSQL.replace('serverId: 4242', 'serverId: 4242, databases: [shop, wal_listener]'), /mysql\.databases\.1: wal_listener is the daemon's own database/],
    [MYSQL.replace('serverId: 4242', 'serverId: 4242, port: "x"'), /mysql\.port/],
    [MYSQL.replace('serverId: 4242', 'serverId: 4242, hots: x'), /unknown key mysql\.hots/],
    [`listener: { slotName: s1 }\n${MYSQL}`, /listener\.slotName: is a PostgreSQL replication slot; remove it for source\.type mysql/],
    [`listener: { slotName: s1 }\nmysql: { user: u, serverId: 2 }\n${PUBLISHER}`, /mysql: is read only with source\.type mysql \(source\.type is postgres\)/],
    [`source: { type: oracle }\n${PUBLISHER}`, /source\.type/],
  ];
  for (const [text, pattern] of cases) assert.throws(() => parseConfig(text, 'test'), pattern, text);
});

test('WAL_MYSQL_ environment variables override the section', () => {
  const { config } = parseConfig(MYSQL, 'test', { WAL_MYSQL_PASSWORD: '007', WAL_MYSQL_PORT: '3307', WAL_MYSQL_DATABASES: '[shop, billing]', WAL_MYSQL_POSITIONSTORE: 'file:/tmp/p' });
  assert.equal(config.mysql?.password, '007');
  assert.equal(config.mysql?.port, 3307);
  assert.deepEqual(config.mysql?.databases, ['shop', 'billing']);
  assert.deepEqual(config.mysql?.positionStore, { kind: 'file', path: '/tmp/p' });
});
