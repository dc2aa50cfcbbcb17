/**
 * Outbox → NATS JetStream (issue 13): goharvest's outbox table, logical messages and the
 * wal-listener/outbox stasher, 1,000 records each (test/support/outbox-workload.ts), through the
 * daemon into a private nats-server. Subjects are the topic column (inside the daemon's stream),
 * `key` and the record's headers are NATS headers, Nats-Msg-Id the stable id. Rows with no topic
 * or unpaired header arrays are rejected into wal_listener.dead_letters (onReject: deadLetter), and
 * logical messages of another prefix or non-transactional ones are counted as skipped. Own column
 * names with a bytea value; a renamed outbox table stops the daemon.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { createStasher } from '../../src/outbox/index.js';
import { databaseSection, startDaemon, type DaemonProcess } from '../support/daemon.js';
import { readStream, startNats, streamCount, type NatsServer } from '../support/nats.js';
import { assertOutboxDelivery, committed, createOutboxTable, WAYS, writeOutbox, type DeliveredRecord, type WrittenRecord } from '../support/outbox-workload.js';
import { freePort, waitFor } from '../support/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

const STREAM = 'wl_obx_nats';
const TOPICS = [`${STREAM}.orders`, `${STREAM}.payments`, `${STREAM}.users`] as const;

let db: TestDatabase;
let nats: NatsServer;
let nc: NatsConnection;
let daemon: DaemonProcess | undefined;

before(async () => {
  [db, nats] = await Promise.all([createTestDatabase('wl_obx_nats'), startNats()]);
  nc = await nats.connect();
  await createOutboxTable(db);
  await db.sql('CREATE TABLE users (id int PRIMARY KEY, name text)');
});

after(async () => {
  await daemon?.kill();
  await nc?.close();
  await nats?.stop();
  await db?.drop();
});

test('every committed outbox record arrives once per Nats-Msg-Id with subject, key, payload and headers, in key order', async () => {
  const metricsPort = await freePort();
  daemon = await startDaemon({
    listener: { slotName: db.slotName('obx'), publication: 'wl_obx_nats', filter: { tables: { users: null } }, outbox: [{ table: 'public.outbox' }] },
    database: databaseSection(db),
    publisher: { type: 'nats', address: nats.url, topic: STREAM, onReject: 'deadLetter' },
    monitoring: { promAddr: `127.0.0.1:${metricsPort}` },
  });
  // The filter names only users: the outbox table is in the publication because listener.outbox names it.
  const published = await db.sql<{ t: string }>("SELECT tablename AS t FROM pg_publication_tables WHERE pubname = 'wl_obx_nats' ORDER BY 1");
  assert.deepEqual(published.rows.map((r) => r.t), ['outbox', 'users']);

  const written: WrittenRecord[] = [];
  for (const way of WAYS) written.push(...(await writeOutbox(db, way, TOPICS)));
  // A change event still flows next to the outbox messages.
  await db.sql("INSERT INTO users VALUES (1, 'ann')");
  const expected = committed(written) + 1;
  await waitFor(`${expected} messages in the stream`, async () => (await streamCount(nc, STREAM)) >= expected, 60_000, 200).catch(async (err: Error) => {
    throw new Error(`${err.message}: ${await streamCount(nc, STREAM)} stored; daemon: ${daemon?.stderr().slice(-3000)}`);
  });
  await new Promise((r) => setTimeout(r, 500)); // nothing more may arrive

  const stored = await readStream(nc, STREAM);
  const events = stored.filter((m) => m.subject === `${STREAM}.public_users`);
  assert.equal(events.length, 1, 'the users insert is a change event');
  const delivered: DeliveredRecord[] = stored
    .filter((m) => m.subject !== `${STREAM}.public_users`)
    .map((m) => {
      const headers: Record<string, string> = {};
      for (const name of m.headers?.keys() ?? []) headers[name] = m.headers!.get(name);
      const { key = '', ...rest } = headers;
      return { id: m.msgId ?? '', topic: m.subject, key, payload: m.bytes, headers: rest };
    });
  assert.equal(delivered.length, expected - 1, 'JetStream stored each record once');
  assertOutboxDelivery('NATS', written, delivered, ['Nats-Msg-Id']);

  const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const skipped = (reason: string): number => Number(new RegExp(`logical_messages_skipped_total\\{[^}]*reason="${reason}"[^}]*\\} (\\d+)`).exec(metrics)?.[1] ?? NaN);
  assert.ok(skipped('prefix') >= 1, `other prefixes counted: ${skipped('prefix')}`);
  assert.ok(skipped('nontransactional') >= 1, `non-transactional messages counted: ${skipped('nontransactional')}`);
});

test('a row without a topic, unpaired header arrays, a subject NATS cannot take, a message without a topic are dead letters; the stream goes on', async () => {
  const before = await streamCount(nc, STREAM);
  await db.sql(`INSERT INTO outbox (create_time, kafka_topic, kafka_key, kafka_value, kafka_header_keys, kafka_header_values) VALUES
    (now(), '', 'k', 'no topic', '{}', '{}'),
    (now(), '${TOPICS[0]}', 'k', 'unpaired', '{a,b}', '{1}'),
    (now(), '${TOPICS[0]}', 'k', 'fine', '{a}', '{1}'),
    (now(), '${TOPICS[0]} *', 'k', 'bad subject', '{}', '{}')`);
  await db.sql(`SELECT pg_logical_emit_message(true, 'wal-listener', '{"key":"k","value":"no topic"}')`);
  await db.sql(`SELECT pg_logical_emit_message(true, 'wal-listener', 'not json')`);
  await waitFor('the good row', async () => (await streamCount(nc, STREAM)) >= before + 1, 30_000);
  const letters = await waitFor('five dead letters', async () => {
    const r = await db.sql<{ reason: string; payload: Buffer }>('SELECT reason, payload FROM wal_listener.dead_letters ORDER BY id').catch(() => ({ rows: [] }));
    return r.rows.length >= 5 ? r.rows : undefined;
  }, 30_000);
  assert.equal(letters.length, 5);
  assert.match(letters[0]!.reason, /outbox row of public\.outbox has no topic \(column kafka_topic is empty\)/);
  assert.match(letters[1]!.reason, /kafka_header_keys has 2 element\(s\) but kafka_header_values has 1/);
  assert.match(letters[2]!.reason, /NATS subject "wl_obx_nats\.orders \*" cannot be used: it contains whitespace/);
  assert.match(letters[3]!.reason, /no "topic" string/);
  assert.match(letters[4]!.reason, /not JSON/);
  assert.equal(letters[0]!.payload.toString(), 'no topic');
  assert.equal(letters[4]!.payload.toString(), 'not json');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await streamCount(nc, STREAM), before + 1, 'only the good row reached the stream');
  assert.equal(await daemon!.stop(), 0);
  daemon = undefined;
});

test('own column names and a bytea value: binary payloads byte for byte; updates, deletes and truncates of the outbox publish nothing', async () => {
  await db.sql(`CREATE SCHEMA app;
    CREATE TABLE app.events (id bigserial PRIMARY KEY, destination text, partition_key text, body bytea, hnames varchar(40)[], hvalues text[])`);
  const stream = 'wl_obx_bin';
  daemon = await startDaemon({
    listener: {
      slotName: db.slotName('bin'),
      publication: 'wl_obx_bin',
      outbox: [{ table: 'app.events', topic: 'destination', key: 'partition_key', value: 'body', headerKeys: 'hnames', headerValues: 'hvalues' }],
    },
    database: databaseSection(db),
    publisher: { type: 'nats', address: nats.url, topic: stream },
  });
  const binary = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x5c, 0x78, 0x22, 10, 13, 0x80]);
  const client = await db.client();
  try {
    await client.query('BEGIN');
    await client.query('INSERT INTO app.events (destination, partition_key, body, hnames, hvalues) VALUES ($1, $2, $3, $4, $5)', [`${stream}.bin`, 'k1', binary, ['a', 'b'], ['1', 'with "quotes", commas\\ and {braces}']]);
    await client.query('UPDATE app.events SET body = $1', [Buffer.from('changed')]);
    await client.query('COMMIT');
    const stasher = createStasher({ table: 'app.events', columns: { topic: 'destination', key: 'partition_key', value: 'body', headerKeys: 'hnames', headerValues: 'hvalues', createTime: null }, valueType: 'bytea' });
    await client.query('BEGIN');
    await stasher.stash(client, { topic: `${stream}.bin`, key: 'k1', value: new Uint8Array([0, 0xc3, 0x28]) }, { topic: `${stream}.bin`, key: 'k1', value: null, headers: { only: 'header' } });
    await client.query('DELETE FROM app.events');
    await client.query('COMMIT');
    await client.query('TRUNCATE app.events');
    await client.query("INSERT INTO users VALUES (2, 'bob')");
  } finally {
    await client.end();
  }
  await waitFor('4 messages', async () => (await streamCount(nc, stream)) >= 4, 30_000);
  await new Promise((r) => setTimeout(r, 500));
  const stored = await readStream(nc, stream);
  assert.deepEqual(stored.map((m) => m.subject), [`${stream}.bin`, `${stream}.bin`, `${stream}.bin`, `${stream}.public_users`], 'three outbox messages, then the users insert; no event for the outbox table');
  assert.ok(stored[0]!.bytes.equals(binary), 'bytea value byte for byte');
  assert.equal(stored[0]!.headers?.get('key'), 'k1');
  assert.equal(stored[0]!.headers?.get('b'), 'with "quotes", commas\\ and {braces}');
  assert.ok(stored[1]!.bytes.equals(Buffer.from([0, 0xc3, 0x28])), 'the stasher writes bytes into a bytea column');
  assert.equal(stored[2]!.bytes.length, 0, 'NULL value: empty payload');
  assert.equal(stored[2]!.headers?.get('only'), 'header');
  assert.equal(await daemon.stop(), 0);
  daemon = undefined;
});

test('an outbox table renamed while streaming stops the daemon naming the new name (WAL_OUTBOX_TABLE), exit 1', async () => {
  daemon = await startDaemon({
    listener: { slotName: db.slotName('ren'), publication: 'wl_obx_bin', outbox: [{ table: 'app.events', topic: 'destination', key: 'partition_key', value: 'body', headerKeys: 'hnames', headerValues: 'hvalues' }] },
    database: databaseSection(db),
    publisher: { type: 'nats', address: nats.url, topic: 'wl_obx_bin' },
  });
  await db.sql("INSERT INTO app.events (destination, partition_key) VALUES ('wl_obx_bin.bin', 'k')");
  await db.sql('ALTER TABLE app.events RENAME TO events_old');
  await db.sql("INSERT INTO app.events_old (destination, partition_key) VALUES ('wl_obx_bin.bin', 'k')");
  assert.equal(await daemon.exited, 1, daemon.stderr().slice(-2000));
  assert.match(daemon.stderr(), /an outbox table was renamed to app\.events_old, which listener\.outbox does not name.*WAL_OUTBOX_TABLE/);
  daemon = undefined;
});
