/**
 * A private Kafka cluster for one test file: librdkafka's mock cluster (3 brokers, in memory),
 * hosted by Debian's `kcat`. kcat runs as a producer whose stdin stays open, so it never exits by
 * itself; librdkafka prints the mock's listeners on stderr at notice level (no `-d mock` needed):
 *
 *   %5|1795239690.657|MOCK|rdkafka#producer-1| [thrd:app]: Mock cluster enabled: original
 *   bootstrap.servers and security.protocol ignored and replaced with 127.0.0.1:41235,127.0.0.1:45927,...
 *
 * (with `-d mock` there is also a debug line `... bootstrap.servers=<list>`; both are understood).
 * The mock auto-creates a topic on first metadata request, with 4 partitions (librdkafka 2.0.2).
 * It does not support kafkajs's idempotent producer.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import kafkajs from 'kafkajs';

const { Kafka, logLevel } = kafkajs;

export interface KafkaMock {
  /** Comma-separated broker list, e.g. "127.0.0.1:35103,127.0.0.1:43771,127.0.0.1:34999". */
  readonly bootstrap: string;
  /** Kills the cluster (every broker disappears at once). Safe to call twice. */
  stop(): Promise<void>;
}

const BOOTSTRAP = /(?:bootstrap\.servers=|replaced with )(\d[\d.:,]*\d)/;

