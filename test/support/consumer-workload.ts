/**
 * The consumer SDK's end-to-end workload: 1,000 changes over 3 tables with int8 beyond 2^53,
 * numeric, timestamptz and timestamp with microseconds, bytea, jsonb with big integers, arrays,
 * NULLs and an unchanged TOAST column, and for every change the typed values the SDK must hand to
 * its handler. Every insert and update sets `v` to its change's index, so a received change names
 * the change it is; a delete is named by its table and key.
 */
import { Timestamp } from '../../src/consumer/timestamp.js';
import type { ColumnTypeMap, Row } from '../../src/consumer/types.js';
import type { TestDatabase } from './postgres.js';

export const CHANGES = 1000;

export const TABLES_SQL = `
  CREATE TABLE accounts (
    id int8 PRIMARY KEY, v int4 NOT NULL, balance numeric(30,10) NOT NULL, opened timestamptz NOT NULL,
    photo bytea, nickname text, doc text NOT NULL
  );
  CREATE TABLE transfers (
    id bigint PRIMARY KEY, v int4 NOT NULL, account_id int8 NOT NULL, amount numeric NOT NULL,
    at timestamp NOT NULL, meta jsonb, ratio float8
  );
  CREATE TABLE tags (
    id int4 PRIMARY KEY, v int4 NOT NULL, labels text[], counts int8[], flag bool, seen timestamptz
  );`;

/** The column type map of the three tables, written by hand (test/integration/typegen.test.ts checks typegen writes the same). */
export const COLUMN_TYPES: ColumnTypeMap = {
  'public.accounts': {
    columns: { id: 'int8', v: 'int4', balance: 'numeric', opened: 'timestamptz', photo: 'bytea', nickname: 'text', doc: 'text' },
    key: ['id'],
  },
  'public.transfers': {
    columns: { id: 'int8', v: 'int4', account_id: 'int8', amount: 'numeric', at: 'timestamp', meta: 'jsonb', ratio: 'float8' },
    key: ['id'],
  },
  'public.tags': {
    columns: { id: 'int4', v: 'int4', labels: 'text[]', counts: 'int8[]', flag: 'bool', seen: 'timestamptz' },
    key: ['id'],
  },
};

export type TableName = 'public.accounts' | 'public.transfers' | 'public.tags';

export interface Op {
  readonly index: number;
  readonly table: TableName;
  readonly key: string;
  readonly action: 'INSERT' | 'UPDATE' | 'DELETE';
  readonly sql: string;
  readonly params: readonly unknown[];
  readonly after: Row | null;
  readonly before: Row | null;
  readonly unchangedToast: readonly string[];
}

/** What names a change: `table key action [v]`. */
export function signature(table: string, key: string, action: string, v: unknown): string {
  return action === 'DELETE' ? `${table} ${key} DELETE` : `${table} ${key} ${action} ${String(v)}`;
}

export function opSignature(op: Op): string {
  return signature(op.table, op.key, op.action, op.index);
}

/** mulberry32: a small seeded PRNG, so the workload is the same on every run. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const BASE_MICROS = 1_709_194_556_123_456n; // 2024-02-29T08:15:56.123456Z

/** "2024-02-29T08:15:56.123457Z" for `step`, microseconds included (`zone` false: no Z, a timestamp). */
function isoMicros(step: number, zone: boolean): string {
  const micros = BASE_MICROS + BigInt(step) * 1_000_001n;
  const ms = Number(micros / 1000n);
  const text = `${new Date(ms).toISOString().slice(0, 19)}.${(micros % 1_000_000n).toString().padStart(6, '0')}`;
  return zone ? `${text}Z` : text;
}

const BIG = 9007199254740993n; // 2^53 + 1

