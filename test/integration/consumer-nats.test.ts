/**
 * The consumer SDK on NATS JetStream: a durable pull consumer on the daemon's stream (a private
 * nats-server). The stream's duplicate window is 1 s here (publisher.duplicateWindow), shorter
 * than the daemon's restart, so the daemon's re-sent copies are stored and reach the consumer,
 * which must skip them itself (with the default 1 h window JetStream drops them first).
 * Dead letter: a copy to a subject (here captured by a stream), then `term`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { BrokerSetupError, createConsumer } from '../../src/consumer/index.js';
import { DL_TOPIC, runDeadLetterScenario } from '../support/consumer-dead-letter.js';
import { runConsumerScenario } from '../support/consumer-scenario.js';
import { readStream, startNats, type NatsServer } from '../support/nats.js';
import { waitFor } from '../support/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

describe('consumer SDK on NATS JetStream', () => {
  let db: TestDatabase;
  let nats: NatsServer;

  before(async () => {
    [db, nats] = await Promise.all([createTestDatabase('wl_sdk_nats'), startNats()]);
  });

  after(async () => {
    await Promise.all([db?.drop(), nats?.stop()]);
  });

  it('hands every change to its handler once, typed, in per-key order, across failures and a daemon kill -9', async () => {
    await runConsumerScenario(db, {
      publisher: { type: 'nats', address: nats.url, topic: 'sdk', duplicateWindow: '1s' },
      consumerFirst: false,
      pauseBeforeRestartMs: 1500,
      consumerOptions: (shared) => ({ ...shared, broker: 'nats', servers: nats.url, topic: 'sdk' }),
    });
  });

  it('dead-letters a change that keeps failing (copy to a subject, then term), or stops and leaves it for the next consumer', async () => {
    const nc = await nats.connect();
    try {
      await (await jetstreamManager(nc)).streams.add({ name: 'dead', subjects: ['dead.>'] });
      await runDeadLetterScenario(db, {
        publisher: { type: 'nats', address: nats.url, topic: DL_TOPIC },
        consumerOptions: (shared, deadLetter) => ({ ...shared, broker: 'nats', servers: nats.url, topic: DL_TOPIC, ...(deadLetter ? { deadLetter: { subject: 'dead.poison' } } : {}) }),
        async readDeadLetter() {
          const [message] = await waitFor('a dead letter', async () => {
            const stored = await readStream(nc, 'dead').catch(() => []);
            return stored.length > 0 ? stored : undefined;
          });
          assert.equal(message!.msgId, (message!.json as { id: string }).id, 'the copy keeps Nats-Msg-Id = event id');
          return { body: message!.raw, error: message!.headers?.get('Wal-Listener-Error') ?? '' };
        },
      });
    } finally {
      await nc.close();
    }
  });

  it('refuses to start before the daemon has created the stream, naming it', async () => {
    const consumer = createConsumer({ broker: 'nats', servers: nats.url, topic: 'not_yet', name: 'early' }).on('public.t', () => undefined);
    await assert.rejects(consumer.start(), (err: Error) => err instanceof BrokerSetupError && err.code === 'WAL_CONSUMER_SETUP' && /stream not_yet does not exist/.test(err.message));
    await consumer.closed;
  });
});
