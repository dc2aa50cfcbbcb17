/**
 * Outbox → Google Pub/Sub (the emulator; issue 13): goharvest's outbox table, logical messages and
 * the wal-listener/outbox stasher, 1,000 records each (test/support/outbox-workload.ts). The topic
 * column names the Pub/Sub topic, the key is the ordering key, the header arrays are attributes,
 * the value the data byte for byte; attribute `id` is the stable id.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { PubSub } from '@google-cloud/pubsub';
import { databaseSection, startDaemon, type DaemonProcess } from '../support/daemon.js';
import { assertOutboxDelivery, committed, createOutboxTable, WAYS, writeOutbox, type WrittenRecord } from '../support/outbox-workload.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import { emulatorClient, startPubSubEmulator, subscribeOrdered, type OrderedSubscription, type PubSubEmulator } from '../support/pubsub.js';

const PROJECT = 'wl-obx';
const TOPICS = ['wl_obx_orders', 'wl_obx_payments', 'wl_obx_users'] as const;

let db: TestDatabase;
let emulator: PubSubEmulator;
let admin: PubSub | undefined;
const subscriptions: OrderedSubscription[] = [];
let daemon: DaemonProcess | undefined;

before(async () => {
  [db, emulator] = await Promise.all([createTestDatabase('wl_obx_pubsub'), startPubSubEmulator()]);
  await createOutboxTable(db);
  admin = emulatorClient(emulator.host, PROJECT);
});

after(async () => {
  await daemon?.kill();
  for (const sub of subscriptions) await sub.close();
  await admin?.close().catch(() => undefined);
  await Promise.all([db?.drop(), emulator?.stop()]);
});

test('every committed outbox record arrives once per id attribute with topic, ordering key, data bytes and attributes, in key order', async () => {
  // Pub/Sub keeps only what arrives after a subscription exists: subscribe first.
  for (const topic of TOPICS) subscriptions.push(await subscribeOrdered(admin!, topic, `${topic}_sub`));
  daemon = await startDaemon(
    {
      listener: { slotName: db.slotName('obx'), publication: 'wl_obx_pubsub', outbox: [{ table: 'public.outbox' }] },
      database: databaseSection(db),
      publisher: { type: 'google_pubsub', topic: 'wl_obx', pubSubProjectId: PROJECT },
    },
    { env: { PUBSUB_EMULATOR_HOST: emulator.host } },
  );
  const written: WrittenRecord[] = [];
  for (const way of WAYS) written.push(...(await writeOutbox(db, way, TOPICS)));
  const perTopic = TOPICS.map((topic) => written.filter((r) => !r.rolledBack && r.topic === topic).length);
  assert.equal(perTopic.reduce((a, b) => a + b), committed(written));
  await Promise.all(subscriptions.map((sub, i) => sub.waitForIds(perTopic[i]!, 60_000)));
  await new Promise((r) => setTimeout(r, 500)); // nothing more may arrive
  assertOutboxDelivery(
    'Pub/Sub',
    written,
    subscriptions.flatMap((sub, i) => sub.received.map((m) => ({ id: m.attributes.id ?? '', topic: TOPICS[i]!, key: m.orderingKey, payload: Buffer.from(m.data, 'utf8'), headers: m.attributes }))),
    ['id', 'lsn', 'table', 'action'],
  );
  assert.equal(await daemon.stop(), 0);
  daemon = undefined;
});
