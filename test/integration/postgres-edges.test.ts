/**
 * Edges of the PostgreSQL source that must not loop or split events: a slot of another plugin is
 * fatal (exit 1, WAL_PG_SLOT_MISMATCH) instead of being retried as "not available"; a json value
 * with line breaks still prints as one stdout line.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import { databaseSection, startDaemon, type DaemonProcess } from '../support/daemon.js';
import { waitFor } from '../support/ports.js';

let db: TestDatabase;
const daemons: DaemonProcess[] = [];

before(async () => {
  db = await createTestDatabase('wl_edges');
});

after(async () => {
  for (const d of daemons) await d.kill();
  await db?.drop();
});

test('a slot that exists with another plugin stops the daemon: exit 1, WAL_PG_SLOT_MISMATCH, no retry loop', async () => {
  const slot = db.slotName('td');
  await db.sql("SELECT pg_create_logical_replication_slot($1, 'test_decoding')", [slot]);
  const daemon = await startDaemon({ listener: { slotName: slot }, database: databaseSection(db), publisher: { type: 'stdout', topic: 'wl' } }, { waitForStreaming: false });
  daemons.push(daemon);
  assert.equal(await daemon.exited, 1);
  const fatal = daemon.logs().find((r) => r.level === 'fatal');
  assert.equal(fatal?.code, 'WAL_PG_SLOT_MISMATCH', daemon.stderr());
  assert.match(String(fatal?.err), new RegExp(`replication slot ${slot} exists but is a logical slot with plugin test_decoding`));
  assert.ok(!daemon.logs().some((r) => r.msg === 'PostgreSQL not available; retrying'), 'not retried as an outage');
});

test('a json value with line breaks is published as one stdout line, value intact', async () => {
  await db.sql('CREATE TABLE docs (id int PRIMARY KEY, body json, note text)');
  const daemon = await startDaemon({ listener: { slotName: db.slotName('json') }, database: databaseSection(db), publisher: { type: 'stdout', topic: 'wl' } });
  daemons.push(daemon);
  await db.sql(`INSERT INTO docs VALUES (1, E'{\\n  "a": 1,\\r\\n  "b": "x\\\\ny"\\n}', E'two\\nlines')`);
  await db.sql('INSERT INTO docs VALUES (2, \'[1,\n2]\', null)');
  await waitFor('both events', () => daemon.events().length >= 2);
  const lines = daemon.stdout().split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 2, `one line per event:\n${daemon.stdout()}`);
  const [first, second] = lines.map((l) => JSON.parse(l) as { data: { body: unknown; note: string | null } });
  assert.deepEqual(first!.data.body, { a: 1, b: 'x\ny' });
  assert.equal(first!.data.note, 'two\nlines');
  assert.deepEqual(second!.data.body, [1, 2]);
  assert.equal(await daemon.stop(), 0);
});
