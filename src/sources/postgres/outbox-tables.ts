/**
 * The startup check of `listener.outbox` (exit 1 before streaming, code WAL_OUTBOX_TABLE): every
 * table exists and has every named column, with a type the outbox can read: text-like topic and
 * key, a bytea or text-like value, text arrays for the headers. The config's own shape was checked
 * offline (src/config/outbox.ts); this needs the database.
 */
import type pg from 'pg';
import type { OutboxTableConfig } from '../../config/outbox.js';
import { WalListenerError } from '../../errors.js';
import { parseFilterKey } from '../../pipeline/filter.js';
import { missingColumn } from './outbox.js';
import { desiredScope, quoteIdent, readPublication } from './publication.js';

type Queryable = Pick<pg.Client, 'query'>;

const TEXT_TYPES = new Set(['text', 'character varying', 'character', 'name', 'citext']);
const ROLES = ['topic', 'key', 'value', 'headerKeys', 'headerValues'] as const;

/** What each role takes: a predicate on the column's type (format_type) and its description. */
const ACCEPTS: Record<(typeof ROLES)[number], [(type: string) => boolean, string]> = {
  topic: [(t) => TEXT_TYPES.has(baseType(t)), 'text or varchar'],
  key: [(t) => TEXT_TYPES.has(baseType(t)), 'text or varchar'],
  value: [(t) => t === 'bytea' || TEXT_TYPES.has(baseType(t)) || t === 'json' || t === 'jsonb', 'bytea, text, varchar, json or jsonb'],
  headerKeys: [(t) => t.endsWith('[]') && TEXT_TYPES.has(baseType(t.slice(0, -2))), 'text[] or varchar[]'],
  headerValues: [(t) => t.endsWith('[]') && TEXT_TYPES.has(baseType(t.slice(0, -2))), 'text[] or varchar[]'],
};

/** "character varying(249)" → "character varying". */
function baseType(type: string): string {
  return type.replace(/\(.*\)/, '');
}

export async function checkOutboxTables(client: Queryable, tables: readonly OutboxTableConfig[]): Promise<void> {
  for (const entry of tables) {
    const { schema, table } = parseFilterKey(entry.table);
    const found = await client.query<{ schema: string; table: string; columns: Record<string, string> | null }>(
      `SELECT n.nspname AS schema, c.relname AS table,
              (SELECT json_object_agg(a.attname, format_type(a.atttypid, a.atttypmod))
                 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND c.relname = $1 AND ($2::text IS NULL OR n.nspname = $2)`,
      [table, schema],
    );
    if (found.rows.length === 0) {
      throw new WalListenerError('WAL_OUTBOX_TABLE', `outbox table ${entry.table} (listener.outbox) does not exist${schema === null ? ' in any schema' : ''}; create it, or fix the name`);
    }
    for (const row of found.rows) {
      const name = `${row.schema}.${row.table}`;
      const columns = row.columns ?? {};
      for (const role of ROLES) {
        const type = columns[entry[role]];
        if (type === undefined) throw missingColumn(name, entry[role], role);
        const [accepts, wanted] = ACCEPTS[role];
        if (!accepts(type)) throw new WalListenerError('WAL_OUTBOX_TABLE', `outbox table ${name}: column ${JSON.stringify(entry[role])} (listener.outbox ${role}) is ${type}; it must be ${wanted}`);
      }
    }
  }
}

/**
 * An existing publication (the daemon never alters one) must publish the inserts of every outbox
 * table, or their messages would silently never be read: the error names the table and the fix.
 */
export async function checkOutboxPublication(client: Queryable, publication: string, tables: readonly OutboxTableConfig[]): Promise<void> {
  if (tables.length === 0) return;
  const existing = await readPublication(client, publication);
  if (existing === null) return;
  const outboxOnly = await desiredScope(client, { tables: Object.fromEntries(tables.map((t) => [t.table, ['insert']])) });
  const missing = existing.publish.includes('insert') ? outboxOnly.tables.filter((t) => !existing.allTables && !existing.tables.includes(t)) : outboxOnly.tables;
  if (missing.length === 0) return;
  const fix = existing.publish.includes('insert')
    ? `ALTER PUBLICATION ${quoteIdent(publication)} ADD TABLE ${missing.map((t) => t.split('.').map(quoteIdent).join('.')).join(', ')}`
    : `ALTER PUBLICATION ${quoteIdent(publication)} SET (publish = '${[...existing.publish, 'insert'].join(', ')}')`;
  throw new WalListenerError('WAL_OUTBOX_TABLE', `publication "${publication}" does not publish inserts of outbox table ${missing.join(', ')} (listener.outbox): its messages would never be read; the daemon does not alter an existing publication: run ${fix}`);
}
