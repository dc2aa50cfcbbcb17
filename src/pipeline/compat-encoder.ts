/**
 * `publisher.eventFormat: compat`: events shaped as ihippik/wal-listener v2.11 writes them, so its
 * consumers keep working (DESIGN.md "The event"). Differences from the native encoder:
 * - values use each column's compat converter (sources/postgres/compat-values.ts);
 * - `dataOld` of a key-only old row (DELETE, key-changing UPDATE) lists every column, the non-key
 *   ones null, as Go builds it from the whole old tuple;
 * - `commitTime` with trailing fraction zeros trimmed (Go's time.Time JSON);
 * - with `messageKeyFrom`, the message key is the column's value JSON-encoded as Go encodes it
 *   (`42`, `"abc"`, `null`), or the bare table name when the event has no such value (DELETE).
 * Kept as in the native format, because Go's behaviour would lose data: ids are stable (Go's are
 * random), unchanged TOAST columns are left out and listed in `unchangedToast` (Go writes null),
 * a value that cannot be shaped is its source text (Go writes a zero value), and `lsn`/`xid` are
 * present (extra fields Go consumers ignore).
 */
import { UNCHANGED, type Row } from './change.js';
import { messageKey, newRowJson, xidJson, type EventEncoder } from './encoder.js';
import type { TablePlan } from './table-plan.js';

export const compatEncoder: EventEncoder = {
  pick: (column) => column.toCompatJson ?? column.toJson,

  tail: (info) => `,"commitTime":"${trimFraction(info.commitTime)}","lsn":${JSON.stringify(info.position)},"xid":${xidJson(info.xid)}}`,

  event(plan, id, tail, action, row, old, oldKeyOnly) {
    const { data, unchanged } = newRowJson(plan, row, old, oldKeyOnly);
    const dataOld = old === null ? '{}' : everyColumnJson(plan, old, oldKeyOnly);
    const toast = unchanged === null ? '' : `,"unchangedToast":${JSON.stringify(unchanged)}`;
    return `{"id":"${id}${plan.head}${action}","data":${data},"dataOld":${dataOld}${toast}${tail}`;
  },

  key(plan, row, action) {
    if (plan.messageKeyIndex < 0) return messageKey(plan, row);
    // Go looks the column up in `data`, which is empty for DELETE (and TRUNCATE): then the table name.
    if (row === null || action === 'DELETE') return plan.table;
    const value = row[plan.messageKeyIndex];
    return value === null || value === undefined || value === UNCHANGED ? 'null' : plan.columns[plan.messageKeyIndex]!.toJson(value);
  },
};

/** Go's time.Time JSON of a commit time in the native form: "2024-02-29T08:15:56.123400Z" → "…56.1234Z". */
export function trimFraction(rfc3339: string): string {
  return rfc3339.replace(/\.(\d*?)0+Z$/, (_, kept: string) => (kept ? `.${kept}Z` : 'Z'));
}

/** Every column of an old row; with `keyOnly`, the non-identity ones are null (Go's shape). */
function everyColumnJson(plan: TablePlan, row: Row, keyOnly: boolean): string {
  let json = '{';
  const columns = plan.columns;
  for (let i = 0; i < columns.length; i++) {
    const column = columns[i]!;
    const value = row[i];
    if (value === UNCHANGED) continue;
    const text = value === null || value === undefined || (keyOnly && !column.inIdentity) ? 'null' : column.toJson(value);
    json += `${json.length > 1 ? ',' : ''}${column.jsonKey}${text}`;
  }
  return `${json}}`;
}
