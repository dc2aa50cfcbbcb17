/**
 * listener.filter.tables, compiled once: "table" matches that table in any schema,
 * "schema.table" matches exactly. No filter = every table, every action.
 */
import type { Action, ListenerConfig } from '../config/schema.js';

/** Which actions of a table are published; `null` means none. */
export type ActionSet = ReadonlySet<Action> | null;

export type TableFilter = (schema: string, table: string) => ActionSet;

const ALL: ActionSet = new Set<Action>(['insert', 'update', 'delete', 'truncate']);

export function compileFilter(filter: ListenerConfig['filter']): TableFilter {
  const tables = filter.tables;
  if (!tables) return () => ALL;
  const exact = new Map<string, Set<Action>>();
  const anySchema = new Map<string, Set<Action>>();
  for (const [key, actions] of Object.entries(tables)) {
    const set = new Set<Action>(actions ?? ['insert', 'update', 'delete', 'truncate']); // `users:` with no list = every action
    const dot = key.indexOf('.');
    if (dot > 0) exact.set(key, set);
    else anySchema.set(key, set);
  }
  return (schema, table) => exact.get(`${schema}.${table}`) ?? anySchema.get(table) ?? null;
}
