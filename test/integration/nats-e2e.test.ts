/**
 * End to end with NATS JetStream: real PostgreSQL → the daemon (child process) → a private
 * nats-server. Subjects, filter, topicsMap, wal-listener's JSON fields and Nats-Msg-Id = id.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { parseLsn } from '../../src/sources/postgres/pgoutput.js';
import { databaseSection, startDaemon, type DaemonProcess } from '../support/daemon.js';
import { readStream, startNats, streamCount, type NatsServer } from '../support/nats.js';
import { waitFor } from '../support/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import type { NatsConnection } from '@nats-io/transport-node';

let db: TestDatabase;
let nats: NatsServer;
let nc: NatsConnection;
let daemon: DaemonProcess | undefined;
const TOPIC = 'e2e_events';

before(async () => {
  db = await createTestDatabase('wl_nats');
  nats = await startNats();
  nc = await nats.connect();
  await db.sql(`
    CREATE SCHEMA audit;
    CREATE TABLE users (id int PRIMARY KEY, email text, profile jsonb, active bool, score int8);
    CREATE TABLE orders (id int PRIMARY KEY, user_id int, total numeric);
    CREATE TABLE audit.users (id int PRIMARY KEY, note text);
    CREATE TABLE ignored (id int PRIMARY KEY);
  `);
});

after(async () => {
  await daemon?.kill();
  await nc?.close();
  await nats?.stop();
  await db?.drop();
});

test('changes across tables arrive with the right subjects, fields, filter and topicsMap', async () => {
  const slot = db.slotName();
  daemon = await startDaemon({
    listener: {
      slotName: slot,
      filter: { tables: { users: ['insert', 'update', 'delete'], orders: null, 'audit.users': ['delete'] } },
      topicsMap: { public_orders: 'orders_feed' },
    },
    database: databaseSection(db),
    publisher: { type: 'nats', address: nats.url, topic: TOPIC, topicPrefix: 'app_' },
  });

  await db.sql(`
    INSERT INTO users VALUES (1, 'a@b.c', '{"tags":["x"],"n":1.5}', true, 9007199254740993), (2, NULL, NULL, NULL, NULL);
    INSERT INTO orders VALUES (10, 1, 12.50);
    INSERT INTO audit.users VALUES (1, 'filtered: inserts of audit.users are not wanted');
    INSERT INTO ignored VALUES (1);
  `);
  await db.sql(`UPDATE users SET email = 'new@b.c' WHERE id = 1`);
  await db.sql(`UPDATE users SET id = 3 WHERE id = 2`);
  await db.sql(`DELETE FROM users WHERE id = 1`);
  await db.sql(`DELETE FROM audit.users WHERE id = 1`);
  await db.sql(`UPDATE orders SET total = 13 WHERE id = 10`);
  await db.sql(`TRUNCATE orders`);

  const expected = 9;
  await waitFor('all events in the stream', async () => (await streamCount(nc, TOPIC)) >= expected, 30_000);
  await new Promise((r) => setTimeout(r, 500)); // nothing more may arrive
  const stored = await readStream(nc, TOPIC);
  assert.equal(stored.length, expected, JSON.stringify(stored.map((m) => [m.subject, m.json.action])));

  const summary = stored.map((m) => [m.subject, m.json.action, m.json.table]);
  assert.deepEqual(summary, [
    [`${TOPIC}.app_public_users`, 'INSERT', 'users'],
    [`${TOPIC}.app_public_users`, 'INSERT', 'users'],
    [`${TOPIC}.app_orders_feed`, 'INSERT', 'orders'],
    [`${TOPIC}.app_public_users`, 'UPDATE', 'users'],
    [`${TOPIC}.app_public_users`, 'UPDATE', 'users'],
    [`${TOPIC}.app_public_users`, 'DELETE', 'users'],
    [`${TOPIC}.app_audit_users`, 'DELETE', 'users'],
    [`${TOPIC}.app_orders_feed`, 'UPDATE', 'orders'],
    [`${TOPIC}.app_orders_feed`, 'TRUNCATE', 'orders'],
  ]);

  for (const m of stored) {
    assert.equal(m.msgId, m.json.id, 'Nats-Msg-Id is the event id');
    assert.match(String(m.json.id), /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.deepEqual(Object.keys(m.json).slice(0, 8), ['id', 'schema', 'table', 'action', 'data', 'dataOld', 'commitTime', 'lsn']);
    assert.match(String(m.json.commitTime), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    assert.match(String(m.json.lsn), /^[0-9A-F]+\/[0-9A-F]+$/);
    assert.equal(typeof m.json.xid, 'number');
  }
  assert.equal(new Set(stored.map((m) => m.json.id)).size, stored.length, 'ids are unique');

  const [ins1, ins2, order, upd1, updKey, del, auditDel] = stored.map((m) => m.json);
  const { score: _score, ...ins1Data } = ins1!.data as Record<string, unknown>;
  assert.deepEqual(ins1Data, { id: 1, email: 'a@b.c', profile: { n: 1.5, tags: ['x'] }, active: true });
  assert.match(stored[0]!.raw, /"score":9007199254740993[,}]/, 'int8 keeps all its digits');
  assert.deepEqual(ins2!.data, { id: 2, email: null, profile: null, active: null, score: null });
  assert.deepEqual(ins1!.dataOld, {});
  assert.equal(ins1!.schema, 'public');
  assert.equal(ins1!.lsn, ins2!.lsn, 'same transaction, same commit LSN');
  assert.equal(ins1!.lsn, order!.lsn);
  assert.deepEqual(order!.data, { id: 10, user_id: 1, total: '12.50' });
  assert.deepEqual(upd1!.dataOld, {}, 'default identity sends no old row when the key did not change');
  assert.deepEqual(updKey!.dataOld, { id: 2 }, 'old key when the key changed');
  assert.equal((updKey!.data as { id: number }).id, 3);
  assert.deepEqual(del!.data, {});
  assert.deepEqual(del!.dataOld, { id: 1 });
  assert.equal(auditDel!.schema, 'audit');
  assert.notEqual(ins1!.lsn, upd1!.lsn);

  // The slot is confirmed to the end once everything is acknowledged (heartbeat 1s).
  const end = (await db.sql<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn;
  await waitFor('slot confirmed past the last commit', async () => {
    const confirmed = await db.confirmedFlush(slot);
    return confirmed !== null && parseLsn(confirmed) >= parseLsn(end);
  }, 20_000);

  assert.equal(await daemon.stop(), 0, 'SIGTERM is a clean stop');
  daemon = undefined;
});

