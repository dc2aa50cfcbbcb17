/**
 * The machine's RabbitMQ (127.0.0.1:5672, guest/guest) for tests. The broker is shared with other
 * test files and engineers: every exchange and queue name is unique, tests delete what they
 * declare, and broker-side faults are aimed at one client's connections (by connection_name) rather
 * than at every connection, unless a test explicitly asks for closeAllConnections(). Tests that
 * stop or restart a broker start a private node (startRabbitNode).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { promisify } from 'node:util';
import { connect, type Channel, type ChannelModel, type ConsumeMessage } from 'amqplib';
import { freePort, waitFor } from './ports.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

const run = promisify(execFile);

export const RABBIT_URL = process.env.RABBITMQ_URL_TEST ?? 'amqp://guest:guest@127.0.0.1:5672';

export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
}

/** A connection + channel for test plumbing; errors are recorded, never thrown as 'error' events. */
export async function rabbitConnect(url = RABBIT_URL): Promise<{ model: ChannelModel; channel: Channel; close(): Promise<void> }> {
  const model = await connect(url, { clientProperties: { connection_name: 'wal-listener-test-helper' } });
  model.on('error', () => undefined);
  const channel = await model.createChannel();
  channel.on('error', () => undefined);
  return {
    model,
    channel,
    close: () => model.close().catch(() => undefined),
  };
}

/**
 * Declares `exchange` exactly as the publisher does (durable, `kind`) and a durable queue bound to
 * it with `pattern`. The queue survives connection closes, so a test can read it after a fault.
 */
export async function declareBoundQueue(exchange: string, queue: string, pattern = '#', kind = 'topic', url = RABBIT_URL): Promise<void> {
  const c = await rabbitConnect(url);
  try {
    await c.channel.assertExchange(exchange, kind, { durable: true });
    await c.channel.assertQueue(queue, { durable: true });
    await c.channel.bindQueue(queue, exchange, pattern);
  } finally {
    await c.close();
  }
}

/** Number of ready messages in a queue. */
export async function queueDepth(queue: string, url = RABBIT_URL): Promise<number> {
  const c = await rabbitConnect(url);
  try {
    return (await c.channel.checkQueue(queue)).messageCount;
  } finally {
    await c.close();
  }
}

/**
 * Reads (and acks) messages from a queue, in queue order, until `count` have arrived (or `count`
 * returns true for what arrived so far), then keeps listening `quietMs` more so that unexpected
 * extra messages are caught too.
 */
