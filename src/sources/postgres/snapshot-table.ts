/**
 * A table as a snapshot reads it: its columns in the order pgoutput sends them (attnum order,
 * without dropped and generated columns), its primary key, and the key-ordered chunk query
 * (keyset pagination: `WHERE (k1, k2) > ($1, $2) ORDER BY k1, k2 LIMIT n`). Values are read as
 * PostgreSQL text with the replication connection's session settings, so a chunk row is the same
 * text a change of that row carries in the stream, and its key compares equal.
 */
import type pg from 'pg';
import { WalListenerError } from '../../errors.js';
import { valueAt, type Row } from '../../pipeline/change.js';
import type { RelationColumn, RelationMessage } from './pgoutput.js';

export interface SnapshotTable {
  readonly schema: string;
  readonly table: string;
  /** The table's OID: pgoutput's relation id. */
  readonly relid: number;
  readonly columns: readonly RelationColumn[];
  /** Indexes into `columns` of the primary key, in key order. */
  readonly keyIndexes: readonly number[];
  /** `format_type` of each key column (casts of the last key). */
  readonly keyTypes: readonly string[];
}

type Queryable = Pick<pg.Client, 'query'>;

const quote = (name: string): string => `"${name.replace(/"/g, '""')}"`;

/** "schema.table" (each part may be double-quoted) → its two names, or null. */
export function parseTableName(text: string): { schema: string; table: string } | null {
  const match = /^(?:"((?:[^"]|"")+)"|([^."]+))\.(?:"((?:[^"]|"")+)"|([^."]+))$/.exec(text.trim());
  if (!match) return null;
  const schema = match[1]?.replace(/""/g, '"') ?? match[2]!;
  const table = match[3]?.replace(/""/g, '"') ?? match[4]!;
  return { schema, table };
}

