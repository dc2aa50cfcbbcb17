/**
 * Every MySQL/MariaDB type through the binlog source, compared value by value with what MariaDB
 * itself returns for the same rows: an oracle query builds the expected JSON text with the server's
 * own functions (CAST, HEX, TO_BASE64, BIN), not with our converter.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import pino from 'pino';
import type { MysqlPosition } from '../../src/sources/mysql/position.js';
import { createMysqlSource } from '../../src/sources/mysql/source.js';
import type { SourceSession } from '../../src/sources/source.js';
import { createMysqlDatabase, mysqlSourceConfig, query, requireRowBinlog, startPrivateMariadb, type MysqlTestDatabase } from '../support/mysql.js';
import { json, RecordingSink, type RecordedChange } from '../support/recording-sink.js';

const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

const TABLE = `CREATE TABLE vals (
  id INT PRIMARY KEY,
  b1 TINYINT(1), ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, mi MEDIUMINT, i INT, iu INT UNSIGNED, bi BIGINT, bu BIGINT UNSIGNED,
  de DECIMAL(65,30), d2 DECIMAL(10,2), fl FLOAT, do DOUBLE,
  d DATE, t0 TIME, t6 TIME(6), dt0 DATETIME, dt3 DATETIME(3), dt6 DATETIME(6), ts0 TIMESTAMP NULL, ts6 TIMESTAMP(6) NULL, y YEAR,
  c CHAR(10), v VARCHAR(255), tx TEXT, mt MEDIUMTEXT, l1 VARCHAR(20) CHARACTER SET latin1,
  bn BINARY(4), vb VARBINARY(16), bl BLOB, lb LONGBLOB,
  j JSON, bit1 BIT(1), bit12 BIT(12), bit64 BIT(64),
  e ENUM('a', 'b,c', 'it''s', 'back\\\\slash', '😀'), s SET('x', 'y', 'z', 'w''v')
) ENGINE=InnoDB`;

/** Oracle expression per column: MariaDB's own text for the expected JSON; `kind` says how to read it. */
type Kind = 'number' | 'string' | 'hexText' | 'hexJson' | 'float' | 'double' | 'datetime' | 'timestamp';
const ORACLE: Record<string, [string, Kind]> = {
  id: ['CAST(id AS CHAR)', 'number'],
  b1: ['CAST(b1 AS CHAR)', 'number'], ti: ['CAST(ti AS CHAR)', 'number'], tu: ['CAST(tu AS CHAR)', 'number'],
  si: ['CAST(si AS CHAR)', 'number'], mi: ['CAST(mi AS CHAR)', 'number'], i: ['CAST(i AS CHAR)', 'number'],
  iu: ['CAST(iu AS CHAR)', 'number'], bi: ['CAST(bi AS CHAR)', 'number'], bu: ['CAST(bu AS CHAR)', 'number'],
  de: ['CAST(de AS CHAR)', 'string'], d2: ['CAST(d2 AS CHAR)', 'string'],
  fl: ['CAST(CAST(fl AS DOUBLE) AS CHAR)', 'float'], do: ['CAST(do AS CHAR)', 'double'],
  d: ['CAST(d AS CHAR)', 'string'], t0: ['CAST(t0 AS CHAR)', 'string'], t6: ['CAST(t6 AS CHAR)', 'string'],
  dt0: ['CAST(dt0 AS CHAR)', 'datetime'], dt3: ['CAST(dt3 AS CHAR)', 'datetime'], dt6: ['CAST(dt6 AS CHAR)', 'datetime'],
  ts0: ['CAST(ts0 AS CHAR)', 'timestamp'], ts6: ['CAST(ts6 AS CHAR)', 'timestamp'], y: ['CAST(y + 0 AS CHAR)', 'number'],
  c: ['HEX(CONVERT(c USING utf8mb4))', 'hexText'], v: ['HEX(v)', 'hexText'], tx: ['HEX(tx)', 'hexText'], mt: ['HEX(mt)', 'hexText'],
  l1: ['HEX(CONVERT(l1 USING utf8mb4))', 'hexText'],
  bn: ["REPLACE(TO_BASE64(bn), '\\n', '')", 'string'], vb: ["REPLACE(TO_BASE64(vb), '\\n', '')", 'string'],
  bl: ["REPLACE(TO_BASE64(bl), '\\n', '')", 'string'], lb: ["REPLACE(TO_BASE64(lb), '\\n', '')", 'string'],
  j: ['HEX(j)', 'hexJson'],
  bit1: ["LPAD(BIN(bit1 + 0), 1, '0')", 'string'], bit12: ["LPAD(BIN(bit12 + 0), 12, '0')", 'string'], bit64: ["LPAD(BIN(bit64 + 0), 64, '0')", 'string'],
  e: ['HEX(e)', 'hexText'], s: ['HEX(s)', 'hexText'],
};

