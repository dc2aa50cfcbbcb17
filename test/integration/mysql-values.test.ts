/**
 * Every MySQL/MariaDB type through the binlog source, compared value by value with what MariaDB
 * itself returns for the same rows: an oracle query builds the expected JSON text with the server's
 * own functions (CAST, HEX, TO_BASE64, BIN), not with our converter (test/support/mysql-types.ts).
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
import { compareRow, oracle, ROWS, TYPES_TABLE, UPDATES } from '../support/mysql-types.js';
import { json, RecordingSink, type RecordedChange } from '../support/recording-sink.js';

const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

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

function compare(change: RecordedChange, image: 'row' | 'old', truth: Map<number, Record<string, string | null>>, what: string, lossyLabels: boolean): void {
  const row = change[image];
  assert.ok(row && change.table, `${what}: no ${image} image`);
  compareRow(json(change.table, row), truth, what, lossyLabels);
}

async function everyType(db: MysqlTestDatabase, store: string, lossyLabels: boolean): Promise<void> {
  await db.sql(TYPES_TABLE);
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
