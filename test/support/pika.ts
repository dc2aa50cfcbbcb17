/**
 * Runs test/support/amqp_dump.py (Debian's python3-pika: a RabbitMQ client we did not write) and
 * returns what it decoded. /usr/bin/python3 is Debian's interpreter, the one that sees python3-pika
 * (a `python3` earlier on PATH, e.g. pyenv's, does not).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { RABBIT_URL } from './rabbitmq.js';

export const PYTHON = '/usr/bin/python3';
const SCRIPT = join(import.meta.dirname, 'amqp_dump.py');

export interface DumpedMessage {
  readonly exchange: string;
  readonly routing_key: string;
  readonly redelivered: boolean;
  readonly body: string | { base64: string };
  readonly properties: Record<string, unknown>;
  readonly headers: Record<string, unknown>;
}

export interface AmqpDump {
  /** Resolves once the queue is declared, bound and consumed. */
  readonly ready: Promise<void>;
  /** Resolves when the script exits, with the messages it printed. */
  readonly done: Promise<{ messages: DumpedMessage[]; code: number | null; stderr: string }>;
}

export function startAmqpDump(options: { queue: string; exchange?: string; binding?: string; count: number; timeoutSeconds?: number }): AmqpDump {
  const url = `${RABBIT_URL}/%2F`;
  const args = [SCRIPT, '--url', url, '--queue', options.queue, '--count', String(options.count), '--timeout', String(options.timeoutSeconds ?? 30)];
  if (options.exchange) args.push('--exchange', options.exchange, '--binding', options.binding ?? '#');
  const child = spawn(PYTHON, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const messages: DumpedMessage[] = [];
  let markReady!: () => void;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  createInterface({ input: child.stdout }).on('line', (line) => {
    const record = JSON.parse(line) as DumpedMessage | { ready: string };
    if ('ready' in record) markReady();
    else messages.push(record);
  });
  const done = new Promise<{ messages: DumpedMessage[]; code: number | null; stderr: string }>((resolve) =>
    child.once('close', (code) => resolve({ messages, code, stderr })),
  );
  return {
    ready: Promise.race([ready, done.then(({ code, stderr: err }) => Promise.reject(new Error(`amqp_dump.py exited (${code}) before consuming: ${err}`)))]),
    done,
  };
}
