/**
 * The consumer SDK on RabbitMQ (the machine's broker): a durable queue the consumer declares and
 * binds to the daemon's exchange with the tables' routing keys. The daemon's re-sent copies after
 * its restart are queued again; the consumer skips them. Dead letter: the queue's
 * x-dead-letter-exchange, with a queue bound to it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { runDeadLetterScenario } from '../support/consumer-dead-letter.js';
import { runConsumerScenario } from '../support/consumer-scenario.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import { cleanup, consumeMessages, RABBIT_URL, uniqueName } from '../support/rabbitmq.js';

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
});
