/**
 * The consumer SDK on Google Pub/Sub (a private emulator): subscriptions with message ordering
 * that the consumer creates before the daemon publishes. The daemon's re-sent copies after its
 * restart are delivered again; the consumer skips them.
 */
import { after, before, describe, it } from 'node:test';
import { runConsumerScenario } from '../support/consumer-scenario.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import { startPubSubEmulator, type PubSubEmulator } from '../support/pubsub.js';

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
});