const ROWS = [
  `(1, 1, -128, 255, -32768, -8388608, -2147483648, 4294967295, -9223372036854775808, 18446744073709551615,
    '12345678901234567890123456789012345.123456789012345678901234567891', -12345678.91, 0.1, 0.1,
    '2024-02-29', '-838:59:59', '838:59:58.999999', '2024-02-29 13:45:56', '2024-02-29 13:45:56.120', '2024-02-29 13:45:56.123456',
    '2038-01-19 03:14:07', '1970-01-01 00:00:01.000001', 2155,
    'ab', 'héllo 😀 𝄞 "quoted" \\\\ \\n tab\\t', REPEAT('long text 😀 ', 500), 'mediumtext ✓', 'café',
    0x01020000, 0x00ff00, 0xdeadbeef00, REPEAT(0xfe, 70000),
    '{"a": [1, 2.50, 12345678901234567890, -1e400], "b": "😀", "c": {"d": null, "e": true}}', b'1', b'101010101010', b'1111111111111111111111111111111111111111111111111111111111111111',
    'b,c', 'x,z,w''v')`,
  `(2, ${Array(Object.keys(ORACLE).length - 1).fill('NULL').join(', ')})`,
  `(3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    '1000-01-01', '00:00:00', '00:00:00.000000', '1000-01-01 00:00:00', '9999-12-31 23:59:59.999', '9999-12-31 23:59:59.999999',
    '1970-01-01 00:00:01', '2038-01-19 03:14:07.999999', '0000',
    '', '', '', '', '',
    '', '', '', '',
    '[]', b'0', b'0', b'0',
    'it''s', '')`,
  `(4, -1, 127, 1, 32767, 8388607, 2147483647, 1, 9223372036854775807, 9007199254740993,
    '-0.000000000000000000000000000001', 0.01, 3.40282e38, 1e300,
    '2000-02-29', '23:59:59', '-00:00:00.000001', '1999-12-31 23:59:59', '2000-01-01 00:00:00.001', '2000-01-01 00:00:00.000001',
    '2000-01-01 00:00:00', '2000-01-01 00:00:00.5', 1901,
    'x', '\\0nul and ctrl \\Z', 'line1\\r\\nline2', '', 'ÿ',
    0x00, 0x00, 0x00, 0x00,
    '"just a string"', b'1', b'100000000001', b'1000000000000000000000000000000000000000000000000000000000000000',
    'back\\\\slash', 'y')`,
  `(5, 1, 1, 1, 1, 1, 1, 1, 1, 1, '1', 1, -1.17549e-38, 5e-324,
    '2024-12-31', '12:00:00', '12:00:00.5', '2024-12-31 12:00:00', '2024-12-31 12:00:00.5', '2024-12-31 12:00:00.5',
    '2024-12-31 12:00:00', '2024-12-31 12:00:00.5', 1970,
    '😀', '😀', '😀', '😀', 'a',
    0xffffffff, 0xff, 0xff, 0xff,
    '12345678901234567890.5', b'0', b'111111111111', b'0000000000000000000000000000000000000000000000000000000000000001',
    '😀', 'x,y,z,w''v')`,
];

/** Changes every non-key column of each row (row 2 from NULL to values, the others to row 5's values or NULL). */
const UPDATES = [
  "UPDATE vals SET v = CONCAT(v, ' ✎'), bu = bu - 1, dt6 = dt6 + INTERVAL 1 MICROSECOND, j = JSON_SET(j, '$.b', '𝄞'), bit12 = b'000000000001', e = 'a', s = 'y' WHERE id = 1",
  "UPDATE vals v2 JOIN vals v5 ON v5.id = 5 SET v2.b1 = v5.b1, v2.de = v5.de, v2.fl = v5.fl, v2.d = v5.d, v2.ts6 = v5.ts6, v2.v = v5.v, v2.bl = v5.bl, v2.j = v5.j, v2.bit64 = v5.bit64, v2.e = v5.e, v2.s = v5.s WHERE v2.id = 2",
  `UPDATE vals SET ${Object.keys(ORACLE).filter((c) => c !== 'id').map((c) => `${c} = NULL`).join(', ')} WHERE id = 3`,
  'UPDATE vals SET do = -do, fl = -fl, y = 2000, t6 = ADDTIME(t6, "01:00:00") WHERE id IN (4, 5)',
];

