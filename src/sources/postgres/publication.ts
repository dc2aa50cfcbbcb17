/**
 * The publication's scope (issue 10 #7). Publishing a table makes PostgreSQL refuse the
 * application's UPDATE and DELETE on it when it has no replica identity, so the daemon publishes
 * only what it streams: with listener.filter.tables, FOR TABLE the tables the filter names ("table"
 * resolved to that table in every schema where it exists now) and FOR TABLES IN SCHEMA the schemas
 * it names whole ("schema.*", PostgreSQL 15+), publishing only the actions the filter asks for;
 * FOR ALL TABLES only without a filter. An existing publication is never altered: a scope that
 * differs from the filter is reported with the statement to run.
 */
import type pg from 'pg';
import type { Action, ListenerConfig } from '../../config/schema.js';
import { parseFilterKey } from '../../pipeline/filter.js';

type Queryable = Pick<pg.Client, 'query'>;

const ACTIONS: readonly Action[] = ['insert', 'update', 'delete', 'truncate'];
/** Schemas never published by the daemon: PostgreSQL's own and the daemon's (wal_listener). */
const SYSTEM_SCHEMAS = "n.nspname NOT IN ('pg_catalog', 'information_schema', 'wal_listener') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'";

export const quoteIdent = (name: string): string => `"${name.replace(/"/g, '""')}"`;
const qualified = (name: string): string => {
  const dot = name.indexOf('.');
  return `${quoteIdent(name.slice(0, dot))}.${quoteIdent(name.slice(dot + 1))}`;
};

/** What the publication should cover for the configured filter. */
export interface PublicationScope {
  /** true: FOR ALL TABLES (no filter). */
  allTables: boolean;
  /** "schema.table" of existing tables the filter names, sorted. */
  tables: string[];
  /** Schemas the filter names whole ("schema.*"), published FOR TABLES IN SCHEMA, sorted. */
  schemas: string[];
  /** The actions the filter asks for, in PostgreSQL's order. */
  publish: Action[];
  /** Filter keys that match no existing table or schema now. */
  unmatched: string[];
}

export async function serverVersion(client: Queryable): Promise<number> {
  return Number((await client.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0]!.v);
}

/**
 * Resolves listener.filter.tables against the tables that exist now. With a filter, the
 * listener.outbox tables are published too (their inserts: updates and deletes publish nothing).
 */
export async function desiredScope(client: Queryable, filter: ListenerConfig['filter'], outbox: ListenerConfig['outbox'] = []): Promise<PublicationScope> {
  const entries = withOutbox(Object.entries(filter.tables ?? {}), outbox);
  if (entries.length === 0) return { allTables: true, tables: [], schemas: [], publish: [...ACTIONS], unmatched: [] };
  const keys = entries.map(([key]) => ({ key, ...parseFilterKey(key) }));
  const wanted = new Set<Action>(entries.flatMap(([, actions]) => actions ?? ACTIONS));
  const found = await client.query<{ schema: string; table: string }>(
    `SELECT n.nspname AS schema, c.relname AS table
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND ${SYSTEM_SCHEMAS}
        AND (c.relname = ANY ($1) OR n.nspname || '.' || c.relname = ANY ($2) OR n.nspname = ANY ($3))`,
    [keys.filter((k) => k.schema === null).map((k) => k.table), keys.filter((k) => k.schema !== null && k.table !== null).map((k) => k.key), keys.filter((k) => k.table === null).map((k) => k.schema)],
  );
  const tables = new Set<string>();
  const schemas = new Set<string>();
  const unmatched: string[] = [];
  for (const k of keys) {
    if (k.table === null) {
      // A schema named whole is published whole (tables created later included), even while empty.
      if (found.rows.some((r) => r.schema === k.schema) || (await schemaExists(client, k.schema!))) schemas.add(k.schema!);
      else unmatched.push(k.key);
      continue;
    }
    const matches = found.rows.filter((r) => r.table === k.table && (k.schema === null || r.schema === k.schema));
    if (matches.length === 0) unmatched.push(k.key);
    for (const r of matches) tables.add(`${r.schema}.${r.table}`);
  }
  for (const t of [...tables]) if (schemas.has(t.slice(0, t.indexOf('.')))) tables.delete(t);
  return { allTables: false, tables: [...tables].sort(), schemas: [...schemas].sort(), publish: ACTIONS.filter((a) => wanted.has(a)), unmatched };
}

/** Filter entries plus `insert` of each outbox table (only when there is a filter: no filter publishes every table). */
function withOutbox(entries: [string, Action[] | null][], outbox: ListenerConfig['outbox']): [string, Action[] | null][] {
  if (entries.length === 0 || outbox.length === 0) return entries;
  const merged = new Map(entries);
  for (const { table } of outbox) {
    const actions = merged.get(table);
    if (actions === undefined) merged.set(table, ['insert']);
    else if (actions !== null && !actions.includes('insert')) merged.set(table, [...actions, 'insert']);
  }
  return [...merged];
}

