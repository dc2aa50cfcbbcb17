/**
 * Pub/Sub faults through the real daemon (issue 9, items 3 and 6), on the emulator: killed (every
 * topic and subscription gone) and started again on the same port, and frozen (SIGSTOP) between
 * two updates of a row. The figures of the outage are printed; `scripts/outage-runs.ts`
 * repeats it.
 *
 * The daemon runs without createTopics and the test creates the topics with their subscriptions,
 * before the daemon starts and again right after the restart: Pub/Sub keeps only what arrives
 * after a subscription exists, so a topic re-created by the daemon could take messages before the
 * test subscribes. The daemon reaches the emulator through a TCP proxy (its address stays the
 * same): killing closes the proxy's port with the emulator, and the port opens again only once the
 * restarted emulator has the topics and subscriptions, since a publish in between would be dropped.
 * (A topic that existed and is gone is retried, not fatal.) The broker's "return" is measured from
 * the port's opening. Holding the daemon with SIGSTOP instead, as this test once did, froze it for
 * as long as the emulator took to start (over 3 s under load): the leader then fences itself on
 * waking, as a stalled leader must (src/ha/elector.ts), which is not the fault under test.
 */
import { after, before } from 'node:test';
import type { PubSub } from '@google-cloud/pubsub';
import { brokerFaultTests, type BrokerUnderTest } from '../support/outage.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { emulatorClient, startPubSubEmulator, subscribeOrdered, type OrderedSubscription, type PubSubEmulator } from '../support/pubsub.js';
import type { PublishedEvent } from '../support/workload.js';

const PROJECT = 'wl-faults';
let emulator: PubSubEmulator;
/** The daemon's way to the emulator. */
let proxy: TcpProxy;
let admin: PubSub;
const subscriptions = new Map<string, OrderedSubscription>();

before(async () => {
  emulator = await startPubSubEmulator();
  proxy = await startTcpProxy(emulator.port);
  admin = emulatorClient(emulator.host, PROJECT);
});
after(async () => {
  for (const sub of subscriptions.values()) await sub.close();
  await admin?.close().catch(() => undefined);
  await proxy?.stop();
  await emulator?.stop();
});

async function subscribe(topics: readonly string[]): Promise<void> {
  for (const topic of topics) subscriptions.set(topic, await subscribeOrdered(admin, topic, `${topic.replace('.', '_')}_sub`));
}

const pubsub: BrokerUnderTest = {
  publisher: () => ({ type: 'google_pubsub', pubSubProjectId: PROJECT }),
  env: () => ({ PUBSUB_EMULATOR_HOST: `127.0.0.1:${proxy.port}` }),
  prepare: subscribe,
  async read(topics, count) {
    const events: PublishedEvent[] = [];
    for (const topic of topics) {
      const sub = subscriptions.get(topic)!;
      await sub.waitForIds(count, 30_000);
      // A redelivery by the subscription keeps Pub/Sub's message id; a publish re-sent by the daemon is a new message.
      const seen = new Set<string>();
      for (const m of sub.received) {
        if (seen.has(m.messageId)) continue;
        seen.add(m.messageId);
        events.push(JSON.parse(m.data) as PublishedEvent);
      }
    }
    return events;
  },
  async kill() {
    await proxy.down();
    await emulator.stop();
    for (const sub of subscriptions.values()) void sub.close();
    subscriptions.clear();
    void admin.close().catch(() => undefined);
  },
  async restart(topics) {
    emulator = await startPubSubEmulator(emulator.port);
    admin = emulatorClient(emulator.host, PROJECT);
    await subscribe(topics);
    await proxy.up(emulator.port);
  },
  freeze: () => emulator.freeze(),
  thaw: () => emulator.thaw(),
};

brokerFaultTests('google_pubsub', 'Pub/Sub emulator', pubsub);
