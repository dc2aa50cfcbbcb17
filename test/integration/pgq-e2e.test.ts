/**
 * PgQ → daemon → broker, end to end (issue 17's acceptance tests). The source itself is also
 * tested through a RecordingSink in pgq-source, pgq-redelivery and pgq-failures, and the pika
 * script in pgq-pika.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ConsumeMessage } from 'amqplib';
import { jetstreamManager } from '@nats-io/jetstream';
import { eventIdOf } from '../../src/sources/pgq/ids.js';
import { databaseSection, startDaemon, type DaemonProcess } from '../support/daemon.js';
import { startNats } from '../support/nats.js';
import { consumerInfo, pgqFixture } from '../support/pgq.js';
import { waitFor } from '../support/ports.js';
import { startAmqpDump } from '../support/pika.js';
import { cleanup, consumeMessages, declareBoundQueue, queueDepth, RABBIT_URL, uniqueName } from '../support/rabbitmq.js';

const fixture = pgqFixture('wl_pgq_e2e', ['test', 'jobs', 'nats_q']);

async function startPgqDaemon(config: Record<string, unknown>): Promise<DaemonProcess> {
  const daemon = await startDaemon(
    { source: { type: 'pgq' }, database: databaseSection(fixture.db), ...config },
    { waitForStreaming: false },
  );
  await daemon.waitForLog(/^reading PgQ queue/, 60_000);
  return daemon;
}

test("mikkoo's example through the daemon to RabbitMQ, read by pika", async () => {
  const exchange = uniqueName('wl_pgq_e2e');
  const queue = uniqueName('wl_pgq_e2e_q');
  const daemon = await startPgqDaemon({ publisher: { type: 'rabbitmq', address: RABBIT_URL, topic: 'unused_exchange' }, pgq: { queue: 'test' } });
  try {
    await declareBoundQueue(exchange, queue);
    const dump = startAmqpDump({ queue, count: 1 });
    await dump.ready;
    await fixture.db.sql(`SELECT pgq.insert_event('test', 'test.routing-key', '{"foo": "bar"}', $1, 'application/json', '{"type": "example"}', '')`, [exchange]);
    const { messages, code, stderr } = await dump.done;
    assert.equal(code, 0, stderr);
    const got = messages[0]!;
    assert.equal(got.exchange, exchange);
    assert.equal(got.routing_key, 'test.routing-key');
    assert.equal(got.body, '{"foo": "bar"}');
    assert.equal(got.properties.content_type, 'application/json');
    assert.equal(got.properties.type, 'example');
    assert.equal(got.properties.delivery_mode, 2);
    assert.deepEqual(Object.keys(got.headers).sort(), ['origin', 'sequence', 'timestamp', 'txid']);
  } finally {
    await daemon.stop();
    await cleanup({ queues: [queue], exchanges: [exchange] });
  }
});

test('10,000 events from 3 producers, kill -9 of the daemon at 5 random moments: every event delivered, duplicates only with the same id, audit = delivered', async () => {
  const exchange = uniqueName('wl_pgq_kill');
  const queue = uniqueName('wl_pgq_kill_q');
  await declareBoundQueue(exchange, queue);
  const config = { publisher: { type: 'rabbitmq', address: RABBIT_URL, topic: exchange, onReject: 'deadLetter' }, pgq: { queue: 'jobs', audit: true } };
  let daemon = await startPgqDaemon(config);
  const produce = async (p: number, count: number): Promise<void> => {
    const client = await fixture.db.client();
    try {
      for (let n = 0; n < count; n += 50) {
        await client.query("SELECT pgq.insert_event('jobs', 'job', json_build_object('p', $1::int, 'n', g)::text) FROM generate_series($2::int, $3::int) g", [p, n, Math.min(n + 50, count) - 1]);
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      await client.end();
    }
  };
  const perProducer = [3334, 3333, 3333];
  const producers = Promise.all(perProducer.map((count, p) => produce(p, count)));
  try {
    for (let kill = 0; kill < 5; kill++) {
      await new Promise((r) => setTimeout(r, 300 + Math.random() * 1200));
      await daemon.kill();
      daemon = await startPgqDaemon(config);
    }
    await producers;
    const key = (m: ConsumeMessage) => m.content.toString();
    // Distinct events counted as messages arrive: a count over every message at each arrival was
    // quadratic, and with the re-deliveries of 5 kills (about 30,000 messages) it took longer than
    // the timeout on a busy machine, which read as events missing.
    const distinct = new Set<string>();
    let counted = 0;
    const allEvents = (all: readonly ConsumeMessage[]): boolean => {
      for (; counted < all.length; counted++) distinct.add(key(all[counted]!));
      return distinct.size === 10_000;
    };
    const got = await consumeMessages(queue, allEvents, 180_000, 2_000).catch(async (err: Error) => {
      // Say what is missing and where PgQ stands, so a failure can be told apart: lost, or still coming.
      const seen = new Set([...distinct].map((text) => {
        const body = JSON.parse(text) as { p: number; n: number };
        return `${body.p}/${body.n}`;
      }));
      const missing: string[] = [];
      perProducer.forEach((count, p) => {
        for (let n = 0; n < count; n++) if (!seen.has(`${p}/${n}`)) missing.push(`${p}/${n}`);
      });
      const info = await consumerInfo(fixture.db, 'jobs').catch((e: Error) => e.message);
      const retry = (await fixture.db.sql('SELECT count(*)::int AS n FROM pgq.retry_queue').catch(() => ({ rows: [{ n: '?' }] }))).rows[0]?.n;
      const depth = await queueDepth(queue).catch((e: Error) => e.message);
      throw new Error(`${err.message}; ${seen.size} distinct events, ${missing.length} missing (first: ${missing.slice(0, 10).join(', ')}); consumer ${JSON.stringify(info)}; retry queue ${String(retry)}; ${String(depth)} messages still in the queue; pgqd: ${fixture.ticker.log().slice(-1000)}\n--- daemon ---\n${daemon.stderr().slice(-4000)}`);
    });
    const ids = new Map<string, Set<string>>();
    for (const m of got) (ids.get(key(m)) ?? ids.set(key(m), new Set()).get(key(m))!).add(String(m.properties.messageId));
    assert.equal(ids.size, 10_000);
    for (const [event, set] of ids) assert.equal(set.size, 1, `${event}: one id`);
    await daemon.stop();
    const audit = (await fixture.db.sql("SELECT message_id::text FROM wal_listener.audit WHERE queue = 'jobs'")).rows.map((r) => r.message_id as string);
    assert.equal(audit.length, 10_000, 'audit rows = delivered events');
    assert.deepEqual(new Set(audit), new Set(got.map((m) => String(m.properties.messageId))));
  } finally {
    await daemon.kill();
    await cleanup({ queues: [queue], exchanges: [exchange] });
  }
});

test('NATS: subject <ev_extra1 or topic>.<ev_type>, payload byte for byte, properties and headers as headers', async () => {
  const nats = await startNats();
  const nc = await nats.connect();
  const daemon = await startPgqDaemon({ publisher: { type: 'nats', address: nats.url, topic: 'relay' }, pgq: { queue: 'nats_q' } });
  try {
    await fixture.db.sql(`SELECT pgq.insert_event('nats_q', 'order.created', '{"id": 1}', NULL, 'application/json', '{"type": "example"}', '{"tenant": "acme"}')`);
    const jsm = await jetstreamManager(nc);
    const stored = await waitFor('the message in stream relay', async () => (await jsm.streams.getMessage('relay', { seq: 1 }).catch(() => null)) ?? undefined, 60_000).catch(async (err: Error) => {
      const info = await consumerInfo(fixture.db, 'nats_q');
      throw new Error(`${err.message}; consumer ${JSON.stringify(info)}; pgqd: ${fixture.ticker.log().slice(-1000)}\n--- daemon ---\n${daemon.stderr().slice(-3000)}`);
    });
    assert.equal(stored.subject, 'relay.order.created');
    assert.equal(stored.string(), '{"id": 1}');
    assert.equal(stored.header.get('content_type'), 'application/json');
    assert.equal(stored.header.get('type'), 'example');
    assert.equal(stored.header.get('tenant'), 'acme');
    assert.ok(stored.header.get('sequence') && stored.header.get('txid') && stored.header.get('origin'));
    const id = stored.header.get('Nats-Msg-Id');
    assert.ok(eventIdOf(id.slice(0, 15), id), 'the dedup id names the event');
  } finally {
    await daemon.stop();
    await nc.close();
    await nats.stop();
  }
});
