/**
 * The consumer SDK on RabbitMQ (the machine's broker): a durable queue the consumer declares and
 * binds to the daemon's exchange with the tables' routing keys. The daemon's re-sent copies after
 * its restart are queued again; the consumer skips them. Dead letter: the queue's
 * x-dead-letter-exchange, with a queue bound to it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { createConsumer } from '../../src/consumer/index.js';
import { runDeadLetterScenario } from '../support/consumer-dead-letter.js';
import { runConsumerScenario } from '../support/consumer-scenario.js';
import { databaseSection, startDaemon } from '../support/daemon.js';
import { waitFor } from '../support/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import { cleanup, closeConnectionsNamed, consumeMessages, RABBIT_URL, uniqueName } from '../support/rabbitmq.js';

describe('consumer SDK on RabbitMQ', () => {
  let db: TestDatabase;
  const exchange = uniqueName('wl_sdk_rmq');
  let queue = '';

  before(async () => {
    db = await createTestDatabase('wl_sdk_rmq');
  });

  after(async () => {
    await db?.drop();
    await cleanup({ queues: [queue], exchanges: [exchange] });
  });

  it('hands every change to its handler once, typed, in per-key order, across failures and a daemon kill -9', async () => {
    await runConsumerScenario(db, {
      publisher: { type: 'rabbitmq', address: RABBIT_URL, topic: exchange },
      consumerFirst: true,
      consumerOptions: (shared) => {
        queue = shared.name;
        return { ...shared, broker: 'rabbitmq', url: RABBIT_URL, topic: exchange };
      },
    });
  });

  it('dead-letters a change that keeps failing through the queue\'s dead-letter exchange, or stops and leaves it for the next consumer', async () => {
    const dlExchange = uniqueName('wl_sdk_rmq_dl');
    const dlx = `${dlExchange}_dlx`;
    const queues: string[] = [];
    try {
      await runDeadLetterScenario(db, {
        publisher: { type: 'rabbitmq', address: RABBIT_URL, topic: dlExchange },
        consumerOptions: (shared, deadLetter) => {
          queues.push(shared.name, `${shared.name}.dead-letter`);
          return { ...shared, broker: 'rabbitmq', url: RABBIT_URL, topic: dlExchange, ...(deadLetter ? { deadLetterExchange: dlx } : {}) };
        },
        async readDeadLetter() {
          const [message] = await consumeMessages(queues[1]!, 1);
          // RabbitMQ records why and from where it dead-lettered the message; the handler's error goes to onError.
          const death = (message!.properties.headers?.['x-death'] as { reason?: string; queue?: string }[] | undefined)?.[0];
          assert.deepEqual([death?.reason, death?.queue], ['rejected', queues[0]]);
          return { body: message!.content.toString('utf8'), error: undefined };
        },
      });
    } finally {
      await cleanup({ queues, exchanges: [dlExchange, dlx] });
    }
  });

  it('reconnects when the broker closes its connection, and handles every change once', async () => {
    await db.sql('CREATE TABLE steady (id int PRIMARY KEY)');
    const topic = uniqueName('wl_sdk_rmq_rc');
    const name = uniqueName('wl_sdk_rmq_rcq');
    const handled = new Map<number, number>();
    const reported: Error[] = [];
    const consumer = createConsumer({
      broker: 'rabbitmq',
      url: RABBIT_URL,
      topic,
      name,
      tables: { 'public.steady': { columns: { id: 'int4' }, key: ['id'] } },
      onError: (e) => reported.push(e),
    });
    // Changes after the 20th wait until the connection is gone, so they are unacknowledged when it goes.
    let connectionGone!: () => void;
    const gone = new Promise<void>((resolve) => (connectionGone = resolve));
    consumer.on<{ id: number }>('public.steady', async (change) => {
      if (change.after!.id > 20) await gone;
      handled.set(change.after!.id, (handled.get(change.after!.id) ?? 0) + 1);
    });
    await consumer.start();
    const daemon = await startDaemon({ listener: { slotName: db.slotName('rc'), publication: 'rc_pub' }, database: databaseSection(db), publisher: { type: 'rabbitmq', address: RABBIT_URL, topic } });
    try {
      // One transaction: the daemon publishes all of it at once, and the consumer holds most of it unacknowledged.
      await db.sql('INSERT INTO steady SELECT generate_series(1, 200)');
      await waitFor('20 changes handled', () => handled.size >= 20, 30_000, 20);
      assert.equal(await closeConnectionsNamed(`wal-listener-consumer:${name}`, 'consumer reconnect test'), 1);
      connectionGone();
      await waitFor(`every change handled (have ${handled.size})`, () => handled.size === 200, 30_000, 20);
      // After the reconnect RabbitMQ delivers again what was unacknowledged when the connection went.
      await waitFor('redelivered changes skipped', () => consumer.stats.duplicates > 0, 30_000, 20);
      await delay(500);
      assert.deepEqual([...handled.values()].filter((n) => n !== 1), [], 'each change handled once');
      assert.ok(reported.some((e) => (e as { code?: string }).code === 'WAL_CONSUMER_CONNECTION_LOST'), 'the lost connection was reported');
      assert.equal(consumer.stats.handled, 200);
      assert.equal(consumer.stats.received, 200 + consumer.stats.duplicates);
    } finally {
      await daemon.kill();
      await consumer.stop();
      await cleanup({ queues: [name], exchanges: [topic] });
    }
  });
});
