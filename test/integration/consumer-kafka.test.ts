/**
 * The consumer SDK on Kafka: a consumer group on the tables' topics (librdkafka's mock cluster, 3
 * brokers). Kafka keeps the daemon's re-sent copies after its restart; the consumer skips them.
 */
import { after, before, describe, it } from 'node:test';
import { runConsumerScenario } from '../support/consumer-scenario.js';
import { startKafkaMock, type KafkaMock } from '../support/kafka.js';
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
});
