/**
 * `npm run bench:consumer`: events per second the consumer SDK handles with a no-op handler, per
 * broker. Each run fills the broker with N events in the daemon's framing (the transfers row of
 * the SDK tests, about 330 bytes: int8, numeric, timestamp, jsonb, float8), then a fresh consumer
 * drains them; the rate is taken from its first handled event to its last, so connection setup
 * and group joins are left out. CPU µs/event is this process's CPU time (decoding, dispatch, the
 * broker client) over the same span. Payload `bigint` has an int8 beyond 2^53 (the lossless JSON
 * path); `plain` has none (JSON.parse).
 *
 * Flags: --runs <n> (3), --events <n> (20000; Pub/Sub: a quarter), --only <nats,kafka,rabbitmq,pubsub,decode>,
 * --timeout <ms> (300000) for one drain.
 */
import { parseArgs } from 'node:util';
import kafkajs from 'kafkajs';
import { connect as amqpConnect } from 'amqplib';
import { jetstreamManager } from '@nats-io/jetstream';
import { headers } from '@nats-io/transport-node';
import { createConsumer } from '../src/consumer/index.js';
import { createDecoder } from '../src/consumer/decode.js';
import type { ColumnTypeMap, ConsumerOptions } from '../src/consumer/types.js';
import { startKafkaMock } from '../test/support/kafka.js';
import { startNats } from '../test/support/nats.js';
import { emulatorClient, startPubSubEmulator } from '../test/support/pubsub.js';
import { cleanup, RABBIT_URL, uniqueName } from '../test/support/rabbitmq.js';
import { median } from './lib/stats.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, events: { type: 'string', default: '20000' }, only: { type: 'string' }, timeout: { type: 'string', default: '300000' } }, strict: true });
const RUNS = Number(values.runs);
const EVENTS = Number(values.events);
const only = values.only?.split(',');
const TIMEOUT_MS = Number(values.timeout);

const TOPIC = 'bench';
const SUBJECT = `${TOPIC}.public_transfers`;
const TABLES: ColumnTypeMap = {
  'public.transfers': { columns: { id: 'int8', v: 'int4', account_id: 'int8', amount: 'numeric', at: 'timestamp', meta: 'jsonb', ratio: 'float8' }, key: ['id'] },
};
type Payload = 'plain' | 'bigint';
const PAYLOADS: Payload[] = ['plain', 'bigint'];
const KEYS = 1000;

interface Message {
  readonly id: string;
  readonly key: string;
  readonly body: string;
}

function messages(count: number, payload: Payload): Message[] {
  const account = payload === 'bigint' ? '9007199254740993' : '123456789012';
  return Array.from({ length: count }, (_, i) => {
    const id = `00000000-0d48-8d64-a01b-${i.toString(16).padStart(12, '0')}`;
    const row = i % KEYS;
    const body =
      `{"id":"${id}","schema":"public","table":"transfers","action":"UPDATE","data":{"id":${row},"v":${i},"account_id":${account},` +
      `"amount":"${i}.4500","at":"2024-02-29T13:45:56.${String(i % 1e6).padStart(6, '0')}","meta":{"n":${i},"s":"t${i}","arr":[1,2.5,null]},"ratio":${i / 7}},` +
      `"dataOld":{},"commitTime":"2024-02-29T08:15:56.123456Z","lsn":"0/D48D648","xid":${1000 + i}}`;
    return { id, key: `{"id":${row}}`, body };
  });
}

interface Broker {
  readonly name: string;
  readonly events: number;
  /** Puts the messages where a consumer named `name` will read them; returns its options. */
  fill(name: string, batch: Message[]): Promise<ConsumerOptions>;
  close(): Promise<void>;
}

async function nats(): Promise<Broker> {
  const server = await startNats();
  const nc = await server.connect();
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: TOPIC, subjects: [`${TOPIC}.>`] });
  let run = 0;
  return {
    name: 'nats',
    events: EVENTS,
    async fill(name, batch) {
      // A new durable reads the stream from the start: only this run's events may be there. Ids
      // repeat between runs, so the message ids carry the run (the stream's duplicate window).
      await jsm.streams.purge(TOPIC);
      run++;
      // Core publishes (no PubAck each, so the fill stays out of the profile), then wait until all are stored.
      for (const m of batch) {
        const h = headers();
        h.set('Nats-Msg-Id', `${run}-${m.id}`);
        nc.publish(SUBJECT, m.body, { headers: h });
      }
      await nc.flush();
      while ((await jsm.streams.info(TOPIC)).state.messages < batch.length) await new Promise((r) => setTimeout(r, 50));
      return { broker: 'nats', servers: server.url, topic: TOPIC, name, tables: TABLES };
    },
    async close() {
      await nc.close();
      await server.stop();
    },
  };
}

async function kafka(): Promise<Broker> {
  const mock = await startKafkaMock();
  const client = new kafkajs.Kafka({ brokers: mock.bootstrap.split(','), logLevel: kafkajs.logLevel.NOTHING });
  const producer = client.producer();
  await producer.connect();
  let run = 0;
  return {
    name: 'kafka',
    events: EVENTS,
    async fill(name, batch) {
      const topic = `${SUBJECT}${run ? `_${run}` : ''}`;
      run++;
      for (let i = 0; i < batch.length; i += 2000) {
        await producer.send({ topic, acks: -1, messages: batch.slice(i, i + 2000).map((m) => ({ key: m.key, value: m.body, headers: { id: m.id } })) });
      }
      // Each run reads its own topic (the subject), named through topicsMap.
      return { broker: 'kafka', brokers: mock.bootstrap, topic: TOPIC, topicsMap: { public_transfers: topic.slice(TOPIC.length + 1) }, name, tables: TABLES };
    },
    async close() {
      await producer.disconnect();
      await mock.stop();
    },
  };
}

