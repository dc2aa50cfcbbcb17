/**
 * `wal-listener typegen -c config.yml schema.table…`: reads the tables' columns from PostgreSQL's
 * catalog (the `database` section of the config) and writes TypeScript for the consumer SDK: an
 * interface per table, a `Tables` map, and `columnTypes`, the column type map `createConsumer()`
 * takes to decode values (and the key columns that order changes on NATS and RabbitMQ).
 *
 * Runnable by itself until the CLI has subcommands:
 *   wal-listener typegen -c config.yml public.users > users.ts
 */
import type pg from 'pg';
import type { Config } from '../config/schema.js';
import { ConfigError, describeError, WalListenerError } from '../errors.js';
import { connectClient } from '../sources/postgres/connection-options.js';
import { parseCommandArgs, readConfig, UsageExit } from './args.js';
import { EXIT_FATAL, EXIT_OK, EXIT_USAGE } from './exit-codes.js';

export interface TypegenOptions {
  /** Module the generated file imports the SDK's types from (default "wal-listener/consumer"). */
  importFrom?: string;
}

/** One column as the catalog describes it, domains resolved to their base type. */
interface CatalogColumn {
  name: string;
  notNull: boolean;
  /** pg_type name of the (base) scalar type. */
  typeName: string;
  isArray: boolean;
  /** Labels when the type is an enum. */
  enumLabels: string[] | null;
}

interface CatalogTable {
  schema: string;
  table: string;
  columns: CatalogColumn[];
  key: string[];
}

/**
 * Follows each column's type through domains and arrays to the scalar type underneath
 * (`typoutput = array_out` tells arrays from other types with an element, as the daemon does).
 */
const COLUMNS_SQL = `
WITH RECURSIVE chain(attnum, oid, depth, arrays) AS (
  SELECT a.attnum, a.atttypid, 0, 0
    FROM pg_catalog.pg_attribute a
   WHERE a.attrelid = $1::pg_catalog.regclass AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT c.attnum, CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.typelem END, c.depth + 1,
         c.arrays + CASE WHEN t.typtype = 'd' THEN 0 ELSE 1 END
    FROM chain c JOIN pg_catalog.pg_type t ON t.oid = c.oid
   WHERE c.depth < 32 AND (t.typtype = 'd' OR (t.typoutput = 'pg_catalog.array_out'::pg_catalog.regproc AND t.typelem <> 0))
), base AS (
  SELECT DISTINCT ON (attnum) attnum, oid, arrays FROM chain ORDER BY attnum, depth DESC
)
SELECT a.attname AS name, a.attnotnull AS not_null, t.typname AS type_name, b.arrays > 0 AS is_array,
       CASE WHEN t.typtype = 'e' THEN
         (SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid)
       END AS enum_labels
  FROM base b
  JOIN pg_catalog.pg_attribute a ON a.attrelid = $1::pg_catalog.regclass AND a.attnum = b.attnum
  JOIN pg_catalog.pg_type t ON t.oid = b.oid
 ORDER BY b.attnum`;

/** The key the daemon uses: the replica identity index with REPLICA IDENTITY USING INDEX, else the primary key. */
const KEY_SQL = `
SELECT a.attname AS name
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_index i ON i.indrelid = c.oid
   AND CASE WHEN c.relreplident = 'i' THEN i.indisreplident ELSE i.indisprimary END
 CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
 WHERE c.oid = $1::pg_catalog.regclass
 ORDER BY k.ord`;

/** Connects with the config's `database` section and returns the TypeScript for `tables` ("schema.table"). */
export async function generateTypes(config: Config, tables: readonly string[], options: TypegenOptions = {}): Promise<string> {
  if (tables.length === 0) throw new ConfigError('WAL_USAGE', 'name at least one table, e.g. public.users');
  const names = tables.map(splitTable);
  let client: pg.Client;
  try {
    client = await connectClient(config.database, { application_name: 'wal-listener typegen' });
  } catch (err) {
    throw new WalListenerError('WAL_PG_CONNECT', `cannot connect to PostgreSQL at ${config.database.host}:${config.database.port}: ${describeError(err)}`, { cause: err });
  }
  try {
    const read: CatalogTable[] = [];
    for (const [schema, table] of names) read.push(await readTable(client, schema, table, config.database.name));
    return render(read, options.importFrom ?? 'wal-listener/consumer');
  } finally {
    await client.end().catch(() => undefined);
  }
}

function splitTable(name: string): [string, string] {
  const dot = name.indexOf('.');
  if (dot <= 0 || dot === name.length - 1) throw new ConfigError('WAL_USAGE', `expected schema.table, got ${JSON.stringify(name)}`);
  return [name.slice(0, dot), name.slice(dot + 1)];
}