async function schemaExists(client: Queryable, schema: string): Promise<boolean> {
  return ((await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])).rowCount ?? 0) > 0;
}

/** The objects of a publication: "FOR ALL TABLES", or "FOR TABLE …, TABLES IN SCHEMA …"; "" for none. */
function objects(scope: Pick<PublicationScope, 'allTables' | 'tables' | 'schemas'>): string {
  if (scope.allTables) return 'FOR ALL TABLES';
  const parts = [...(scope.tables.length ? [`TABLE ${scope.tables.map(qualified).join(', ')}`] : []), ...(scope.schemas.length ? [`TABLES IN SCHEMA ${scope.schemas.map(quoteIdent).join(', ')}`] : [])];
  return parts.length ? `FOR ${parts.join(', ')}` : '';
}

const withPublish = (publish: readonly Action[]): string => (publish.length === ACTIONS.length ? '' : ` WITH (publish = '${publish.join(', ')}')`);

export function createStatement(name: string, scope: PublicationScope): string {
  return `CREATE PUBLICATION ${quoteIdent(name)} ${objects(scope)}${withPublish(scope.publish)}`.replace(/ {2,}/g, ' ').trimEnd();
}

/** Creates the publication for `scope`. Returns the statement run, or null when it existed already (created concurrently). */
export async function createPublication(client: Queryable, name: string, scope: PublicationScope): Promise<string | null> {
  const statement = createStatement(name, scope);
  try {
    await client.query(statement);
    return statement;
  } catch (err) {
    if ((err as { code?: string }).code === '42710') return null; // created concurrently
    throw err;
  }
}

export interface ExistingPublication {
  allTables: boolean;
  /** Every table it publishes now ("schema.table"), schemas expanded. */
  tables: string[];
  /** Schemas published FOR TABLES IN SCHEMA (PostgreSQL 15+). */
  schemas: string[];
  publish: Action[];
}

export async function readPublication(client: Queryable, name: string): Promise<ExistingPublication | null> {
  const pub = await client.query<{ oid: number; puballtables: boolean; pubinsert: boolean; pubupdate: boolean; pubdelete: boolean; pubtruncate: boolean }>(
    'SELECT oid, puballtables, pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication WHERE pubname = $1',
    [name],
  );
  const row = pub.rows[0];
  if (!row) return null;
  const tables = await client.query<{ name: string }>(
    "SELECT schemaname || '.' || tablename AS name FROM pg_publication_tables WHERE pubname = $1 AND schemaname <> 'wal_listener' ORDER BY 1",
    [name],
  );
  const schemas = (await serverVersion(client)) >= 150000
    ? (await client.query<{ name: string }>('SELECT n.nspname AS name FROM pg_publication_namespace p JOIN pg_namespace n ON n.oid = p.pnnspid WHERE p.pnpubid = $1 ORDER BY 1', [row.oid])).rows.map((r) => r.name)
    : [];
  const flags: Record<Action, boolean> = { insert: row.pubinsert, update: row.pubupdate, delete: row.pubdelete, truncate: row.pubtruncate };
  return { allTables: row.puballtables, tables: tables.rows.map((r) => r.name), schemas, publish: ACTIONS.filter((a) => flags[a]) };
}

/** How an existing publication differs from what the filter asks for, with the SQL that would fix it; null when it fits. */
export interface ScopeDifference {
  /** One sentence per difference. */
  differences: string[];
  /** What to run (never run by the daemon). */
  fix: string;
}

export function compareScope(name: string, existing: ExistingPublication, desired: PublicationScope): ScopeDifference | null {
  const differences: string[] = [];
  const fixes: string[] = [];
  // Replacing the publication in one transaction: no point in the WAL sees it missing (a slot would stop there).
  const replace = `BEGIN; DROP PUBLICATION ${quoteIdent(name)}; ${createStatement(name, desired)}; COMMIT;`;
  if (existing.allTables !== desired.allTables) {
    differences.push(existing.allTables
      ? `publication "${name}" is FOR ALL TABLES, but listener.filter.tables names only ${describeScope(desired)}: every table is decoded, and PostgreSQL refuses UPDATE/DELETE on any table without a replica identity`
      : `publication "${name}" covers only ${existing.tables.length ? existing.tables.join(', ') : 'no table'}, but no listener.filter.tables is set: changes to other tables are not published`);
    fixes.push(replace);
  } else if (!desired.allTables) {
    const covered = (t: string): boolean => existing.tables.includes(t) || existing.schemas.includes(t.slice(0, t.indexOf('.')));
    const missingTables = desired.tables.filter((t) => !covered(t));
    const missingSchemas = desired.schemas.filter((s) => !existing.schemas.includes(s));
    const extra = existing.tables.filter((t) => !desired.tables.includes(t) && !desired.schemas.includes(t.slice(0, t.indexOf('.'))));
    if (missingTables.length || missingSchemas.length) {
      differences.push(`publication "${name}" does not cover ${[...missingTables, ...missingSchemas.map((s) => `schema ${s}`)].join(', ')}, which listener.filter.tables names: their changes are not published (daemons with different filters need a listener.publication each)`);
    }
    if (extra.length) differences.push(`publication "${name}" also publishes ${extra.join(', ')}, which listener.filter.tables does not name (decoded for nothing; UPDATE/DELETE on them need a replica identity)`);
    if (differences.length) fixes.push(`ALTER PUBLICATION ${quoteIdent(name)} SET ${objects(desired).replace(/^FOR /, '') || 'TABLE'}`.trimEnd());
  }
  const missingActions = desired.publish.filter((a) => !existing.publish.includes(a));
  if (missingActions.length) {
    differences.push(`publication "${name}" does not publish ${missingActions.join(', ')}, which listener.filter.tables asks for`);
    if (!fixes.includes(replace)) fixes.push(`ALTER PUBLICATION ${quoteIdent(name)} SET (publish = '${ACTIONS.filter((a) => existing.publish.includes(a) || desired.publish.includes(a)).join(', ')}')`);
  }
  return differences.length ? { differences, fix: fixes.map((f) => (f.endsWith(';') ? f : `${f};`)).join(' ') } : null;
}