/** Looks the table up; a missing table or one without a primary key is refused (WAL_SNAPSHOT_TABLE). */
export async function readSnapshotTable(client: Queryable, schema: string, table: string): Promise<SnapshotTable> {
  const name = `${schema}.${table}`;
  const found = await client.query<{ relid: number; kind: string; identity: string }>(
    `SELECT c.oid::int AS relid, c.relkind AS kind, c.relreplident AS identity FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [schema, table],
  );
  const rel = found.rows[0];
  if (!rel || (rel.kind !== 'r' && rel.kind !== 'p')) {
    throw new WalListenerError('WAL_SNAPSHOT_TABLE', `cannot snapshot ${name}: there is no such table`);
  }
  const columns = await client.query<{ name: string; type_oid: number; type_mod: number; type_name: string; key_pos: number | null }>(
    `SELECT a.attname AS name, a.atttypid::int AS type_oid, a.atttypmod AS type_mod, format_type(a.atttypid, a.atttypmod) AS type_name,
            array_position(i.indkey::int2[], a.attnum) AS key_pos
       FROM pg_attribute a LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
      WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
      ORDER BY a.attnum`,
    [rel.relid],
  );
  const keyed = columns.rows.map((c, index) => ({ ...c, index })).filter((c) => c.key_pos !== null).sort((a, b) => a.key_pos! - b.key_pos!);
  if (keyed.length === 0) {
    throw new WalListenerError(
      'WAL_SNAPSHOT_TABLE',
      `cannot snapshot ${name}: it has no primary key (rows are read in key order, and a row read is matched with its changes by key); add one, e.g. ALTER TABLE ${quote(schema)}.${quote(table)} ADD PRIMARY KEY (...)`,
    );
  }
  if (rel.identity === 'i') {
    // A delete then carries that index's columns, not the primary key: it could not be matched with a row read.
    throw new WalListenerError('WAL_SNAPSHOT_TABLE', `cannot snapshot ${name}: its REPLICA IDENTITY is USING INDEX, so deletes do not carry the primary key; use REPLICA IDENTITY DEFAULT or FULL`);
  }
  return {
    schema,
    table,
    relid: rel.relid,
    columns: columns.rows.map((c) => ({ name: c.name, typeOid: c.type_oid, typeMod: c.type_mod, isKey: c.key_pos !== null })),
    keyIndexes: keyed.map((c) => c.index),
    keyTypes: keyed.map((c) => c.type_name),
  };
}

/** Refuses a table the publication does not cover: its changes would not reach the watermark window. */
export async function checkPublished(client: Queryable, publication: string, t: SnapshotTable): Promise<void> {
  const result = await client.query('SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3', [publication, t.schema, t.table]);
  if (result.rowCount === 0) {
    throw new WalListenerError('WAL_SNAPSHOT_TABLE', `cannot snapshot ${t.schema}.${t.table}: it is not in publication "${publication}" (its changes would not be streamed)`);
  }
}

/** The relation as pgoutput would describe it (replica identity aside), for the pipeline's table handle. */
export function relationOf(t: SnapshotTable): RelationMessage {
  return { tag: 'relation', relationId: t.relid, schema: t.schema, name: t.table, replicaIdentity: 'd', columns: t.columns };
}

/**
 * The chunk query: every column in pgoutput's order, rows after `$1…$k` (the last key) when
 * `after`, within `where` when given, in key order, `$k+1` rows at most.
 */
export function chunkQuery(t: SnapshotTable, where: string | null, after: boolean): string {
  const keys = t.keyIndexes.map((i) => quote(t.columns[i]!.name));
  const conditions: string[] = [];
  if (after) conditions.push(`(${keys.join(', ')}) > (${t.keyTypes.map((type, i) => `$${i + 1}::${type}`).join(', ')})`);
  if (where) conditions.push(`(${where})`);
  return (
    `SELECT ${t.columns.map((c) => quote(c.name)).join(', ')} FROM ${quote(t.schema)}.${quote(t.table)}` +
    (conditions.length ? ` WHERE ${conditions.join(' AND ')}` : '') +
    ` ORDER BY ${keys.join(', ')} LIMIT $${after ? t.keyIndexes.length + 1 : 1}`
  );
}

const asText = (value: string): string => value;
/** pg returns every value as its text (the converters read PostgreSQL text, as from pgoutput). */
const TEXT_TYPES = { getTypeParser: () => asText } as unknown as pg.CustomTypesConfig;

/** Reads one chunk: rows of text values (null for NULL) in column order. */
export async function readChunk(client: Queryable, t: SnapshotTable, where: string | null, lastKey: readonly string[] | null, size: number): Promise<(string | null)[][]> {
  const values: unknown[] = lastKey ? [...lastKey, size] : [size];
  const result = await client.query({ text: chunkQuery(t, where, lastKey !== null), values, rowMode: 'array', types: TEXT_TYPES });
  return result.rows as (string | null)[][];
}

/** The key of a row (chunk row or streamed tuple) as one string: equal keys, equal strings. */
export function keyText(row: Row, keyIndexes: readonly number[]): string {
  if (keyIndexes.length === 1) return String(valueAt(row, keyIndexes[0]!));
  return JSON.stringify(keyIndexes.map((i) => valueAt(row, i)));
}

/** The key of a chunk row as stored in wal_listener.backfills.last_key. */
export function keyValues(row: readonly (string | null)[], keyIndexes: readonly number[]): string[] {
  return keyIndexes.map((i) => row[i] ?? '');
}

/** The transactions a snapshot does not see: running when it was taken (`xip`) or started after (`xid >= xmax`). 32-bit xids, as pgoutput sends them. */
export interface SnapshotHorizon {
  readonly xmax: number;
  readonly xip: ReadonlySet<number>;
}

/** Whether `xid` (32-bit, wrapping) was invisible to the snapshot. */
export function invisible(horizon: SnapshotHorizon, xid: number): boolean {
  return horizon.xip.has(xid) || ((xid - horizon.xmax) >>> 0) < 0x80000000;
}

/** Parses pg_current_snapshot()'s text ("xmin:xmax:xip,xip"), xids reduced to 32 bits. */
export function parseSnapshot(text: string): SnapshotHorizon {
  const [, xmax = '0', xip = ''] = text.split(':');
  const low32 = (x: string): number => Number(BigInt(x) & 0xffffffffn);
  return { xmax: low32(xmax), xip: new Set(xip === '' ? [] : xip.split(',').map(low32)) };
}

/**
 * Reads one chunk in a REPEATABLE READ transaction and returns the rows with the snapshot they
 * were read in: a transaction can be in the WAL before a watermark and still be invisible to a read
 * that starts after the watermark committed (commits become visible slightly after they are
 * written), and its changes must then win over the rows read (backfiller.ts).
 */
export async function readChunkInSnapshot(client: pg.Client, t: SnapshotTable, where: string | null, lastKey: readonly string[] | null, size: number): Promise<{ rows: (string | null)[][]; horizon: SnapshotHorizon }> {
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    const snapshot = await client.query<{ s: string }>('SELECT pg_current_snapshot()::text AS s');
    const rows = await readChunk(client, t, where, lastKey, size);
    await client.query('COMMIT');
    return { rows, horizon: parseSnapshot(snapshot.rows[0]!.s) };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}
