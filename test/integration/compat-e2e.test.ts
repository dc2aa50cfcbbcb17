/**
 * `publisher.eventFormat: compat` through the real daemon: for a row of every type DESIGN.md names,
 * each value has ihippik/wal-listener v2.11's shape. The oracle is PostgreSQL itself: Go publishes
 * every type it does not convert as the text PostgreSQL prints with its default session settings
 * (DateStyle ISO, IntervalStyle postgres, bytea hex), so those values are compared with `col::text`
 * read under those settings; the types Go converts (bool, integers, jsonb, timestamps) have their
 * Go shape written out.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { databaseSection, startDaemon, type DaemonProcess } from '../support/daemon.js';
import { waitFor } from '../support/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

let db: TestDatabase;
let daemon: DaemonProcess | undefined;

before(async () => {
  db = await createTestDatabase('wl_compat');
});

after(async () => {
  await daemon?.kill();
  await db?.drop();
});

const COLUMNS: [name: string, type: string, value: string][] = [
  ['b', 'bool', 'true'],
  ['i2', 'int2', "'-32768'"],
  ['i4', 'int4', '2147483647'],
  ['i8', 'int8', '9007199254740993'],
  ['o', 'oid', '4294967295'],
  ['f4', 'float4', '1.5'],
  ['f8', 'float8', "'NaN'"],
  ['n', 'numeric', '12345678901234567890.1234567890'],
  ['j', 'json', `'{"b": [1, 2],\n "a": null}'`],
  ['jb', 'jsonb', `'{"b": [1, 2], "a": null}'`],
  ['ai', 'int4[]', `'{1,2,NULL}'`],
  ['at', 'text[]', `'{"a b","c,d"}'`],
  ['tz', 'timestamptz', "'2024-02-29 08:15:56.1234+00'"],
  ['tzr', 'timestamptz', "'2024-02-29 08:15:56+00'"],
  ['ts', 'timestamp', "'2024-02-29 13:45:56.123456'"],
  ['tsi', 'timestamp', "'infinity'"],
  ['d', 'date', "'2024-02-29'"],
  ['t', 'time', "'13:45:56.5'"],
  ['ttz', 'timetz', "'13:45:56+05:30'"],
  ['iv', 'interval', "'1 year 2 mons -3 days 04:05:06.5'"],
  ['ivn', 'interval', "'-1 day -00:00:01.5'"],
  ['by', 'bytea', "'\\xdeadbeef'"],
  ['u', 'uuid', "'6f1c2d3e-0000-4000-8000-000000000001'"],
  ['tx', 'text', "'line\nbreak'"],
  ['nul', 'text', 'NULL'],
];

/** What Go publishes for the types it converts, as JSON text. */
const GO_SHAPES: Record<string, string> = {
  b: 'true',
  i2: '-32768',
  i4: '2147483647',
  i8: '9007199254740993',
  jb: '{"a": null, "b": [1, 2]}',
  tz: '"2024-02-29T08:15:56.1234Z"',
  tzr: '"2024-02-29T08:15:56Z"',
  ts: '"2024-02-29T13:45:56.123456Z"',
  // Go turns what it cannot parse into its zero time; compat publishes the text instead (DESIGN.md).
  tsi: '"infinity"',
  nul: 'null',
};

test('compat: every value has the Go shape; DELETE dataOld lists every column, non-key ones null; trimmed commitTime', async () => {
  await db.sql(`CREATE TABLE everything (id int PRIMARY KEY, ${COLUMNS.map(([name, type]) => `${name} ${type}`).join(', ')})`);
  daemon = await startDaemon({
    listener: { slotName: db.slotName('compat') },
    database: databaseSection(db),
    publisher: { type: 'stdout', topic: 'wl', eventFormat: 'compat' },
  });
  await db.sql(`INSERT INTO everything VALUES (1, ${COLUMNS.map(([, type, value]) => `${value}::${type}`).join(', ')})`);
  await db.sql('DELETE FROM everything WHERE id = 1');
  await waitFor('insert and delete events', () => daemon!.events().length >= 2);

  // The oracle: the text PostgreSQL prints under the Go daemon's (default) session settings.
  const client = await db.client();
  await client.query("SET DateStyle = 'ISO, MDY'; SET IntervalStyle = postgres; SET extra_float_digits = 1; SET bytea_output = hex");
  const oracleRows = await client.query({ text: `SELECT ${COLUMNS.map(([name, type, value]) => `(${value}::${type})::text AS ${name}`).join(', ')}`, rowMode: 'array' });
  await client.end();
  const oracle = oracleRows.rows[0] as (string | null)[];

  const insertLine = daemon.stdout().split('\n').find((l) => l.includes('"action":"INSERT"'))!;
  const data = JSON.parse(insertLine).data as Record<string, unknown>;
  for (const [i, [name]] of COLUMNS.entries()) {
    const expected = GO_SHAPES[name] ?? JSON.stringify(oracle[i]);
    assert.deepEqual(data[name], JSON.parse(expected), `column ${name}: expected ${expected}`);
  }
  // jsonb is the value; json is its text (Go leaves json unconverted).
  assert.equal(typeof data.j, 'string');
  assert.equal(data.by, '\\xdeadbeef');
  assert.equal(data.iv, '1 year 2 mons -3 days +04:05:06.5');
  assert.equal(data.ivn, '-1 days -00:00:01.5');

  const insert = JSON.parse(insertLine) as { commitTime: string };
  assert.match(insert.commitTime, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d*[1-9])?Z$/, 'trailing zeros trimmed');
  const del = JSON.parse(daemon.stdout().split('\n').find((l) => l.includes('"action":"DELETE"'))!) as { data: object; dataOld: Record<string, unknown> };
  assert.deepEqual(del.data, {});
  assert.deepEqual(Object.keys(del.dataOld), ['id', ...COLUMNS.map(([name]) => name)]);
  assert.equal(del.dataOld.id, 1);
  assert.ok(COLUMNS.every(([name]) => del.dataOld[name] === null), 'non-key columns are null');
  assert.equal(await daemon.stop(), 0);
});