export function startKafkaMock(brokers = 3): Promise<KafkaMock> {
  const child = spawn('kcat', ['-P', '-t', 'keepalive', '-b', '127.0.0.1:1', '-X', `test.mock.num.brokers=${brokers}`], {
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.stdin.destroy();
      child.kill('SIGKILL');
    }
    await exited;
  };
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => {
      void stop().then(() => reject(new Error(`kcat mock cluster did not print its bootstrap servers within 10 s: ${text.slice(0, 500)}`)));
    }, 10_000);
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('utf8');
      const match = BOOTSTRAP.exec(text);
      if (!match?.[1]) return;
      clearTimeout(timer);
      // Keep draining stderr so kcat never blocks on a full pipe.
      child.stderr.off('data', onData);
      child.stderr.resume();
      resolve({ bootstrap: match[1], stop });
    };
    child.stderr.on('data', onData);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot start kcat (is it installed?): ${err.message}`));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`kcat exited (${code ?? signal}) before printing the bootstrap servers: ${text.slice(0, 500)}`));
    });
  });
}

export interface ControlledKafkaMock extends KafkaMock {
  /** The brokers' ports: pass them to startControlledKafkaMock to start the cluster again there. */
  readonly ports: readonly number[];
  /** The next request of Kafka API `apiKey` (0 = Produce) fails with Kafka error `code` (10 = MESSAGE_TOO_LARGE). */
  injectError(apiKey: number, code: number): Promise<void>;
  /** SIGSTOP: connections stay open, nothing answers, nothing is lost (a hung broker, or a network cut). */
  freeze(): void;
  /** SIGCONT after freeze(). */
  thaw(): void;
}

const MOCK_HOST_SOURCE = join(import.meta.dirname, 'kafka-mock.c');

/** Compiles test/support/kafka-mock.c once (cached by its content) with the system C compiler. */
function mockHostBinary(): string {
  const source = readFileSync(MOCK_HOST_SOURCE);
  const binary = join(tmpdir(), `wl-kafka-mock-${createHash('sha256').update(source).digest('hex').slice(0, 12)}`);
  if (!existsSync(binary)) {
    const building = `${binary}.${process.pid}`;
    execFileSync('cc', ['-O1', '-o', building, MOCK_HOST_SOURCE, '-l:librdkafka.so.1', '-ldl'], { stdio: ['ignore', 'ignore', 'inherit'] });
    renameSync(building, binary);
  }
  return binary;
}

/**
 * The same mock cluster hosted by test/support/kafka-mock.c instead of kcat: on the given ports
 * (default: free ones chosen by the kernel), so that after stop() (SIGKILL, every broker gone at
 * once, every record lost) a new cluster can take the old one's place; and with injected errors.
 */
export function startControlledKafkaMock(options: { ports?: readonly number[]; brokers?: number } = {}): Promise<ControlledKafkaMock> {
  const brokers = options.ports?.length ?? options.brokers ?? 3;
  const child = spawn(mockHostBinary(), [String(brokers)], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...(options.ports ? { KAFKA_MOCK_PORTS: options.ports.join(',') } : {}) },
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const lines = createInterface({ input: child.stdout });
  const waiting: ((line: string) => void)[] = [];
  lines.on('line', (line) => waiting.shift()?.(line));
  const nextLine = (): Promise<string> =>
    new Promise((resolve, reject) => {
      waiting.push(resolve);
      void exited.then(() => reject(new Error(`kafka mock host exited: ${stderr.slice(0, 500)}`)));
    });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  return nextLine().then(
    (line) => {
      const bootstrap = line.replace(/^bootstrap /, '');
      const ports = bootstrap.split(',').map((b) => Number(b.slice(b.lastIndexOf(':') + 1)));
      return {
        bootstrap,
        ports,
        stop,
        freeze: () => child.kill('SIGSTOP'),
        thaw: () => child.kill('SIGCONT'),
        async injectError(apiKey, code) {
          const ok = nextLine();
          child.stdin.write(`error ${apiKey} ${code}\n`);
          await ok;
        },
      };
    },
    async (err: unknown) => {
      await stop();
      throw err;
    },
  );
}

/** One consumed record, decoded. */
export interface ConsumedRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly key: string;
  readonly value: string;
  readonly headers: Record<string, string>;
  /** The value was null (a tombstone). */
  readonly tombstone: boolean;
}

/**
 * Reads `topics` from the beginning with a fresh consumer group until `count` records arrived
 * (or `timeoutMs` passed: then it returns what it has, and the test's count assertion explains).
 */
export async function consumeAll(bootstrap: string, topics: readonly string[], count: number, timeoutMs = 30_000): Promise<ConsumedRecord[]> {
  const kafka = new Kafka({ clientId: 'wl-test-consumer', brokers: bootstrap.split(','), logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: `wl-test-${randomBytes(4).toString('hex')}`, maxWaitTimeInMs: 100 });
  const records: ConsumedRecord[] = [];
  let done: () => void = () => undefined;
  const enough = new Promise<void>((resolve) => (done = resolve));
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [...topics], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ topic, partition, message }) => {
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(message.headers ?? {})) headers[name] = String(value);
        records.push({ topic, partition, offset: Number(message.offset), key: message.key?.toString('utf8') ?? '', value: message.value?.toString('utf8') ?? '', headers, tombstone: message.value === null });
        if (records.length >= count) done();
      },
    });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([enough, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
    // A moment more, so duplicates beyond `count` would show up too.
    await new Promise((r) => setTimeout(r, 300));
  } finally {
    await consumer.disconnect();
  }
  return records;
}

/** Number of partitions of an existing topic. */
export async function partitionCount(bootstrap: string, topic: string): Promise<number> {
  const kafka = new Kafka({ clientId: 'wl-test-admin', brokers: bootstrap.split(','), logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
    return metadata.topics[0]?.partitions.length ?? 0;
  } finally {
    await admin.disconnect();
  }
}

/**
 * Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), written independently of
 * kafkajs: the Java client's partition of a keyed record is `(murmur2(key) & 0x7fffffff) % partitions`.
 */
export function murmur2(data: Buffer): number {
  const m = 0x5bd1e995;
  const length = data.length;
  let h = (0x9747b28c ^ length) | 0;
  const whole = length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const rest = length & 3;
  if (rest === 3) h ^= data[whole + 2]! << 16;
  if (rest >= 2) h ^= data[whole + 1]! << 8;
  if (rest >= 1) h = Math.imul(h ^ data[whole]!, m);
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

export function javaPartition(key: string, partitions: number): number {
  return (murmur2(Buffer.from(key, 'utf8')) & 0x7fffffff) % partitions;
}

/**
 * Like consumeAll, but waits for `count` distinct event ids (header `id`): at-least-once delivery
 * may hold duplicates, which consumeAll would count toward `count` and so stop early. Returns
 * every record read, duplicates included.
 */
export async function consumeDistinct(bootstrap: string, topics: readonly string[], count: number, timeoutMs = 60_000): Promise<ConsumedRecord[]> {
  const deadline = Date.now() + timeoutMs;
  let want = count;
  for (;;) {
    const records = await consumeAll(bootstrap, topics, want, Math.max(1_000, deadline - Date.now()));
    const distinct = new Set(records.map((r) => r.headers.id)).size;
    if (distinct >= count || Date.now() >= deadline || records.length < want) return records;
    want = count + (records.length - distinct);
  }
}