/** Builds the 1,000 changes, in the order they are written. */
export function buildWorkload(): Op[] {
  const random = prng(15);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => Math.floor(random() * 256)));
  const doc = (): string => Buffer.from(Array.from({ length: 6000 }, () => Math.floor(random() * 256))).toString('base64');
  const plans: Record<TableName, Plan[]> = { 'public.accounts': [], 'public.transfers': [], 'public.tags': [] };
  const add = (table: TableName, action: 'INSERT' | 'UPDATE', id: bigint | number, row: (index: number) => Row, decode: (row: Row) => Row, unchangedToast: string[] = []): void => {
    plans[table].push({ table, make: (index) => write(table, action, { id, v: index, ...row(index) }, decode, unchangedToast) });
  };

  // accounts: 50 inserts, 150 updates (doc untouched: unchanged TOAST), 20 deletes = 220
  const accountIds = Array.from({ length: 50 }, (_, i) => BIG + BigInt(i));
  const account = (index: number): Row => ({
    balance: `${BigInt(index % 50) * 10n ** 18n + BigInt(index)}.${String(index * 7919).padStart(10, '0').slice(-10)}`,
    opened: isoMicros(index, true),
    photo: index % 7 === 0 ? null : bytes(index % 33),
    nickname: index % 3 === 0 ? null : `nick ${index} "ñ ☃" ,{}`,
  });
  const accountTyped = (row: Row): Row => typed(row, { opened: 'tz' });
  for (const id of accountIds) add('public.accounts', 'INSERT', id, (index) => ({ ...account(index), doc: doc() }), accountTyped);
  for (let n = 0; n < 150; n++) add('public.accounts', 'UPDATE', pick(accountIds.slice(0, 30)), account, accountTyped, ['doc']);
  for (const id of accountIds.slice(30)) plans['public.accounts'].push(deletion('public.accounts', id));

  // transfers: 400 inserts, 100 updates, 30 deletes = 530
  const transfer = (index: number): Row => ({
    account_id: pick(accountIds),
    amount: index % 5 === 0 ? '-0.000000000000000000001' : `${index}.${'4500'.slice(0, (index % 4) + 1)}`,
    at: isoMicros(index * 3, false),
    meta: index % 4 === 0 ? null : `{"n": ${(BIG + BigInt(index)).toString()}, "s": "t${index}", "arr": [1, 2.5, null]}`,
    ratio: index % 50 === 0 ? 'NaN' : index / 7,
  });
  const transferTyped = (row: Row): Row => typed(row, { at: 'ts', meta: 'json', ratio: 'float' });
  for (let id = 1n; id <= 400n; id++) add('public.transfers', 'INSERT', id, transfer, transferTyped);
  for (let n = 0; n < 100; n++) add('public.transfers', 'UPDATE', BigInt(1 + Math.floor(random() * 370)), transfer, transferTyped);
  for (let id = 371n; id <= 400n; id++) plans['public.transfers'].push(deletion('public.transfers', id));

  // tags: 100 inserts, 120 updates, 30 deletes = 250
  const tag = (index: number): Row => ({
    labels: index % 6 === 0 ? null : [`l${index}`, null, 'a,b', 'quote"d', ''],
    counts: index % 9 === 0 ? null : [BIG + BigInt(index), null, BigInt(-index)],
    flag: index % 3 === 0 ? null : index % 2 === 0,
    seen: index % 4 === 1 ? null : isoMicros(index * 11, true),
  });
  const tagTyped = (row: Row): Row => typed(row, { seen: 'tz' });
  for (let id = 1; id <= 100; id++) add('public.tags', 'INSERT', id, tag, tagTyped);
  for (let n = 0; n < 120; n++) add('public.tags', 'UPDATE', 1 + Math.floor(random() * 70), tag, tagTyped);
  for (let id = 71; id <= 100; id++) plans['public.tags'].push(deletion('public.tags', id));

  // Interleave the tables, keeping each table's own order (a row's insert before its updates and delete).
  const queues = Object.values(plans).map((list) => [...list]);
  const ops: Op[] = [];
  while (queues.some((q) => q.length > 0)) {
    const plan = pick(queues.filter((q) => q.length > 0)).shift()!;
    const index = ops.length;
    ops.push({ index, table: plan.table, ...plan.make(index) });
  }
  if (ops.length !== CHANGES) throw new Error(`workload has ${ops.length} changes, expected ${CHANGES}`);
  return ops;
}

type Change = Omit<Op, 'index' | 'table'>;
type Plan = { table: TableName; make: (index: number) => Change };

/** An INSERT of every column of `row`, or an UPDATE of them all but the key (columns not in `row` stay as they are). */
function write(table: TableName, action: 'INSERT' | 'UPDATE', row: Row, decode: (row: Row) => Row, unchangedToast: string[]): Change {
  const columns = Object.keys(row);
  const name = table.slice('public.'.length);
  const sql =
    action === 'INSERT'
      ? `INSERT INTO ${name} (${columns.join(', ')}) VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')})`
      : `UPDATE ${name} SET ${columns.slice(1).map((c, i) => `${c} = $${i + 2}`).join(', ')} WHERE id = $1`;
  // pg sends bigint neither alone nor in arrays: as text, which PostgreSQL casts.
  const param = (value: unknown): unknown => (typeof value === 'bigint' ? value.toString() : Array.isArray(value) ? value.map(param) : value);
  return { key: String(row.id), action, sql, params: columns.map((c) => param(row[c])), after: decode(row), before: null, unchangedToast };
}

function deletion(table: TableName, id: bigint | number): Plan {
  return {
    table,
    make: () => ({
      key: String(id),
      action: 'DELETE',
      sql: `DELETE FROM ${table.slice('public.'.length)} WHERE id = $1`,
      params: [String(id)],
      after: null,
      // The default replica identity sends the old key only; int8 keys decode as bigint.
      before: { id },
      unchangedToast: [],
    }),
  };
}

/** A row as written → the values the SDK must decode it to. */
function typed(row: Row, kinds: Record<string, 'tz' | 'ts' | 'json' | 'float'>): Row {
  const out: Row = {};
  for (const [column, value] of Object.entries(row)) {
    const kind = kinds[column];
    if (value === null || kind === undefined) out[column] = value;
    else if (kind === 'tz' || kind === 'ts') out[column] = Timestamp.from(value as string);
    else if (kind === 'float') out[column] = value === 'NaN' ? NaN : value;
    else out[column] = jsonbValue(value as string);
  }
  return out;
}

/** The jsonb written above, as decoded (big integer as bigint). */
function jsonbValue(text: string): unknown {
  const m = /"n": (\d+), "s": "([^"]*)"/.exec(text)!;
  return { n: BigInt(m[1]!), s: m[2], arr: [1, 2.5, null] };
}

export async function createWorkloadTables(db: TestDatabase): Promise<void> {
  await db.sql(TABLES_SQL);
}

/**
 * Writes `ops` in transactions of `perTransaction` changes; `pauseMs` between transactions spreads
 * them over time (so a daemon can be killed in the middle).
 */
export async function writeOps(db: TestDatabase, ops: readonly Op[], perTransaction: number, pauseMs = 0): Promise<void> {
  const client = await db.client();
  try {
    for (let i = 0; i < ops.length; i += perTransaction) {
      await client.query('BEGIN');
      for (const op of ops.slice(i, i + perTransaction)) await client.query(op.sql, [...op.params]);
      await client.query('COMMIT');
      if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
    }
  } finally {
    await client.end();
  }
}
