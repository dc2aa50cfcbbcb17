/**
 * The consumer SDK on Kafka: a consumer group on the tables' topics (librdkafka's mock cluster, 3
 * brokers). Kafka keeps the daemon's re-sent copies after its restart; the consumer skips them.
 * Dead letter: a topic of the consumer's choosing.
 */
import { after, before, describe, it } from 'node:test';
import { DL_TOPIC, runDeadLetterScenario } from '../support/consumer-dead-letter.js';
import { runConsumerScenario } from '../support/consumer-scenario.js';
import { consumeAll, startKafkaMock, type KafkaMock } from '../support/kafka.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

describe('consumer SDK on Kafka', () => {
  let db: TestDatabase;
  let mock: KafkaMock;

  before(async () => {
    [db, mock] = await Promise.all([createTestDatabase('wl_sdk_kafka'), startKafkaMock()]);
  });

  after(async () => {
    await Promise.all([db?.drop(), mock?.stop()]);
  });

  it('hands every change to its handler once, typed, in per-key order, across failures and a daemon kill -9', async () => {
    await runConsumerScenario(db, {
      publisher: { type: 'kafka', address: mock.bootstrap, topic: 'sdk' },
      consumerFirst: true,
      consumerOptions: (shared) => ({ ...shared, broker: 'kafka', brokers: mock.bootstrap, topic: 'sdk' }),
    });
  });

  it('dead-letters a change that keeps failing to a topic, or stops and leaves it for the next consumer', async () => {
    await runDeadLetterScenario(db, {
      publisher: { type: 'kafka', address: mock.bootstrap, topic: DL_TOPIC },
      consumerOptions: (shared, deadLetter) => ({
        ...shared,
        broker: 'kafka',
        brokers: mock.bootstrap,
        topic: DL_TOPIC,
        // The mock ignores a member leaving: the next member of the group waits for the old one's session to time out.
        consumer: { sessionTimeout: 6000, rebalanceTimeout: 3000, heartbeatInterval: 500 },
        ...(deadLetter ? { deadLetterTopic: 'dead' } : {}),
      }),
      async readDeadLetter() {
        const [record] = await consumeAll(mock.bootstrap, ['dead'], 1);
        return { body: record!.value, error: record!.headers.error ?? '' };
      },
    });
  });
});
