/**
 * Issue 10 #10: the confirmed position goes to PostgreSQL as soon as it moved (at most once a
 * second), not with the heartbeat: with heartbeatInterval 1h, a published insert is confirmed in
 * the slot long before the heartbeat or the server's own status request (wal_sender_timeout / 2,
 * 30 s by default). The old daemon confirmed only with the heartbeat. Redeliveries per kill -9
 * before and after: bench/redeliveries.ts.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { parseLsn } from '../../src/sources/postgres/pgoutput.js';
import { databaseSection, startDaemon, type DaemonProcess } from '../support/daemon.js';
import { waitFor } from '../support/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

let db: TestDatabase;
let daemon: DaemonProcess | undefined;

before(async () => {
  db = await createTestDatabase('wl_ops_confirm');
  await db.sql('CREATE TABLE items (id int PRIMARY KEY)');
});

after(async () => {
  await daemon?.kill();
  await db?.drop();
});

test('with heartbeatInterval 1h, each published transaction is confirmed within seconds', async () => {
  const slot = db.slotName();
  daemon = await startDaemon({ listener: { slotName: slot, heartbeatInterval: '1h' }, database: databaseSection(db), publisher: { type: 'stdout', topic: 'confirm' } });
  for (let id = 1; id <= 3; id++) {
    await db.sql('INSERT INTO items VALUES ($1)', [id]);
    const event = await waitFor(`event ${id}`, () => daemon!.events().find((e) => (e.data as { id: number }).id === id), 15_000);
    await waitFor(`insert ${id} (commit ${String(event.lsn)}) confirmed`, async () => parseLsn((await db.confirmedFlush(slot)) ?? '0/0') > parseLsn(String(event.lsn)), 15_000, 100);
  }
  assert.equal(await daemon.stop(), 0);
  daemon = undefined;
});