async function readTable(client: pg.Client, schema: string, table: string, database: string): Promise<CatalogTable> {
  const found = await client.query<{ oid: string | null }>('SELECT pg_catalog.to_regclass(pg_catalog.quote_ident($1) || \'.\' || pg_catalog.quote_ident($2))::oid AS oid', [schema, table]);
  const oid = found.rows[0]?.oid;
  if (!oid) throw new ConfigError('WAL_USAGE', `table ${schema}.${table} does not exist in database ${database}`);
  const columns = await client.query<{ name: string; not_null: boolean; type_name: string; is_array: boolean; enum_labels: string[] | null }>(COLUMNS_SQL, [oid]);
  const key = await client.query<{ name: string }>(KEY_SQL, [oid]);
  return {
    schema,
    table,
    columns: columns.rows.map((r) => ({ name: r.name, notNull: r.not_null, typeName: r.type_name, isArray: r.is_array, enumLabels: r.enum_labels })),
    key: key.rows.map((r) => r.name),
  };
}

const TS_TYPES: Readonly<Record<string, string>> = {
  bool: 'boolean',
  int2: 'number',
  int4: 'number',
  oid: 'number',
  int8: 'bigint',
  float4: 'number',
  float8: 'number',
  numeric: 'N',
  json: 'JsonValue',
  jsonb: 'JsonValue',
  bytea: 'Buffer',
  timestamp: 'Timestamp',
  timestamptz: 'Timestamp',
};

function render(tables: readonly CatalogTable[], importFrom: string): string {
  const used = new Set<string>();
  const out: string[] = [
    '// Generated by `wal-listener typegen`: the tables\' columns as the consumer SDK decodes them. Do not edit; run typegen again after a schema change.',
    `import type { ColumnTypeMap, JsonValue, Timestamp } from ${JSON.stringify(importFrom)};`,
    '',
  ];
  const names = new Map<CatalogTable, string>();
  for (const t of tables) {
    let name = pascal(`${t.schema}_${t.table}`);
    for (let n = 2; used.has(name); n++) name = `${pascal(`${t.schema}_${t.table}`)}${n}`;
    used.add(name);
    names.set(t, name);
    const hasNumeric = t.columns.some((c) => c.typeName === 'numeric');
    out.push(`/** ${t.schema}.${t.table}${hasNumeric ? ' (N: the type of numeric values, the exact string unless createConsumer() has a `decimal` option)' : ''} */`);
    out.push(`export interface ${name}${hasNumeric ? '<N = string>' : ''} {`);
    for (const c of t.columns) out.push(`  ${property(c.name)}: ${tsType(c)};`);
    out.push('}', '');
  }
  out.push('/** Row type of each table, by "schema.table". */', 'export interface Tables {');
  for (const t of tables) out.push(`  ${JSON.stringify(`${t.schema}.${t.table}`)}: ${names.get(t)};`);
  out.push('}', '', '/** Column types and key columns for createConsumer({ tables: columnTypes }). */', 'export const columnTypes = {');
  for (const t of tables) {
    const columns = t.columns.map((c) => `${property(c.name)}: ${JSON.stringify(`${c.typeName}${c.isArray ? '[]' : ''}`)}`).join(', ');
    out.push(`  ${JSON.stringify(`${t.schema}.${t.table}`)}: { columns: { ${columns} }, key: ${JSON.stringify(t.key)} },`);
  }
  out.push('} as const satisfies ColumnTypeMap;', '');
  return out.join('\n');
}

function tsType(c: CatalogColumn): string {
  const scalar = c.enumLabels ? c.enumLabels.map((l) => JSON.stringify(l)).join(' | ') || 'string' : (TS_TYPES[c.typeName] ?? 'string');
  const type = c.isArray ? `(${scalar} | null)[]` : scalar;
  return c.notNull ? type : `${type} | null`;
}

function pascal(name: string): string {
  const out = name
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((part) => part[0]!.toUpperCase() + part.slice(1))
    .join('');
  return /^[A-Za-z_]/.test(out) ? out : `T${out}`;
}

function property(name: string): string {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) ? name : JSON.stringify(name);
}

export const TYPEGEN_HELP = `Usage: wal-listener typegen [--config <file>] <schema.table>...

Reads the tables' columns from PostgreSQL (the config's database section) and prints TypeScript
for wal-listener/consumer: an interface per table, a Tables map, and columnTypes for
createConsumer({ tables: columnTypes }).

  wal-listener typegen -c config.yml public.users public.orders > src/tables.ts
`;

const OPTIONS = {
  config: { type: 'string', short: 'c', default: 'config.yml' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The command: `-c config.yml` (default config.yml) and table names; TypeScript on stdout. Returns the exit code. */
export async function runTypegen(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, OPTIONS, TYPEGEN_HELP, true);
  if (values.help) {
    process.stdout.write(TYPEGEN_HELP);
    return EXIT_OK;
  }
  if (positionals.length === 0) throw new UsageExit(`wal-listener: typegen needs at least one table (schema.table) [WAL_USAGE]\n\n${TYPEGEN_HELP}`);
  const { config } = readConfig(values.config);
  try {
    process.stdout.write(await generateTypes(config, positionals));
    return EXIT_OK;
  } catch (err) {
    const code = err instanceof WalListenerError ? err.code : undefined;
    process.stderr.write(`wal-listener typegen: ${describeError(err)}${code ? ` [${code}]` : ''}\n`);
    return err instanceof ConfigError ? EXIT_USAGE : EXIT_FATAL;
  }
}