export async function consumeMessages(
  queue: string,
  count: number | ((got: readonly ConsumeMessage[]) => boolean),
  timeoutMs = 30_000,
  quietMs = 300,
  url = RABBIT_URL,
): Promise<ConsumeMessage[]> {
  const done = typeof count === 'number' ? (got: readonly ConsumeMessage[]) => got.length >= count : count;
  const c = await rabbitConnect(url);
  const got: ConsumeMessage[] = [];
  try {
    await c.channel.prefetch(2_000);
    await new Promise<void>((resolve, reject) => {
      let quiet: NodeJS.Timeout | undefined;
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms with ${got.length} messages from ${queue}`)), timeoutMs);
      c.model.once('close', () => reject(new Error(`consumer connection closed after ${got.length} messages`)));
      void c.channel.consume(queue, (msg) => {
        if (!msg) return;
        got.push(msg);
        c.channel.ack(msg);
        if (!quiet && done(got)) {
          quiet = setTimeout(() => {
            clearTimeout(timer);
            resolve();
          }, quietMs);
        }
      });
    });
  } finally {
    await c.close();
  }
  return got;
}

/**
 * Reads a queue for as long as it runs, acking each message, and connects again whenever the
 * broker goes away (a restarted node redelivers what was not acked): everything that arrived, in
 * arrival order, duplicates included.
 */
export class QueueReader {
  readonly messages: ConsumeMessage[] = [];
  readonly ids = new Set<string>();
  private running = true;
  private current: ChannelModel | undefined;
  private readonly loop: Promise<void>;

  constructor(
    private readonly queue: string,
    private readonly url = RABBIT_URL,
  ) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (this.running) {
      try {
        const c = await rabbitConnect(this.url);
        this.current = c.model;
        const closed = new Promise((resolve) => c.model.once('close', resolve));
        if (!this.running) await c.close();
        await c.channel.prefetch(1_000);
        await c.channel.consume(this.queue, (msg) => {
          if (!msg) return;
          this.messages.push(msg);
          this.ids.add(msg.properties.messageId as string);
          try {
            c.channel.ack(msg);
          } catch {
            // The channel closed under us: the broker redelivers it.
          }
        });
        await closed;
      } catch {
        // Broker not reachable (yet): try again.
      }
      if (this.running) await new Promise((r) => setTimeout(r, 200));
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.current?.close().catch(() => undefined);
    await this.loop;
  }
}

/** Deletes queues and exchanges, ignoring ones already gone. */
export async function cleanup(names: { queues?: string[]; exchanges?: string[] }): Promise<void> {
  const c = await rabbitConnect().catch(() => undefined);
  if (!c) return;
  try {
    for (const queue of names.queues ?? []) await c.channel.deleteQueue(queue).catch(() => undefined);
    for (const exchange of names.exchanges ?? []) await c.channel.deleteExchange(exchange).catch(() => undefined);
  } finally {
    await c.close();
  }
}

/**
 * Deletes exchanges and queues named by uniqueName(`prefix...`) more than `olderThanMs` ago: what a
 * test run that was killed before its cleanup left behind (a durable queue may hold many messages).
 */
export async function sweepStale(prefix: string, olderThanMs = 10 * 60_000): Promise<void> {
  const stale = (name: string): boolean => {
    const match = /_([0-9a-z]{6,})_[0-9a-f]{6}$/.exec(name);
    return name.startsWith(prefix) && match?.[1] !== undefined && Date.now() - parseInt(match[1], 36) > olderThanMs;
  };
  const names = async (what: string): Promise<string[]> => (await rabbitmqctl(what, 'name', '-q', '--no-table-headers')).split('\n').map((l) => l.trim()).filter(stale);
  await cleanup({ queues: await names('list_queues'), exchanges: await names('list_exchanges') });
}

async function rabbitmqctl(...args: string[]): Promise<string> {
  const { stdout } = await run('rabbitmqctl', args, { timeout: 30_000 });
  return stdout;
}

/**
 * Closes, from the broker side (like an operator or a node restart would: CONNECTION_FORCED),
 * every connection whose client-provided connection_name is `name`. Returns how many it closed.
 */
export async function closeConnectionsNamed(name: string, reason = 'test'): Promise<number> {
  const listing = await rabbitmqctl('list_connections', 'pid', 'client_properties', '-q', '--no-table-headers');
  let closed = 0;
  for (const line of listing.split('\n')) {
    const match = /^(<[^>]+>)\t.*\{"connection_name","([^"]*)"\}/.exec(line);
    if (!match?.[1] || match[2] !== name) continue;
    await rabbitmqctl('close_connection', match[1], reason).catch(() => undefined); // it may be gone already
    closed++;
  }
  return closed;
}

/** `rabbitmqctl close_all_connections`: closes every client of the shared broker, other tests' too. */
export async function closeAllConnections(reason = 'test'): Promise<void> {
  await rabbitmqctl('close_all_connections', reason);
}

/**
 * Runs `open` while the broker's max_message_size is `bytes`. RabbitMQ reads the limit when a
 * channel opens, so only channels opened inside `open` get it; the previous value is restored
 * before this returns (the window is about a second, and 1 MiB is far above any other test's messages).
 */
export async function withMaxMessageSize<T>(bytes: number, open: () => Promise<T>): Promise<T> {
  const before = /\{ok,(\d+)\}/.exec(await rabbitmqctl('eval', 'application:get_env(rabbit, max_message_size).'))?.[1] ?? '134217728';
  await rabbitmqctl('eval', `application:set_env(rabbit, max_message_size, ${bytes}).`);
  try {
    return await open();
  } finally {
    await rabbitmqctl('eval', `application:set_env(rabbit, max_message_size, ${before}).`);
  }
}

/** A TCP proxy (tcp-proxy.ts) in front of RabbitMQ, with the AMQP URL that goes through it. */
export interface RabbitProxy extends TcpProxy {
  readonly url: string;
}

export async function startRabbitProxy(targetPort = 5672): Promise<RabbitProxy> {
  const proxy = await startTcpProxy(targetPort);
  return Object.assign(proxy, { url: `amqp://guest:guest@127.0.0.1:${proxy.port}` });
}

/** A throwaway CA with a server certificate (localhost, 127.0.0.1) and a client certificate, as PEM files in `dir`. */
export interface TestCerts {
  readonly ca: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
}

export async function makeTestCerts(dir: string): Promise<TestCerts> {
  const p = (name: string): string => join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run('openssl', ['req', '-x509', ...ec, '-keyout', p('ca.key'), '-out', p('ca.pem'), '-days', '1', '-subj', '/CN=wal-listener test CA']);
  for (const [name, cn, ext] of [
    ['server', 'localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
    ['client', 'wal-listener-test-client', 'extendedKeyUsage=clientAuth'],
  ] as const) {
    writeFileSync(p(`${name}.ext`), `${ext}\n`);
    await run('openssl', ['req', ...ec, '-keyout', p(`${name}.key`), '-out', p(`${name}.csr`), '-subj', `/CN=${cn}`]);
    await run('openssl', ['x509', '-req', '-in', p(`${name}.csr`), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-CAcreateserial', '-out', p(`${name}.pem`), '-days', '1', '-extfile', p(`${name}.ext`)]);
  }
  return { ca: p('ca.pem'), serverCert: p('server.pem'), serverKey: p('server.key'), clientCert: p('client.pem'), clientKey: p('client.key') };
}

/**
 * A TLS listener on a free port that terminates TLS and forwards plain AMQP to RabbitMQ (which has
 * no TLS listener here), requiring a client certificate signed by `certs.ca`. Records the client
 * certificates' common names.
 */
export async function startTlsProxy(certs: TestCerts, targetPort = 5672): Promise<{ port: number; clientNames: string[]; stop(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const clientNames: string[] = [];
  const server = createTlsServer(
    { cert: readFileSync(certs.serverCert), key: readFileSync(certs.serverKey), ca: readFileSync(certs.ca), requestCert: true, rejectUnauthorized: true },
    (client) => {
      const cn = client.getPeerCertificate().subject?.CN;
      clientNames.push(Array.isArray(cn) ? cn.join(',') : String(cn));
      const upstream = netConnect(targetPort, '127.0.0.1');
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => {
          sockets.delete(s);
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    },
  );
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    clientNames,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

const RABBIT_BIN = '/usr/lib/rabbitmq/bin';

/**
 * A private RabbitMQ node on free ports, with its own data, logs and Erlang cookie in a temporary
 * directory: for tests that stop and restart a broker (never the machine's shared one). About
 * 90 MB of memory; a start takes 10-20 s on this machine.
 */
export interface RabbitNode {
  /** Erlang node name, `wl_test_<pid>_<random>@localhost`. */
  readonly name: string;
  readonly port: number;
  /** amqp://guest:guest@127.0.0.1:<port> */
  readonly url: string;
  /** `rabbitmqctl -n <node> stop`: a clean broker shutdown (clients get CONNECTION_FORCED); data is kept. */
  stop(): Promise<void>;
  /** Starts the node again on the same port and data; resolves once it accepts AMQP connections. */
  start(): Promise<void>;
  /** Runs rabbitmqctl against this node. */
  ctl(...args: string[]): Promise<string>;
  /** Stops the node and removes its directory. */
  destroy(): Promise<void>;
}

export async function startRabbitNode(): Promise<RabbitNode> {
  const dir = mkdtempSync(join(tmpdir(), 'wl-rabbit-'));
  const name = `wl_test_${process.pid}_${randomBytes(3).toString('hex')}@localhost`;
  const port = await freePort();
  const distPort = await freePort();
  // The node and its CLI find the cookie in $HOME; a cookie of our own keeps it apart from the shared node.
  writeFileSync(join(dir, '.erlang.cookie'), `WLTEST${randomBytes(16).toString('hex').toUpperCase()}`, { mode: 0o400 });
  writeFileSync(join(dir, 'enabled_plugins'), '[].\n');
  // listeners.tcp.default replaces the 5672 listener (RABBITMQ_NODE_PORT would add a second one
  // on the same port); the environment file stands in for /etc/rabbitmq/rabbitmq-env.conf.
  writeFileSync(join(dir, 'rabbitmq.conf'), `listeners.tcp.default = 127.0.0.1:${port}\n`);
  writeFileSync(join(dir, 'rabbitmq-env.conf'), '');
  const env = {
    ...process.env,
    HOME: dir,
    RABBITMQ_NODENAME: name,
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_PID_FILE: join(dir, 'node.pid'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
    RABBITMQ_CONF_ENV_FILE: join(dir, 'rabbitmq-env.conf'),
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
    ERL_EPMD_ADDRESS: '127.0.0.1',
  };
  const url = `amqp://guest:guest@127.0.0.1:${port}`;
  const ctl = async (...args: string[]): Promise<string> => (await run(join(RABBIT_BIN, 'rabbitmqctl'), ['-n', name, ...args], { env, timeout: 60_000 })).stdout;
  let child: ChildProcess | undefined;

  const start = async (): Promise<void> => {
    const out = openSync(join(dir, 'server.out'), 'a');
    const c = spawn(join(RABBIT_BIN, 'rabbitmq-server'), [], { env, stdio: ['ignore', out, out] });
    closeSync(out);
    child = c;
    await waitFor(`RabbitMQ node ${name} on ${port}`, async () => {
      if (c.exitCode !== null) throw new Error(`rabbitmq-server exited with ${c.exitCode}: ${readFileSync(join(dir, 'server.out'), 'utf8').slice(-2000)}`);
      const model = await connect(url);
      await model.close();
      return true;
    }, 90_000, 200);
  };

  const stop = async (): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((resolve) => c.once('exit', resolve));
    await ctl('stop').catch(async () => {
      // The CLI could not reach the node: end the Erlang VM by its pid file.
      const pid = Number(readFileSync(join(dir, 'node.pid'), 'utf8').trim());
      if (pid > 0) process.kill(pid, 'SIGKILL');
    });
    await exited;
  };

  await start();
  return {
    name,
    port,
    url,
    stop,
    start,
    ctl,
    async destroy() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
