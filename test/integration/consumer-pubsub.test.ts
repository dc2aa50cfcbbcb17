/**
 * The consumer SDK on Google Pub/Sub (a private emulator): subscriptions with message ordering
 * that the consumer creates before the daemon publishes. The daemon's re-sent copies after its
 * restart are delivered again; the consumer skips them. Dead letter: the consumer publishes the
 * change to a topic (the emulator's own dead-letter forwarding breaks the subscription's stream).
 */
import { after, before, describe, it } from 'node:test';
import { DL_TOPIC, runDeadLetterScenario } from '../support/consumer-dead-letter.js';
import { runConsumerScenario } from '../support/consumer-scenario.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import { emulatorClient, startPubSubEmulator, subscribeOrdered, type PubSubEmulator } from '../support/pubsub.js';

const PROJECT = 'wl-sdk';

describe('consumer SDK on Google Pub/Sub', () => {
  let db: TestDatabase;
  let emulator: PubSubEmulator;

  before(async () => {
    [db, emulator] = await Promise.all([createTestDatabase('wl_sdk_pubsub'), startPubSubEmulator()]);
  });

  after(async () => {
    await Promise.all([db?.drop(), emulator?.stop()]);
  });

  it('hands every change to its handler once, typed, in per-key order, across failures and a daemon kill -9', async () => {
    await runConsumerScenario(db, {
      publisher: { type: 'google_pubsub', topic: 'sdk', pubSubProjectId: PROJECT },
      daemonEnv: { PUBSUB_EMULATOR_HOST: emulator.host },
      consumerFirst: true,
      consumerOptions: (shared) => ({
        ...shared,
        broker: 'google_pubsub',
        projectId: PROJECT,
        topic: 'sdk',
        client: { apiEndpoint: emulator.host, emulatorMode: true, clientOptions: { universeDomain: 'googleapis.com' } },
      }),
    });
  });

  it('dead-letters a change that keeps failing to a topic, or stops and leaves it for the next consumer', async () => {
    const admin = emulatorClient(emulator.host, PROJECT);
    const client = { apiEndpoint: emulator.host, emulatorMode: true, clientOptions: { universeDomain: 'googleapis.com' } };
    const dead = await subscribeOrdered(admin, 'sdk-dead', 'sdk-dead-sub');
    try {
      await runDeadLetterScenario(db, {
        publisher: { type: 'google_pubsub', topic: DL_TOPIC, pubSubProjectId: PROJECT },
        daemonEnv: { PUBSUB_EMULATOR_HOST: emulator.host },
        consumerOptions: (shared, deadLetter) => ({ ...shared, broker: 'google_pubsub', projectId: PROJECT, topic: DL_TOPIC, client, ...(deadLetter ? { deadLetterTopic: 'sdk-dead' } : {}) }),
        async readDeadLetter() {
          await dead.waitForIds(1);
          return { body: dead.received[0]!.data, error: dead.received[0]!.attributes.error ?? '' };
        },
      });
    } finally {
      await dead.close();
      await admin.close();
    }
  });
});
