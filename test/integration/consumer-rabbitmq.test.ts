/**
 * The consumer SDK on RabbitMQ (the machine's broker): a durable queue the consumer declares and
 * binds to the daemon's exchange with the tables' routing keys. The daemon's re-sent copies after
 * its restart are queued again; the consumer skips them.
 */
import { after, before, describe, it } from 'node:test';
import { runConsumerScenario } from '../support/consumer-scenario.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import { cleanup, RABBIT_URL, uniqueName } from '../support/rabbitmq.js';

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
});
