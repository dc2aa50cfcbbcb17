/** A private nats-server with JetStream on a free port, in a temporary directory (like nats.js's nst launcher). */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { freePort, waitFor } from './ports.js';

export interface NatsServer {
  readonly port: number;
  readonly url: string;
  /** Kills the server (SIGKILL) keeping its store directory. */
  kill(): Promise<void>;
  /** Starts it again on the same port and store (with other options when given). */
  restart(options?: NatsOptions): Promise<void>;
  /** SIGSTOP: the server stops answering, its connections stay open (a hung broker). */
  freeze(): void;
  /** SIGCONT after freeze(). */
  thaw(): void;
  stop(): Promise<void>;
  connect(): Promise<NatsConnection>;
}

export interface NatsOptions {
  /** The server's max_payload in bytes (NATS's default: 1 MiB). */
  maxPayload?: number;
}

export async function startNats(options: NatsOptions = {}): Promise<NatsServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'wl-nats-'));
  let child: ChildProcess | undefined;
  const launch = async ({ maxPayload }: NatsOptions = options): Promise<void> => {
    const args = ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir];
    if (maxPayload !== undefined) {
      // max_payload has no command-line flag: a config file sets it (the flags still apply).
      writeFileSync(join(dir, 'nats.conf'), `max_payload: ${maxPayload}\n`);
      args.push('-c', join(dir, 'nats.conf'));
    }
    child = spawn('nats-server', args, { stdio: 'ignore' });
    await waitFor(`nats-server on ${port}`, async () => {
      const nc = await connect({ servers: `127.0.0.1:${port}`, reconnect: false, timeout: 500 });
      await nc.close();
      return true;
    }, 15_000);
  };
  const kill = async (): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  };
  await launch();
  return {
    port,
    url: `127.0.0.1:${port}`,
    kill,
    restart: (changed?: NatsOptions) => launch(changed ?? options),
    freeze: () => child?.kill('SIGSTOP'),
    thaw: () => child?.kill('SIGCONT'),
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
    connect: () => connect({ servers: `127.0.0.1:${port}` }),
  };
}

export interface StoredMessage {
  seq: number;
  subject: string;
  msgId: string | undefined;
  headers: MsgHdrs | undefined;
  /** The payload as sent (JSON.parse loses int8 digits; assert on this for exact numbers). */
  raw: string;
  /** The payload's bytes. */
  bytes: Buffer;
  json: Record<string, unknown>;
}

/** The payload as JSON, or {} for a payload that is not JSON (routed messages carry any bytes). */
function parseOrEmpty(text: string): Record<string, unknown> {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return {};
  }
}

/** Number of messages in a JetStream stream (0 when it does not exist yet). */
export async function streamCount(nc: NatsConnection, stream: string): Promise<number> {
  const jsm = await jetstreamManager(nc);
  try {
    return (await jsm.streams.info(stream)).state.messages;
  } catch {
    return 0;
  }
}

/** Every message stored in the stream right now, in stream order (ordered consumer). */
export async function readStream(nc: NatsConnection, stream: string): Promise<StoredMessage[]> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(stream);
  const last = info.state.last_seq;
  const out: StoredMessage[] = [];
  if (info.state.messages === 0) return out;
  const consumer = await jetstream(nc).consumers.get(stream);
  const messages = await consumer.consume({ max_messages: 1000 });
  for await (const m of messages) {
    out.push({ seq: m.seq, subject: m.subject, msgId: m.headers?.get('Nats-Msg-Id'), headers: m.headers, raw: m.string(), bytes: Buffer.from(m.data), json: parseOrEmpty(m.string()) });
    if (m.seq >= last) break;
  }
  await messages.close();
  return out;
}
