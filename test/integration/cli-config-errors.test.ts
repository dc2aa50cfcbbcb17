/**
 * Bad config and usage stop the daemon with exit code 2 and a message naming the problem, before
 * it connects to anything: the database and broker addresses point at listeners that count
 * connections, and they must count none.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startDaemon } from '../support/daemon.js';

let pgTrap: Server;
let brokerTrap: Server;
let connections = 0;
let pgPort = 0;
let brokerPort = 0;

async function trap(): Promise<[Server, number]> {
  const server = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return [server, typeof address === 'object' && address ? address.port : 0];
}

before(async () => {
  [pgTrap, pgPort] = await trap();
  [brokerTrap, brokerPort] = await trap();
});
after(() => {
  pgTrap.close();
  brokerTrap.close();
});

const valid = () => `listener:
  slotName: never_used
database:
  host: 127.0.0.1
  port: ${pgPort}
  name: test
  user: postgres
publisher:
  type: nats
  address: 127.0.0.1:${brokerPort}
  topic: wal_listener
`;

async function expectExit2(rawConfig: string | null, pattern: RegExp, args?: string[], env?: Record<string, string>): Promise<void> {
  const before = connections;
  const daemon = await startDaemon(null, { rawConfig: rawConfig ?? '', ...(args ? { args } : {}), ...(env ? { env } : {}), waitForStreaming: false });
  const code = await daemon.exited;
  assert.equal(code, 2, `exit code; stderr: ${daemon.stderr()}`);
  assert.match(daemon.stderr(), pattern);
  assert.equal(connections, before, 'no connection was made');
}

describe('bad config exits 2 naming the problem, before connecting', () => {
  test('unknown key', () => expectExit2(valid().replace('slotName: never_used', 'slotName: never_used\n  slotNmae: typo'), /unknown key listener\.slotNmae/));
  test('wrong type', () => expectExit2(valid().replace('port: ' + pgPort, 'port: "not a port"'), /database\.port: .*expected number/i));
  test('missing slotName', () => expectExit2(valid().replace('  slotName: never_used\n', '  serverPort: 0\n'), /listener\.slotName: is required/));
  test('broken YAML', () => expectExit2(`${valid()}\nlistener: [\n`, /not valid YAML/));
  test('missing file', () => expectExit2(null, /config file \/nonexistent\/config\.yml does not exist/, ['-c', '/nonexistent/config.yml']));
  test('bad duration', () => expectExit2(valid().replace('slotName: never_used', 'slotName: never_used\n  heartbeatInterval: soon'), /listener\.heartbeatInterval: expected a duration/));
  test('unknown key with a close known key', () => expectExit2(valid().replace('slotName: never_used', 'slotName: never_used\n  heartbeatIntervall: 1s'), /unknown key listener\.heartbeatIntervall \(did you mean listener\.heartbeatInterval\?\)/));
  test('the same key in two spellings', () => expectExit2(valid().replace('slotName: never_used', 'slotName: never_used\n  SlotName: other'), /config keys listener\.slotName and listener\.SlotName are the same setting/));
  test('empty table filter from the environment', () =>
    expectExit2(valid(), /listener\.filter\.tables: is empty, so every change would be dropped; remove the key to publish every table/, undefined, { WAL_LISTENER_FILTER_TABLES: '{}' }));
  test('a topic NATS cannot use', () => expectExit2(valid().replace('topic: wal_listener', 'topic: wal.listener'), /publisher\.topic: "wal\.listener": it cannot be a NATS stream name/));
  test('ackTimeout 0', () => expectExit2(valid().replace('topic: wal_listener', 'topic: wal_listener\n  ackTimeout: 0s'), /publisher\.ackTimeout: must be at least 100ms/));
  test('a hexadecimal number from the environment', () => expectExit2(valid(), /WAL_DATABASE_PORT: expected a decimal number, got "0xd9b3"/, undefined, { WAL_DATABASE_PORT: '0xd9b3' }));
  test('environment override with the wrong type', () => expectExit2(valid(), /WAL_DATABASE_PORT: expected a decimal number/, undefined, { WAL_DATABASE_PORT: 'abc' }));
  test('environment override of a key the file lacks is validated', () =>
    expectExit2(valid(), /publisher\.exchangeKind/, undefined, { WAL_PUBLISHER_EXCHANGEKIND: 'sideways' }));
  test('an unreadable certificate is found before anything connects', () =>
    expectExit2(valid().replace('  port: ' + pgPort, `  port: ${pgPort}\n  sslMode: verify-full\n  sslRootCert: /nonexistent/root.crt`), /database\.sslRootCert: \/nonexistent\/root\.crt does not exist/));
  test('unknown flag is a usage error', () => expectExit2(null, /Unknown option '--bogus'/, ['--bogus']));
  const kafka = (address: string): string => valid().replace('type: nats', 'type: kafka').replace(`address: 127.0.0.1:${brokerPort}`, `address: "${address}"`);
  test('Kafka broker list that is not host:port', () => expectExit2(kafka(`127.0.0.1:${brokerPort},localhost`), /publisher\.address: expected a comma-separated list of Kafka brokers as host:port, got "localhost"/));
  test('Kafka broker with a port out of range', () => expectExit2(kafka(`127.0.0.1:${brokerPort},127.0.0.1:99999`), /publisher\.address: .*"127\.0\.0\.1:99999"/));
  test('Kafka broker list given as a URL', () => expectExit2(kafka(`kafka://127.0.0.1:${brokerPort}`), /publisher\.address: .*host:port/));
  test('Kafka mutual TLS with a certificate and no key', () =>
    expectExit2(kafka(`127.0.0.1:${brokerPort}`).replace('topic: wal_listener', 'topic: wal_listener\n  enableTLS: true\n  clientCert: /x.pem'), /publisher\.clientKey: .*go together/));
});

describe('usage', () => {
  test('--help and --version exit 0', async () => {
    const help = await startDaemon(null, { args: ['--help'], waitForStreaming: false });
    assert.equal(await help.exited, 0);
    assert.match(help.stdout(), /Usage: wal-listener/);
    const version = await startDaemon(null, { args: ['--version'], waitForStreaming: false });
    assert.equal(await version.exited, 0);
    assert.match(version.stdout(), /^wal-listener \d+\.\d+\.\d+/);
  });

  test('WAL_ variables that name no key do not stop the daemon; a near miss warns and is not applied', async () => {
    const daemon = await startDaemon(null, {
      rawConfig: valid(),
      env: { WAL_LISTENER_SERVICE_HOST: '10.0.0.1', WAL_LISTENER_PORT: 'tcp://10.0.0.11:8080', WAL_LISTENER_SERVICE_PORT_HTTP: '8080', WAL_LISTENER_SLOTNAM: 'x' },
      waitForStreaming: false,
    });
    await daemon.waitForLog('environment variable WAL_LISTENER_SLOTNAM names no config key and is ignored; did you mean WAL_LISTENER_SLOTNAME?');
    assert.equal(await daemon.stop(), 0, daemon.stderr());
    assert.ok(!daemon.logs().some((r) => /SERVICE_HOST|LISTENER_PORT/.test(String(r.msg)) && r.level !== 'debug'), 'Kubernetes variables are not warned about');
  });

  test('ignored wal-listener keys are accepted with a warning', async () => {
    const text = valid().replace('slotName: never_used', 'slotName: never_used\n  ackTimeout: 10s').replace('user: postgres', 'user: postgres\n  debug: true');
    // The config is valid, so the daemon starts and tries to connect; stop it once it warned.
    const daemon = await startDaemon(null, { rawConfig: text, waitForStreaming: false });
    await daemon.waitForLog(/listener\.ackTimeout is accepted for compatibility/);
    await daemon.waitForLog(/database\.debug is accepted for compatibility/);
    assert.equal(await daemon.stop(), 0);
  });
});