let db: MysqlTestDatabase;
let dir: string;
const cleanup: (() => Promise<void>)[] = [];
const problems: string[] = [];

before(async () => {
  await requireRowBinlog();
  db = await createMysqlDatabase('wl_vals');
  dir = mkdtempSync(join(tmpdir(), 'wl-mysql-vals-'));
});

after(async () => {
  for (const step of cleanup.reverse()) await step().catch(() => undefined);
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

/** Opens a source on `database` with a recording sink; closed after the file. */
async function open(database: MysqlTestDatabase, store: string): Promise<RecordingSink<MysqlPosition>> {
  const source = createMysqlSource(mysqlSourceConfig({ port: database.port, databases: [database.name], positionStore: `file:${join(dir, store)}` }), log, { convertProblem: () => problems.push('convert') });
  const sink = new RecordingSink<MysqlPosition>();
  const session: SourceSession<MysqlPosition> = await source.open(sink, new AbortController().signal);
  cleanup.push(async () => {
    await session.close();
    await source.close();
  });
  return sink;
}

/** Expected JSON text from the oracle's text. */
function expected(kind: Kind, text: string | null): string {
  if (text === null) return 'null';
  switch (kind) {
    case 'number':
      return text;
    case 'string':
      return JSON.stringify(text);
    case 'hexText':
      return JSON.stringify(Buffer.from(text, 'hex').toString('utf8'));
    case 'hexJson':
      return Buffer.from(text, 'hex').toString('utf8');
    case 'datetime':
      return JSON.stringify(text.replace(' ', 'T'));
    case 'timestamp':
      return JSON.stringify(`${text.replace(' ', 'T')}Z`);
    case 'float':
    case 'double':
      return text;
  }
}

async function oracle(db: MysqlTestDatabase): Promise<Map<number, Record<string, string | null>>> {
  const c = await db.connect();
  try {
    await c.query("SET time_zone = '+00:00'");
    const [rows] = await c.query(`SELECT ${Object.entries(ORACLE).map(([name, [expr]]) => `${expr} AS \`${name}\``).join(', ')} FROM vals ORDER BY id`);
    return new Map((rows as Record<string, string | null>[]).map((row) => [Number(row.id), row]));
  } finally {
    await c.end();
  }
}

/**
 * `lossyLabels`: MariaDB's information_schema (and SHOW CREATE TABLE) write 4-byte characters of
 * ENUM/SET labels as "?"; without binlog_row_metadata=FULL that is all there is to read them from.
 */
function compare(change: RecordedChange, image: 'row' | 'old', truth: Map<number, Record<string, string | null>>, what: string, lossyLabels: boolean): void {
  const row = change[image];
  assert.ok(row && change.table, `${what}: no ${image} image`);
  const ours = json(change.table, row);
  const id = Number(ours.id);
  const want = truth.get(id);
  assert.ok(want, `${what}: the oracle has no row ${id}`);
  for (const [column, [, kind]] of Object.entries(ORACLE)) {
    const got: string | undefined = ours[column];
    const text: string | null = want[column] ?? null;
    const context: string = `${what}, row ${id}, column ${column}: ours ${got}, MariaDB ${text}`;
    if (kind === 'float' && text !== null) {
      // FLOAT: our shortest decimal must read back as the very float MariaDB stored (its exact double value).
      assert.equal(Math.fround(Number(got)), Number(text), context);
    } else if (kind === 'double' && text !== null) {
      assert.equal(Number(got), Number(text), context);
    } else if (lossyLabels && (column === 'e' || column === 's')) {
      assert.equal(got, expected(kind, text).replace(/[\u{10000}-\u{10FFFF}]/gu, '?'), context);
    } else {
      assert.equal(got, expected(kind, text), context);
    }
  }
}

async function everyType(db: MysqlTestDatabase, store: string, lossyLabels: boolean): Promise<void> {
  await db.sql(TABLE);
  const sink = await open(db, store);
  const problemsBefore = problems.length;
  await db.sql(`INSERT INTO vals VALUES ${ROWS.join(',\n')}`);
  const inserted = await oracle(db);
  let changed = 0;
  for (const statement of UPDATES) changed += (await db.sql<{ changedRows: number }>(statement)).changedRows;
  const updated = await oracle(db);
  await db.sql('DELETE FROM vals');
  await sink.until('inserts, updates and deletes', () => sink.changes.filter((c) => c.action === 'DELETE').length === ROWS.length);

  const changes = sink.changes;
  const inserts = changes.filter((c) => c.action === 'INSERT');
  const updates = changes.filter((c) => c.action === 'UPDATE');
  const deletes = changes.filter((c) => c.action === 'DELETE');
  assert.equal(inserts.length, ROWS.length);
  assert.equal(changed, 5, 'rows 1 to 5 each changed once');
  assert.equal(updates.length, changed);
  for (const change of inserts) compare(change, 'row', inserted, 'INSERT', lossyLabels);
  for (const change of updates) {
    compare(change, 'old', inserted, 'UPDATE before image', lossyLabels);
    compare(change, 'row', updated, 'UPDATE after image', lossyLabels);
    assert.equal(change.oldKeyOnly, false, 'binlog_row_image=FULL: the whole old row');
  }
  for (const change of deletes) compare(change, 'old', updated, 'DELETE', lossyLabels);
  assert.equal(problems.length, problemsBefore, 'no value needed its source text');

  const table = inserts[0]!.table!.descriptor;
  assert.equal(table.schema, db.name);
  assert.equal(table.table, 'vals');
  assert.deepEqual(table.keyColumns, [0]);
  assert.deepEqual(table.columns.filter((c) => c.inIdentity).map((c) => c.name), ['id']);
}

test('every type, inserted, updated and deleted, matches what MariaDB returns (binlog_row_metadata=NO_LOG, the default)', async () => {
  await everyType(db, 'position.json', true);
});

test('every type matches with binlog_row_metadata=FULL (a private MariaDB), ENUM/SET labels with 4-byte characters included', async () => {
  const server = await startPrivateMariadb({ rowMetadata: 'FULL' });
  cleanup.push(() => server.remove());
  await requireRowBinlog(server.port);
  const privateDb = await createMysqlDatabase('wl_vals_full', server.port);
  await everyType(privateDb, 'full.json', false);
});

test('values that are no valid date or JSON are published as their MySQL text and counted', async () => {
  await db.sql("CREATE TABLE odd (id INT PRIMARY KEY, d DATE, dt DATETIME(2), ts TIMESTAMP NULL, j JSON, e ENUM('a','b'))");
  const before = problems.length;
  const sink = await open(db, 'odd.json');
  // Zero dates (sql_mode without NO_ZERO_DATE), text that is not JSON (check constraints off), ENUM's error value ''.
  await db.sql("SET SESSION sql_mode = ''; SET SESSION check_constraint_checks = 0; INSERT INTO odd VALUES (1, '0000-00-00', '2024-00-10 10:00:00.5', '0000-00-00 00:00:00', 'not json', 'zzz')");
  await sink.until('the odd row', () => sink.changes.length === 1);
  const change = sink.changes[0]!;
  const ours = json(change.table!, change.row!);
  const [truth] = await query<{ d: string; dt: string; ts: string; j: string; e: string }[]>(`SELECT CAST(d AS CHAR) AS d, CAST(dt AS CHAR) AS dt, CAST(ts AS CHAR) AS ts, j, e FROM \`${db.name}\`.odd`);
  assert.equal(ours.d, JSON.stringify(truth!.d));
  assert.equal(ours.dt, JSON.stringify(truth!.dt));
  assert.equal(ours.ts, JSON.stringify(truth!.ts));
  assert.equal(ours.j, JSON.stringify(truth!.j), 'invalid JSON is published as a string, not spliced into the event');
  assert.equal(ours.e, JSON.stringify(truth!.e), "ENUM's error value is the empty string");
  assert.equal(problems.length - before, 4, 'd, dt, ts and j were counted');
});
