/**
 * The replication socket reads into one buffer that every read overwrites (replication.ts,
 * ReusedReads). That is only safe while nothing keeps the bytes of a read past its handling, so
 * this test makes the daemon pause and resume the stream as often as it can: JetStream
 * acknowledgements with `maxInFlight: 4` hold it back after every few changes, and each pause
 * leaves the rest of a read to the session's backlog. The rows have values of every size, from a
 * few bytes to TOASTed texts of 9 KB (which cross reads), and are updated with REPLICA IDENTITY
 * FULL, so events also carry values taken from the old row. Outbox rows in the same transactions
 * have payloads of the same sizes: a payload is a message's bytes until JetStream acknowledges it.
 * Every value of every event, and every payload, must equal the table's: one read from a buffer
 * that a later read overwrote would not.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { databaseSection, startDaemon, type DaemonProcess } from '../support/daemon.js';
import { readStream, startNats, streamCount, type NatsServer } from '../support/nats.js';
import { waitFor } from '../support/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

let db: TestDatabase;
let nats: NatsServer;
let nc: NatsConnection;
let daemon: DaemonProcess | undefined;
const TOPIC = 'reads';
const ROWS = 1500;

interface Row {
  id: number;
  n: number;
  small: string;
  big: string;
  bin: string;
  tags: string[];
}

before(async () => {
  db = await createTestDatabase('wl_reads');
  nats = await startNats();
  nc = await nats.connect();
  await db.sql(`
    CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL, small text, big text, bin bytea, tags text[]);
    ALTER TABLE t REPLICA IDENTITY FULL;
    ALTER TABLE t ALTER COLUMN big SET STORAGE EXTERNAL;
    CREATE TABLE box (id int PRIMARY KEY, destination text, k text, body text, hnames text[], hvalues text[]);
  `);
});

after(async () => {
  await daemon?.kill();
  await nc?.close();
  await nats?.stop();
  await db?.drop();
});

test('values stay exact while the stream is paused and resumed after every few changes (reused read buffer)', async () => {
  daemon = await startDaemon({
    listener: {
      slotName: db.slotName(),
      maxInFlight: 4,
      outbox: [{ table: 'public.box', topic: 'destination', key: 'k', value: 'body', headerKeys: 'hnames', headerValues: 'hvalues' }],
    },
    database: databaseSection(db),
    publisher: { type: 'nats', address: nats.url, topic: TOPIC },
  });
  const streaming = await daemon.waitForLog('replication streaming');
  assert.equal(streaming.reusedReadBuffer, true, 'a plain connection reads into the reused buffer');

  // Sizes vary row by row (from a few bytes to 9 KB, so some values cross from one read into the
  // next), and every value is different, with bytes JSON must escape.
  await db.sql(`
    BEGIN;
    INSERT INTO box
    SELECT g, '${TOPIC}.box', 'k' || g, repeat(md5((g * 3)::text), 1 + (g * 53) % 280) || ' #' || g, NULL, NULL
    FROM generate_series(1, ${ROWS}) AS g;
    INSERT INTO t
    SELECT g, 0,
      'row ' || g || E' "quoted" \\\\ tab\\t',
      repeat(md5(g::text), 1 + (g * 37) % 280) || E'\\n' || g,
      decode(md5((g * 7)::text), 'hex'),
      ARRAY['a' || g, NULL, repeat('x', g % 50)]
    FROM generate_series(1, ${ROWS}) AS g;
    COMMIT;
  `);
  // Only n changes: the new row's TOASTed text comes from the old row (REPLICA IDENTITY FULL).
  await db.sql('UPDATE t SET n = n + 1');

  const expected = 3 * ROWS;
  await waitFor(`${expected} messages in the stream`, async () => (await streamCount(nc, TOPIC)) >= expected, 120_000);
  const all = await readStream(nc, TOPIC);
  assert.equal(all.length, expected);

  const bodies = new Map((await db.sql<{ k: string; body: string }>('SELECT k, body FROM box')).rows.map((r) => [r.k, r.body]));
  const payloads = all.filter((m) => m.subject === `${TOPIC}.box`);
  assert.equal(payloads.length, ROWS);
  for (const message of payloads) {
    const key = message.headers?.get('key') ?? '';
    assert.equal(message.raw, bodies.get(key), `outbox payload of ${key}`);
  }
  const stored = all.filter((m) => m.subject !== `${TOPIC}.box`);

  const result = await db.sql<{ id: number; n: number; small: string; big: string; bin: string; tags: string[] }>(
    "SELECT id, n, small, big, encode(bin, 'base64') AS bin, tags FROM t ORDER BY id",
  );
  const table = new Map(result.rows.map((r) => [r.id, r]));
  let checked = 0;
  for (const message of stored) {
    const event = message.json as { action: string; data: Row; dataOld: Partial<Row> };
    const row = table.get(event.data.id);
    assert.ok(row, `event for id ${event.data.id}`);
    const wanted = { ...row, n: event.action === 'INSERT' ? 0 : 1 };
    assert.deepEqual(event.data, wanted, `${event.action} of id ${row.id}: data`);
    if (event.action === 'UPDATE') assert.deepEqual(event.dataOld, { ...row, n: 0 }, `UPDATE of id ${row.id}: dataOld`);
    checked++;
  }
  assert.equal(checked, 2 * ROWS);
  assert.equal(await daemon.stop(), 0);
});
