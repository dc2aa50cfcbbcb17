/**
 * A private Google Pub/Sub emulator on a free port (the gcloud SDK's Java emulator, preinstalled).
 * The launcher script execs java; it runs in its own process group so stop() kills the whole tree
 * even if a later launcher version forks instead.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { PubSub, type Message } from '@google-cloud/pubsub';
import { freePort, waitFor } from './ports.js';

const EMULATOR = process.env.PUBSUB_EMULATOR_BIN ?? '/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator';
const START_TIMEOUT_MS = 60_000;

export interface PubSubEmulator {
  /** `127.0.0.1:PORT`, the value for PUBSUB_EMULATOR_HOST. */
  readonly host: string;
  readonly port: number;
  /** SIGSTOP: connections stay open but nothing answers (a hung server). */
  freeze(): void;
  /** SIGCONT after freeze(). */
  thaw(): void;
  /** Kills the emulator (all its state is in memory and lost). Safe to call twice. */
  stop(): Promise<void>;
}

/** Starts an emulator on `port` (default: a free one); pass the old port to "restart" one that was stopped. */
export async function startPubSubEmulator(port?: number): Promise<PubSubEmulator> {
  port ??= await freePort();
  const child = spawn(EMULATOR, [`--host=127.0.0.1`, `--port=${port}`], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    // Small heap, serial GC: the machine's two cores are shared with other tests.
    env: { ...process.env, JAVA_OPTS: '-Xms64m -Xmx512m -XX:+UseSerialGC -Xss512k' },
  });
  const stop = (): Promise<void> => killGroup(child);
  try {
    await new Promise<void>((resolve, reject) => {
      let output = '';
      const timer = setTimeout(() => reject(new Error(`pubsub emulator did not start within ${START_TIMEOUT_MS} ms:\n${output}`)), START_TIMEOUT_MS);
      const onData = (chunk: Buffer): void => {
        output += chunk.toString();
        if (output.includes('Server started')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`pubsub emulator exited (${code ?? signal}) before starting:\n${output}`));
      });
    });
  } catch (err) {
    await stop();
    throw err;
  }
  // Keep draining the pipes so the emulator never blocks on a full pipe, without keeping Node alive.
  child.stdout?.resume();
  child.stderr?.resume();
  child.unref();
  (child.stdout as unknown as { unref?: () => void } | null)?.unref?.();
  (child.stderr as unknown as { unref?: () => void } | null)?.unref?.();
  const signal = (sig: NodeJS.Signals): void => {
    if (child.pid !== undefined && child.exitCode === null) process.kill(-child.pid, sig);
  };
  return { host: `127.0.0.1:${port}`, port, stop, freeze: () => signal('SIGSTOP'), thaw: () => signal('SIGCONT') };
}

async function killGroup(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.ref(); // keep the event loop alive until the exit is seen
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    return; // the group is already gone
  }
  await exited;
}

/**
 * A client for tests talking to the emulator at `host`. (The universe domain is named so google-auth
 * does not probe the GCE metadata server, which only prints a warning here.)
 */
export function emulatorClient(host: string, projectId: string): PubSub {
  return new PubSub({ projectId, apiEndpoint: host, emulatorMode: true, clientOptions: { universeDomain: 'googleapis.com' } });
}

export interface ReceivedMessage {
  /** Pub/Sub's message id: the same on a redelivery by the subscription, new for each publish. */
  readonly messageId: string;
  readonly attributes: Record<string, string>;
  readonly orderingKey: string;
  readonly data: string;
}

export interface OrderedSubscription {
  /** Every delivery, in arrival order (redeliveries included). */
  readonly received: ReceivedMessage[];
  /** Waits until `count` distinct attribute ids have arrived. */
  waitForIds(count: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * Creates `topicName` (if missing) and a subscription with message ordering on it, then pulls and
 * acks everything. Create it BEFORE publishing: Pub/Sub keeps only what arrives after a subscription exists.
 */
export async function subscribeOrdered(pubsub: PubSub, topicName: string, subscriptionName: string): Promise<OrderedSubscription> {
  const topic = pubsub.topic(topicName);
  await topic.create().catch((err: { code?: number }) => {
    if (err.code !== 6 /* ALREADY_EXISTS */) throw err;
  });
  const [subscription] = await topic.createSubscription(subscriptionName, { enableMessageOrdering: true, ackDeadlineSeconds: 60 });
  const received: ReceivedMessage[] = [];
  const ids = new Set<string>();
  subscription.on('message', (message: Message) => {
    received.push({ messageId: message.id, attributes: message.attributes, orderingKey: message.orderingKey ?? '', data: message.data.toString() });
    ids.add(message.attributes.id ?? '');
    message.ack();
  });
  subscription.on('error', () => undefined);
  return {
    received,
    waitForIds: (count, timeoutMs = 30_000) => waitFor(`${count} messages on ${subscriptionName} (have ${ids.size})`, () => ids.size >= count, timeoutMs, 50).then(() => undefined),
    async close() {
      await subscription.close().catch(() => undefined);
      await subscription.delete().catch(() => undefined);
    },
  };
}
