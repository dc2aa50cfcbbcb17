/**
 * PostgreSQL → the daemon (publisher.type google_pubsub, createTopics) → the Pub/Sub emulator →
 * subscriptions with message ordering. Workload: inserts, many updates of the same rows in separate
 * transactions, deletes. Every change must arrive; each row's changes must share one ordering key
 * (`{"id":N}`) and arrive in commit order; attribute id must be the event id.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { PubSub } from '@google-cloud/pubsub';
import { assertKeyedOrder, CHANGES_PER_USER, createKeyedTables, ORDER_CHANGES, type PublishedEvent, ROWS, runKeyedWorkload } from '../support/workload.js';
import { databaseSection, startDaemon, type DaemonProcess } from '../support/daemon.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import { emulatorClient, startPubSubEmulator, subscribeOrdered, type OrderedSubscription, type PubSubEmulator } from '../support/pubsub.js';

const PROJECT = 'wl-e2e';

/** "X/Y" LSN as a bigint, for ordering. */

describe('Google Pub/Sub end to end through the daemon', () => {
  let db: TestDatabase;
  let emulator: PubSubEmulator;
  let admin: PubSub | undefined;
  const subscriptions: OrderedSubscription[] = [];
  let daemon: DaemonProcess | undefined;

  before(async () => {
    [db, emulator] = await Promise.all([createTestDatabase('wlpubsub'), startPubSubEmulator()]);
    await createKeyedTables(db);
    admin = emulatorClient(emulator.host, PROJECT);
  });

  after(async () => {
    await daemon?.kill();
    for (const sub of subscriptions) await sub.close();
    await admin?.close().catch(() => undefined);
    await Promise.all([db?.drop(), emulator?.stop()]);
  });

  it('delivers inserts, updates and deletes with one ordering key per row, in commit order, with the event id', async () => {
    // Pub/Sub keeps only what arrives after a subscription exists, and a subscription needs its
    // topic: create both before the daemon publishes (the daemon finds the topics and uses them).
    for (const topic of ['wal.public_users', 'wal.public_orders']) subscriptions.push(await subscribeOrdered(admin!, topic, `${topic.replace('.', '_')}_sub`));
    daemon = await startDaemon(
      {
        listener: { slotName: db.slotName('pubsub'), publication: 'pubsub_pub' },
        database: databaseSection(db),
        publisher: { type: 'google_pubsub', topic: 'wal', pubSubProjectId: PROJECT, createTopics: true },
      },
      { env: { PUBSUB_EMULATOR_HOST: emulator.host } },
    );

    await runKeyedWorkload(db);

    const userChanges = ROWS * CHANGES_PER_USER;
    const orderChanges = ORDER_CHANGES;
    const [users, orders] = subscriptions as [OrderedSubscription, OrderedSubscription];
    await Promise.all([users.waitForIds(userChanges, 60_000), orders.waitForIds(orderChanges, 60_000)]);

    // At least once: a redelivered copy carries the same id and is dropped here, as consumers do.
    const byKey = new Map<string, PublishedEvent[]>();
    const seen = new Set<string>();
    for (const [topic, sub] of [['wal.public_users', users], ['wal.public_orders', orders]] as const) {
      for (const message of sub.received) {
        const event = JSON.parse(message.data) as PublishedEvent;
        assert.ok(event.id, 'every event has an id');
        assert.deepEqual(message.attributes, { id: event.id, lsn: event.lsn, table: `public.${event.table}`, action: event.action }, 'attribute id is the event id');
        assert.equal(`wal.public_${event.table}`, topic);
        const row = event.action === 'DELETE' ? event.dataOld.id : event.data.id;
        assert.equal(message.orderingKey, JSON.stringify({ id: row }), `ordering key of ${event.action} ${event.table} ${String(row)}`);
        if (seen.has(event.id)) continue;
        seen.add(event.id);
        const k = `${topic} ${message.orderingKey}`;
        byKey.set(k, [...(byKey.get(k) ?? []), event]);
      }
    }
    assert.equal(seen.size, userChanges + orderChanges, 'every change arrives');
    assert.equal(byKey.size, ROWS + 2);

    for (const [k, events] of byKey) {
      assertKeyedOrder(k, events);
    }

    assert.ok(daemon.logs().some((r) => r.msg === 'Pub/Sub publisher ready' && r.emulator === true), 'the daemon published through the emulator');
    assert.doesNotMatch(daemon.stderr(), /MetadataLookupWarning/, 'no GCE metadata probe with the emulator');
    const code = await daemon.stop();
    daemon = undefined;
    assert.equal(code, 0);
  });
});
