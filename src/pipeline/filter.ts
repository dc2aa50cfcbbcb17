/**
 * listener.filter.tables, compiled once: "table" matches that table in any schema,
 * "schema.table" matches exactly, "schema.*" matches every table of the schema. The most specific
 * key wins: "schema.table", then "table", then "schema.*". No filter = every table, every action.
 */
import type { Action, ListenerConfig } from '../config/schema.js';

/** Which actions of a table are published; `null` means none. */
export type ActionSet = ReadonlySet<Action> | null;

export type TableFilter = (schema: string, table: string) => ActionSet;

const ALL: ActionSet = new Set<Action>(['insert', 'update', 'delete', 'truncate']);

/** What a filter key names: one table (its schema, or null for any schema), or a whole schema (table null). */
export interface FilterKey {
  readonly schema: string | null;
  readonly table: string | null;
}

export function parseFilterKey(key: string): FilterKey {
  const dot = key.indexOf('.');
  if (dot <= 0) return { schema: null, table: key };
  const table = key.slice(dot + 1);
  return { schema: key.slice(0, dot), table: table === '*' ? null : table };
}

export function compileFilter(filter: ListenerConfig['filter']): TableFilter {
  const tables = filter.tables;
  if (!tables) return () => ALL;
  const exact = new Map<string, Set<Action>>();
  const anySchema = new Map<string, Set<Action>>();
  const wholeSchema = new Map<string, Set<Action>>();
  for (const [key, actions] of Object.entries(tables)) {
    const set = new Set<Action>(actions ?? ['insert', 'update', 'delete', 'truncate']); // `users:` with no list = every action
    const { schema, table } = parseFilterKey(key);
    if (schema === null) anySchema.set(key, set);
    else if (table === null) wholeSchema.set(schema, set);
    else exact.set(key, set);
  }
  return (schema, table) => exact.get(`${schema}.${table}`) ?? anySchema.get(table) ?? wholeSchema.get(schema) ?? null;
}
