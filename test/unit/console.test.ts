/** The `console` config section and the /events query filter. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isLoopback } from '../../src/config/console.js';
import { parseConfig } from '../../src/config/load.js';
import { parseFilter } from '../../src/observability/console-server.js';
import { configError } from '../support/config.js';

const MINIMAL = 'listener: { slotName: s1 }\npublisher: { type: stdout, topic: t }\n';

test('console: off by default, maxClients 50', () => {
  const { config } = parseConfig(MINIMAL, 'test');
  assert.equal(config.console.address, null);
  assert.equal(config.console.token, '');
  assert.equal(config.console.maxClients, 50);
});

test('console: loopback needs no token; every interface or another host does', () => {
  for (const addr of ['127.0.0.1:8090', 'localhost:8090', '[::1]:8090', '127.0.0.2:8090']) {
    const { config } = parseConfig(`${MINIMAL}console: { addr: "${addr}" }\n`, 'test');
    assert.equal(config.console.address?.port, 8090, addr);
  }
  assert.match(configError(`${MINIMAL}console: { addr: ":8090" }\n`), /console\.token.*is required: console\.addr ":8090" listens on every interface, not loopback; set a token \(WAL_CONSOLE_TOKEN\)/);
  assert.match(configError(`${MINIMAL}console: { addr: "10.0.0.5:8090" }\n`), /console\.token.*listens on 10\.0\.0\.5/);
  const { config } = parseConfig(`${MINIMAL}console: { addr: ":8090" }\n`, 'test', { WAL_CONSOLE_TOKEN: 'x', WAL_CONSOLE_MAXCLIENTS: '5' });
  assert.deepEqual(config.console.address, { host: undefined, port: 8090 });
  assert.equal(config.console.token, 'x');
  assert.equal(config.console.maxClients, 5);
});

test('console: a bad address or maxClients names the key', () => {
  assert.match(configError(`${MINIMAL}console: { addr: "8090x" }\n`), /console\.addr.*expected ":<port>"/);
  assert.match(configError(`${MINIMAL}console: { addr: "127.0.0.1:1", maxClients: 0 }\n`), /console\.maxClients/);
  assert.match(configError(`${MINIMAL}console: { adr: ":1" }\n`), /console\.adr.*did you mean.*addr/i);
});

test('isLoopback', () => {
  assert.equal(isLoopback(undefined), false);
  assert.equal(isLoopback('0.0.0.0'), false);
  assert.equal(isLoopback('::'), false);
  assert.equal(isLoopback('127.0.0.1'), true);
  assert.equal(isLoopback('LOCALHOST'), true);
  assert.equal(isLoopback('::1'), true);
  assert.equal(isLoopback('127.example.com'), false);
});

test('parseFilter: comma lists, repeated params, case-insensitive actions, unknown action refused', () => {
  const f = parseFilter(new URLSearchParams('tables=users, public.orders&tables=x&actions=Insert,delete'));
  assert.deepEqual([...f.tables!], ['users', 'public.orders', 'x']);
  assert.deepEqual([...f.actions!], ['INSERT', 'DELETE']);
  const all = parseFilter(new URLSearchParams('tables=&actions='));
  assert.equal(all.tables, null);
  assert.equal(all.actions, null);
  assert.throws(() => parseFilter(new URLSearchParams('actions=upsert')), /unknown action "upsert"/);
});
