/**
 * Turns changes into event JSON (DESIGN.md "The event") and message keys. The parts that depend
 * only on the table (TablePlan) or only on the transaction (the tail, built once in begin()) are
 * joined per change with the converted values; no intermediate objects.
 */
import { UNCHANGED, type ColumnDescriptor, type Row, type ToJson, type TransactionInfo } from './change.js';
import type { TablePlan } from './table-plan.js';

export type EventAction = 'INSERT' | 'UPDATE' | 'DELETE' | 'TRUNCATE' | 'SNAPSHOT';

export interface EventEncoder {
  /** The column converter this format uses. */
  pick(column: ColumnDescriptor): ToJson;
  /** The event's fixed end for one transaction: `,"commitTime":…,"lsn":…,"xid":…}`. */
  tail(info: TransactionInfo): string;
  /**
   * The event JSON. `row`: the new row (null for DELETE/TRUNCATE); `old`: the old row or key when
   * the source sent one; `oldKeyOnly`: `old` holds only identity columns.
   */
  event(plan: TablePlan, id: string, tail: string, action: EventAction, row: Row | null, old: Row | null, oldKeyOnly: boolean): string;
  /** The message key of a change (`row`: the new row, or the old one for DELETE; null for TRUNCATE). */
  key(plan: TablePlan, row: Row | null, action: EventAction): string;
}

/** The native format (DESIGN.md "Values"). */
export const nativeEncoder: EventEncoder = {
  pick: (column) => column.toJson,

  tail: (info) => `,"commitTime":"${info.commitTime}","lsn":${JSON.stringify(info.position)},"xid":${xidJson(info.xid)}}`,

  event(plan, id, tail, action, row, old, oldKeyOnly) {
    const { data, unchanged } = newRowJson(plan, row, old, oldKeyOnly);
    const dataOld = old === null ? '{}' : oldRowJson(plan, old, oldKeyOnly);
    const toast = unchanged === null ? '' : `,"unchangedToast":${JSON.stringify(unchanged)}`;
    return `{"id":"${id}${plan.head}${action}","data":${data},"dataOld":${dataOld}${toast}${tail}`;
  },

  key: (plan, row) => messageKey(plan, row),
};

/**
 * The new row as JSON, and the unchanged TOAST columns it could not fill: with a full old row
 * (REPLICA IDENTITY FULL) the old row carries an unchanged TOAST value; otherwise the column is
 * left out and named in `unchanged`.
 */
export function newRowJson(plan: TablePlan, row: Row | null, old: Row | null, oldKeyOnly: boolean): { data: string; unchanged: string[] | null } {
  if (row === null) return { data: '{}', unchanged: null };
  let unchanged: string[] | null = null;
  let data = '{';
  const columns = plan.columns;
  const fallback = old !== null && !oldKeyOnly ? old : null;
  for (let i = 0; i < columns.length; i++) {
    let value = row[i];
    if (value === UNCHANGED) {
      const previous = fallback?.[i];
      if (previous === undefined || previous === UNCHANGED) {
        (unchanged ??= []).push(columns[i]!.name);
        continue;
      }
      value = previous;
    }
    const column = columns[i]!;
    data += `${data.length > 1 ? ',' : ''}${column.jsonKey}${value === null || value === undefined ? 'null' : column.toJson(value)}`;
  }
  return { data: `${data}}`, unchanged };
}

/** An old row: with `keyOnly`, only the identity columns (the others are placeholders). */
function oldRowJson(plan: TablePlan, row: Row, keyOnly: boolean): string {
  let json = '{';
  const columns = plan.columns;
  for (let i = 0; i < columns.length; i++) {
    const column = columns[i]!;
    const value = row[i];
    if (value === UNCHANGED || value === undefined || (keyOnly && !column.inIdentity)) continue;
    json += `${json.length > 1 ? ',' : ''}${column.jsonKey}${value === null ? 'null' : column.toJson(value)}`;
  }
  return `${json}}`;
}

export function xidJson(xid: number | string): string {
  return typeof xid === 'number' ? String(xid) : /^\d+$/.test(xid) ? xid : JSON.stringify(xid);
}

/**
 * The message key of a change: the key columns as JSON (`{"id":42}`), the messageKeyFrom column's
 * value, or the table name for a keyless table and for changes without a row (TRUNCATE).
 */
export function messageKey(plan: TablePlan, row: Row | null): string {
  if (row === null) return plan.tableKey;
  if (plan.messageKeyIndex >= 0) {
    const value = row[plan.messageKeyIndex];
    return typeof value === 'string' ? value : value === null || value === undefined || value === UNCHANGED ? plan.tableKey : String(value);
  }
  const indexes = plan.keyColumns;
  if (indexes.length === 0) return plan.tableKey;
  let key = '{';
  for (let k = 0; k < indexes.length; k++) {
    const i = indexes[k]!;
    const column = plan.columns[i]!;
    const value = row[i];
    key += `${k > 0 ? ',' : ''}${column.jsonKey}${value === null || value === undefined || value === UNCHANGED ? 'null' : column.toJson(value)}`;
  }
  return `${key}}`;
}