async function rabbitmq(): Promise<Broker> {
  const exchange = uniqueName('wl_bench_sdk');
  const model = await amqpConnect(RABBIT_URL);
  const channel = await model.createConfirmChannel();
  await channel.assertExchange(exchange, 'topic', { durable: true });
  const queues: string[] = [];
  return {
    name: 'rabbitmq',
    events: EVENTS,
    async fill(name, batch) {
      const queue = uniqueName(name);
      queues.push(queue);
      await channel.assertQueue(queue, { durable: true });
      await channel.bindQueue(queue, exchange, SUBJECT);
      for (const m of batch) channel.publish(exchange, SUBJECT, Buffer.from(m.body), { persistent: true, messageId: m.id, contentType: 'application/json' });
      await channel.waitForConfirms();
      return { broker: 'rabbitmq', url: RABBIT_URL, topic: exchange, name: queue, tables: TABLES };
    },
    async close() {
      await model.close();
      await cleanup({ queues, exchanges: [exchange] });
    },
  };
}

async function pubsub(): Promise<Broker> {
  const emulator = await startPubSubEmulator();
  const project = 'wl-bench';
  const admin = emulatorClient(emulator.host, project);
  const [topic] = await admin.createTopic(SUBJECT);
  const publisher = admin.topic(SUBJECT, { messageOrdering: true });
  const client = { apiEndpoint: emulator.host, emulatorMode: true, clientOptions: { universeDomain: 'googleapis.com' } };
  return {
    name: 'pubsub',
    events: Math.round(EVENTS / 4),
    async fill(name, batch) {
      // Pub/Sub keeps only what arrives after a subscription exists: create the consumer's first.
      await topic.createSubscription(`${name}-${SUBJECT}`, { enableMessageOrdering: true, ackDeadlineSeconds: 60 });
      await Promise.all(batch.map((m) => publisher.publishMessage({ data: Buffer.from(m.body), orderingKey: m.key, attributes: { id: m.id } })));
      return { broker: 'google_pubsub', projectId: project, client, topic: TOPIC, name, tables: TABLES };
    },
    async close() {
      await admin.close();
      await emulator.stop();
    },
  };
}

/** One drain: events/s from the first handled event to the last, and CPU µs per event. */
async function drain(options: ConsumerOptions, count: number): Promise<{ rate: number; cpuUs: number }> {
  let handled = 0;
  let first = 0;
  let cpu0 = process.cpuUsage();
  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  const consumer = createConsumer({ ...options, retry: { maxAttempts: 1 } });
  consumer.on('public.transfers', () => {
    if (handled++ === 0) {
      first = performance.now();
      cpu0 = process.cpuUsage();
    }
    if (handled === count) resolveDone();
  });
  await consumer.start();
  const timeout = setTimeout(() => resolveDone(), TIMEOUT_MS);
  await done;
  clearTimeout(timeout);
  const seconds = (performance.now() - first) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const stats = consumer.stats;
  await consumer.stop();
  if (handled < count) throw new Error(`${options.broker}: only ${handled} of ${count} events handled in ${TIMEOUT_MS} ms (${JSON.stringify(stats)})`);
  return { rate: (count - 1) / seconds, cpuUs: (cpu.user + cpu.system) / (count - 1) };
}

function decodeOnly(payload: Payload): { rate: number; cpuUs: number } {
  const decode = createDecoder({ format: 'native', tables: TABLES });
  const batch = messages(EVENTS, payload);
  for (const m of batch.slice(0, 2000)) decode(m.body, undefined);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  for (const m of batch) decode(m.body, undefined);
  const cpu = process.cpuUsage(cpu0);
  const seconds = (performance.now() - t0) / 1000;
  return { rate: EVENTS / seconds, cpuUs: (cpu.user + cpu.system) / EVENTS };
}

const rows: string[][] = [];
const report = (broker: string, payload: Payload, events: number, runs: { rate: number; cpuUs: number }[]): void => {
  const fmt = (n: number | undefined, digits = 0): string => (n === undefined ? '-' : n.toLocaleString('en-US', { maximumFractionDigits: digits }));
  rows.push([broker, payload, String(events), fmt(median(runs.map((r) => r.rate))), runs.map((r) => fmt(r.rate)).join(' / '), fmt(median(runs.map((r) => r.cpuUs)), 1)]);
  process.stderr.write(`[bench] ${broker} ${payload}: ${runs.map((r) => fmt(r.rate)).join(', ')} events/s\n`);
};

if (!only || only.includes('decode')) {
  for (const payload of PAYLOADS) report('decode only', payload, EVENTS, Array.from({ length: RUNS }, () => decodeOnly(payload)));
}
for (const start of [nats, kafka, rabbitmq, pubsub]) {
  if (only && !only.includes(start.name)) continue;
  const broker = await start();
  try {
    for (const payload of PAYLOADS) {
      const runs = [];
      for (let run = 0; run < RUNS; run++) {
        const batch = messages(broker.events, payload);
        const options = await broker.fill(`bench_${payload}_${run}`, batch);
        runs.push(await drain(options, batch.length));
      }
      report(broker.name, payload, broker.events, runs);
    }
  } finally {
    await broker.close();
  }
}
console.log('| broker | payload | events | events/s (median) | runs | CPU µs/event |');
console.log('|---|---|---:|---:|---|---:|');
for (const row of rows) console.log(`| ${row.join(' | ')} |`);
