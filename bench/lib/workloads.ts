/**
 * The four backlogs of issue 12. Each has SQL written before the slots exist (table, starting rows:
 * not decoded) and the backlog itself, written after every contender's slot exists and before any
 * of them reads: every contender decodes exactly the same WAL.
 */
import type pg from 'pg';

export interface WorkloadSpec {
  /** Letter of the table. */
  key: 'a' | 'b' | 'c' | 'd';
  name: string;
  description: string;
  /** Row changes at scale 1. */
  rows: number;
  /** Transactions in a backlog of `rows` changes. */
  txns(rows: number): number;
  /** Table and rows that exist before the slots (not decoded). */
  setup(table: string, rows: number): string[];
  /** The backlog every contender drains. */
  backlog(table: string, rows: number): string[];
  /**
   * How many times floor-stdout writes each row change's message: about as many bytes as the
   * daemon's event of it holds (1; 2 for (d), whose events carry the TOASTed text in `data` and in
   * `dataOld`).
   */
  echoCopies: number;
  /** Checks that the setup is what the workload claims (e.g. that values really are TOASTed). */
  verify?(client: pg.Client, table: string, rows: number): Promise<void>;
}

export const sixColumns = (table: string): string => `CREATE TABLE ${table} (
  id bigserial PRIMARY KEY,
  name text NOT NULL,
  qty int NOT NULL,
  price numeric(12,2),
  attrs jsonb,
  created_at timestamptz NOT NULL
)`;

/** Column list and SELECT list of one six-column row from the integer expression `g`. */
export const sixColumnRow = (g: string): string =>
  `(name, qty, price, attrs, created_at) SELECT 'customer ' || ${g}, ${g} % 1000, ${g} * 1.25, ` +
  `jsonb_build_object('tag', ${g} % 7, 'active', ${g} % 2 = 0), now() - make_interval(secs => ${g})`;

export const bigTxn: WorkloadSpec = {
  key: 'a',
  name: 'big-txn',
  description: 'one 300,000-row transaction, 6 columns (bigserial, text, int, numeric, jsonb, timestamptz)',
  rows: 300_000,
  echoCopies: 1,
  txns: () => 1,
  setup: (table) => [sixColumns(table)],
  backlog: (table, rows) => [`INSERT INTO ${table} ${sixColumnRow('g')} FROM generate_series(1, ${rows}) AS g`],
};

export const smallTxns: WorkloadSpec = {
  key: 'b',
  name: 'small-txns',
  description: '30,000 single-row transactions, same 6-column table',
  rows: 30_000,
  echoCopies: 1,
  txns: (rows) => rows,
  setup: (table) => [
    sixColumns(table),
    `CREATE PROCEDURE fill_${table}(n int) LANGUAGE plpgsql AS $$
     BEGIN
       FOR g IN 1..n LOOP
         INSERT INTO ${table} ${sixColumnRow('g')};
         COMMIT;
       END LOOP;
     END $$`,
  ],
  backlog: (table, rows) => [`CALL fill_${table}(${rows})`],
};

export const wideRows: WorkloadSpec = {
  key: 'c',
  name: 'wide-rows',
  description: 'one 100,000-row transaction, 20 columns of mixed types',
  rows: 100_000,
  echoCopies: 1,
  txns: () => 1,
  setup: (table) => [`CREATE TABLE ${table} (
    id bigserial PRIMARY KEY,
    c_int2 int2, c_int4 int4, c_int8 int8, c_text text, c_varchar varchar(64), c_bool bool,
    c_numeric numeric(14,4), c_float4 float4, c_float8 float8, c_date date, c_timestamp timestamp,
    c_timestamptz timestamptz, c_uuid uuid, c_jsonb jsonb, c_json json, c_int_array int[],
    c_text_array text[], c_bytea bytea, c_interval interval
  )`],
  backlog: (table, rows) => [`INSERT INTO ${table} (c_int2, c_int4, c_int8, c_text, c_varchar, c_bool, c_numeric, c_float4,
      c_float8, c_date, c_timestamp, c_timestamptz, c_uuid, c_jsonb, c_json, c_int_array, c_text_array, c_bytea, c_interval)
    SELECT g % 32000, g, g::int8 * 1000003, 'text value ' || g, 'varchar ' || g, g % 2 = 0, g * 1.0001, g / 7.0,
      g / 3.0, date '2024-01-01' + g % 3650, timestamp '2024-01-01' + g * interval '1 second',
      now() - g * interval '1 millisecond', md5(g::text)::uuid, jsonb_build_object('a', g, 'b', 'x' || g),
      json_build_object('a', g, 'c', g % 3 = 0), ARRAY[g, g + 1, g + 2], ARRAY['a' || g, 'b', NULL],
      decode(md5(g::text), 'hex'), make_interval(hours => g % 100, mins => g % 60, secs => 1.5)
    FROM generate_series(1, ${rows}) AS g`],
};

/** Bytes of text in each row's `body`: a random 32-character hex string repeated (cheap to make). */
const BODY_BYTES = 4096;

export const toastUpdates: WorkloadSpec = {
  key: 'd',
  name: 'toast-updates',
  description: '20,000 UPDATEs (one statement) of rows with a 4 KB out-of-line text, REPLICA IDENTITY FULL',
  rows: 20_000,
  echoCopies: 2,
  txns: () => 1,
  setup: (table, rows) => [
    `CREATE TABLE ${table} (id bigserial PRIMARY KEY, n int NOT NULL, body text NOT NULL)`,
    `ALTER TABLE ${table} REPLICA IDENTITY FULL`,
    // EXTERNAL: out of line and never compressed, although this text would compress well.
    `ALTER TABLE ${table} ALTER COLUMN body SET STORAGE EXTERNAL`,
    `INSERT INTO ${table} (n, body) SELECT 0, repeat(md5(random()::text || g), ${BODY_BYTES / 32}) FROM generate_series(1, ${rows}) AS g`,
  ],
  // Only `n` changes: the new tuple carries `body` as "unchanged TOAST", the old one (FULL) the whole text.
  backlog: (table) => [`UPDATE ${table} SET n = n + 1`],
  async verify(client, table, rows) {
    const r = await client.query<{ toast: string; width: number }>(
      `SELECT pg_relation_size(reltoastrelid) AS toast, (SELECT avg(octet_length(body)) FROM ${table})::int AS width
       FROM pg_class WHERE oid = $1::regclass`,
      [table],
    );
    const toast = Number(r.rows[0]?.toast ?? 0);
    if (r.rows[0]?.width !== BODY_BYTES || toast < rows * BODY_BYTES) {
      throw new Error(`${table}: body is not ${BODY_BYTES} bytes out of line (TOAST table ${toast} bytes for ${rows} rows)`);
    }
  },
};

export const WORKLOADS: readonly WorkloadSpec[] = [bigTxn, smallTxns, wideRows, toastUpdates];
