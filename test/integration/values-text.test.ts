/**
 * The value converters on real PostgreSQL output: the "torture" table (test/fixtures/torture.ts,
 * one column per type, extremes, unicode, NULLs, special values, user types) is read back as text
 * twice — as a plain SELECT's text-format result (the types' output functions) and through pgoutput itself (pg_logical_slot_peek_binary_changes
 * decoded by our decoder) — in a session with the replication connection's settings, and every
 * converted value must equal the JSON literal written in the fixture. The type catalog resolves the
 * user types (enum, domains, arrays of them, composite, range) from this database's pg_type, and
 * its baked-in table of built-in types is checked against the server's pg_type.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { REPLICATION_SESSION_OPTIONS } from '../../src/sources/postgres/connection-options.js';
import { rowLength, valueAt } from '../../src/pipeline/change.js';
import { decodeMessage, type RelationColumn, type RelationMessage } from '../../src/sources/postgres/pgoutput.js';
import { BUILTIN_TYPES, FIRST_NON_BUILTIN_OID, type QueryRows } from '../../src/sources/postgres/type-catalog.js';
import { createValueConverters, type ValueConverters } from '../../src/sources/postgres/values.js';
import { TORTURE_COLUMNS, TORTURE_EXPECTED_PROBLEMS, TORTURE_ROW_COUNT, TORTURE_TABLE_SQL, TORTURE_TYPES_SQL, expectedJson, tortureInserts } from '../fixtures/torture.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

describe('value converters on real PostgreSQL 15 text output', () => {
  let db: TestDatabase;
  let session: pg.Client; // the replication connection's settings
  let catalogClient: pg.Client; // a plain connection, as the daemon's type lookups use
  let queries = 0;
  let slot: string;

  before(async () => {
    db = await createTestDatabase('wlvals');
    await db.sql(TORTURE_TYPES_SQL);
    await db.sql(TORTURE_TABLE_SQL);
    await db.sql('CREATE PUBLICATION torture_pub FOR TABLE torture');
    slot = db.slotName('vals');
    await db.sql("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slot]);
    session = new pg.Client({ host: db.host, port: db.port, user: db.user, password: db.password, database: db.name, options: REPLICATION_SESSION_OPTIONS });
    await session.connect();
    for (const insert of tortureInserts()) await session.query(insert.sql, insert.params);
    catalogClient = await db.client();
  });

  after(async () => {
    await session?.end().catch(() => {});
    await catalogClient?.end().catch(() => {});
    await db?.drop();
  });

  const converters = (): { converters: ValueConverters; problems: Array<[number, string]> } => {
    const problems: Array<[number, string]> = [];
    const query: QueryRows = async (sql, params) => {
      queries++;
      return (await catalogClient.query(sql, params)).rows;
    };
    return { converters: createValueConverters({ query, onProblem: (oid, text) => problems.push([oid, text]) }), problems };
  };

  /** Converts every value of every row and compares with the fixture; returns the mismatches. */
  const check = (columns: readonly RelationColumn[], rows: Array<{ id: number; values: Array<string | null> }>, c: ValueConverters): string[] => {
    const convert = columns.map((column) => c.forColumn(column));
    const mismatches: string[] = [];
    for (const { id, values } of rows) {
      columns.forEach((column, i) => {
        if (column.name === 'id') return;
        const text = values[i] ?? null;
        const json = text === null ? 'null' : convert[i]!(text);
        assert.doesNotThrow(() => JSON.parse(json), `${column.name} row ${id}: ${json}`);
        const expected = expectedJson(column.name, id);
        if (json !== expected) mismatches.push(`${column.name} row ${id}: text ${JSON.stringify(text)} → ${json}, expected ${expected}`);
      });
    }
    return mismatches;
  };

  it('SELECT text output converts to the expected JSON', async () => {
    const attrs = await session.query<{ attname: string; atttypid: number; atttypmod: number }>(
      "SELECT attname, atttypid, atttypmod FROM pg_attribute WHERE attrelid = 'torture'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
    );
    const columns: RelationColumn[] = attrs.rows.map((a) => ({ isKey: a.attname === 'id', name: a.attname, typeOid: a.atttypid, typeMod: a.atttypmod }));
    const { converters: c, problems } = converters();
    const prepared = c.prepare(columns);
    assert.ok(prepared, 'user types need a pg_type lookup');
    await prepared;
    assert.equal(c.prepare(columns), undefined, 'the second prepare() is answered from the cache');

    // Not `col::text`: that cast differs from the output function for bool ("true"), bpchar (trimmed)
    // and inet ("::1/128"). The text-format result is the output function's text, as in pgoutput.
    const select = `SELECT id, ${TORTURE_COLUMNS.map((col) => col.name).join(', ')} FROM torture ORDER BY id`;
    const raw = { getTypeParser: () => (text: string) => text } as unknown as pg.CustomTypesConfig;
    const result = await session.query({ text: select, rowMode: 'array', types: raw });
    assert.equal(result.rows.length, TORTURE_ROW_COUNT);
    const rows = (result.rows as Array<Array<string | null>>).map((r) => ({ id: Number(r[0]), values: r }));
    assert.deepEqual(check(columns, rows, c), []);
    assert.deepEqual(problems, TORTURE_EXPECTED_PROBLEMS);
  });

  it('pgoutput text (the bytes the daemon receives) converts to the expected JSON', async () => {
    const changes = await session.query<{ data: Buffer }>(
      "SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL, 'proto_version', '1', 'publication_names', 'torture_pub')",
      [slot],
    );
    const messages = changes.rows.map((r) => decodeMessage(r.data));
    const relation = messages.find((m): m is RelationMessage => m.tag === 'relation');
    assert.ok(relation, 'a Relation message');
    const rows: Array<{ id: number; values: Array<string | null> }> = [];
    for (const m of messages) {
      if (m.tag !== 'insert') continue;
      const values = Array.from({ length: rowLength(m.newTuple) }, (_, i) => valueAt(m.newTuple, i)).map((v) =>
        typeof v === 'string' || v === null ? v : assert.fail('no unchanged TOAST in an INSERT'),
      );
      rows.push({ id: Number(values[0]), values });
    }
    assert.equal(rows.length, TORTURE_ROW_COUNT);
    const { converters: c, problems } = converters();
    await c.prepare(relation.columns);
    assert.deepEqual(check(relation.columns, rows, c), []);
    assert.deepEqual(problems, TORTURE_EXPECTED_PROBLEMS);
  });

  it('the type catalog resolves user types with one query per nesting level, then caches them', async () => {
    const before = queries;
    const { converters: c } = converters();
    const oids = await session.query<{ typname: string; oid: number }>(
      "SELECT typname, oid FROM pg_type WHERE typname IN ('mood', '_mood', 'posint', '_posint', 'doc', 'intlist', 'stamp', '_stamp', 'pair', '_pair', 'floatrange', '_floatrange')",
    );
    const oid = Object.fromEntries(oids.rows.map((r) => [r.typname, r.oid])) as Record<string, number>;
    const col = (name: string): RelationColumn => ({ isKey: false, name, typeOid: oid[name]!, typeMod: -1 });
    await c.prepare(Object.keys(oid).map(col));
    // Round 1: the 12 types; round 2: nothing new (bases int4/jsonb/int4[]/timestamptz are built in,
    // array elements are in round 1) — so exactly one query.
    assert.equal(queries - before, 1);
    const convert = (name: string, text: string): string => c.forColumn(col(name))(text);
    assert.equal(convert('mood', 'very sad'), '"very sad"');
    assert.equal(convert('_mood', '{happy,"very sad",NULL}'), '["happy","very sad",null]');
    assert.equal(convert('posint', '42'), '42');
    assert.equal(convert('_posint', '{1,NULL}'), '[1,null]');
    assert.equal(convert('doc', '{"a": 1}'), '{"a": 1}');
    assert.equal(convert('intlist', '{{1},{2}}'), '[[1],[2]]');
    assert.equal(convert('stamp', '2024-02-29 08:15:56+00'), '"2024-02-29T08:15:56.000000Z"');
    assert.equal(convert('_stamp', '{"2024-02-29 08:15:56+00"}'), '["2024-02-29T08:15:56.000000Z"]');
    assert.equal(convert('pair', '(1,x)'), '"(1,x)"');
    assert.equal(convert('_pair', '{"(1,x)"}'), '["(1,x)"]');
    assert.equal(convert('floatrange', '[1,2)'), '"[1,2)"');
    assert.equal(convert('_floatrange', '{"[1,2)"}'), '["[1,2)"]');
    // information_schema domains (OIDs assigned at initdb) are looked up too, and resolve to their base.
    const cardinal = await session.query<{ oid: number }>("SELECT 'information_schema.cardinal_number'::regtype::oid AS oid");
    const cardinalOid = cardinal.rows[0]!.oid;
    await c.prepare([{ isKey: false, name: 'n', typeOid: cardinalOid, typeMod: -1 }]);
    assert.equal(c.forColumn({ isKey: false, name: 'n', typeOid: cardinalOid, typeMod: -1 })('7'), '7');
  });

  it("the baked-in built-in type table matches the server's pg_type", async () => {
    const r = await session.query<{ oid: number; typname: string; typtype: string; typelem: number; elemdelim: string | null; is_array: boolean }>(
      `SELECT t.oid, t.typname, t.typtype, t.typelem, e.typdelim AS elemdelim, (t.typoutput = 'array_out'::regproc) AS is_array
         FROM pg_type t LEFT JOIN pg_type e ON e.oid = t.typelem
        WHERE t.oid < $1 AND t.typtype IN ('b', 'r', 'm')`,
      [FIRST_NON_BUILTIN_OID],
    );
    const missing: string[] = [];
    for (const row of r.rows) {
      const info = BUILTIN_TYPES.get(row.oid);
      // Arrays of system catalog row types and of pseudo-types (cstring, record) are not column types.
      if (!info) {
        if (!(row.is_array && ['c', 'p'].includes((await session.query('SELECT typtype FROM pg_type WHERE oid = $1', [row.typelem])).rows[0]?.typtype))) missing.push(row.typname);
        continue;
      }
      if (row.is_array) {
        assert.deepEqual(info, { form: 'array', elementOid: row.typelem, delimiter: row.elemdelim }, row.typname);
      } else {
        assert.equal(info.form, 'scalar', row.typname);
      }
    }
    assert.deepEqual(missing, [], 'built-in types missing from BUILTIN_TYPES');
    const serverOids = new Set(r.rows.map((row) => row.oid));
    assert.deepEqual([...BUILTIN_TYPES.keys()].filter((oid) => !serverOids.has(oid)), [], 'BUILTIN_TYPES entries unknown to the server');
    const names = Object.fromEntries(r.rows.map((row) => [row.typname, BUILTIN_TYPES.get(row.oid)]));
    const kinds = { bool: 'bool', bytea: 'bytea', int2: 'int', int4: 'int', int8: 'int', oid: 'int', float4: 'float', float8: 'float', numeric: 'numeric', json: 'json', jsonb: 'json', date: 'date', timestamp: 'timestamp', timestamptz: 'timestamptz', interval: 'interval', text: 'text', time: 'text', uuid: 'text' };
    for (const [name, kind] of Object.entries(kinds)) assert.deepEqual(names[name], { form: 'scalar', kind }, name);
  });
});