export function describeScope(scope: PublicationScope): string {
  if (scope.allTables) return 'every table (FOR ALL TABLES)';
  const parts = [...scope.tables, ...scope.schemas.map((s) => `every table of schema ${s}`)];
  return parts.length ? parts.join(', ') : 'no existing table';
}

export interface TableWithoutIdentity {
  schema: string;
  table: string;
  /** REPLICA IDENTITY setting: default (without a primary key), nothing, or index (whose index is gone). */
  identity: 'default' | 'nothing' | 'index';
}

/** A table PostgreSQL cannot identify rows of: no primary key and REPLICA IDENTITY DEFAULT, NOTHING, or USING INDEX of a dropped index. */
const WITHOUT_IDENTITY = `(c.relreplident = 'n'
   OR (c.relreplident = 'd' AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))
   OR (c.relreplident = 'i' AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident)))`;

/**
 * Tables PostgreSQL refuses UPDATE/DELETE on ("cannot update table … because it does not have a
 * replica identity and publishes updates"): those of the publication, or, before it exists, those
 * the scope would publish. Empty when neither updates nor deletes are published.
 */
export async function tablesWithoutReplicaIdentity(client: Queryable, target: { publication: string } | { scope: PublicationScope }): Promise<TableWithoutIdentity[]> {
  const result =
    'publication' in target
      ? await client.query<{ schema: string; table: string; identity: string }>(
          `SELECT pt.schemaname AS schema, pt.tablename AS table, c.relreplident AS identity
             FROM pg_publication p
             JOIN pg_publication_tables pt ON pt.pubname = p.pubname
             JOIN pg_namespace n ON n.nspname = pt.schemaname
             JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename
            WHERE p.pubname = $1 AND (p.pubupdate OR p.pubdelete) AND n.nspname <> 'wal_listener' AND ${WITHOUT_IDENTITY}
            ORDER BY 1, 2`,
          [target.publication],
        )
      : await client.query<{ schema: string; table: string; identity: string }>(
          `SELECT n.nspname AS schema, c.relname AS table, c.relreplident AS identity
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = 'r' AND ${SYSTEM_SCHEMAS} AND $4 AND ${WITHOUT_IDENTITY}
              AND ($1 OR n.nspname || '.' || c.relname = ANY ($2) OR n.nspname = ANY ($3))
            ORDER BY 1, 2`,
          [target.scope.allTables, target.scope.tables, target.scope.schemas, target.scope.publish.includes('update') || target.scope.publish.includes('delete')],
        );
  const names = { d: 'default', n: 'nothing', i: 'index' } as const;
  return result.rows.map((r) => ({ schema: r.schema, table: r.table, identity: names[r.identity as keyof typeof names] }));
}

/** The warning for tables without a replica identity: what breaks and the fix, naming at most `limit` tables. */
export function replicaIdentityProblem(publication: string, tables: readonly TableWithoutIdentity[], limit = 20): string {
  const named = tables.slice(0, limit).map((t) => `${t.schema}.${t.table}`);
  const more = tables.length > limit ? ` and ${tables.length - limit} more` : '';
  const example = tables[0] ? `ALTER TABLE ${quoteIdent(tables[0].schema)}.${quoteIdent(tables[0].table)} REPLICA IDENTITY FULL` : '';
  return (
    `publication "${publication}" publishes ${tables.length} table(s) without a replica identity (${named.join(', ')}${more}): ` +
    'PostgreSQL refuses UPDATE and DELETE on them ("cannot update table … because it does not have a replica identity and publishes updates"). ' +
    `Fix: add a primary key, or ${example} (and the like for each), or leave them out of listener.filter.tables`
  );
}
