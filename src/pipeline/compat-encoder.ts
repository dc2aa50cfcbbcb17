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
import { UNCHANGED, valueAt } from './change.js';
import { messageKey, writeEnd, writeHead, writeNewRow, writeOldRow, xidJson, type EventEncoder } from './encoder.js';

export const compatEncoder: EventEncoder = {
  pick: (column) => column.toCompatJson ?? column.toJson,
  // Compat values go through their text converters: compat is for migrating, not the fast path.
  pickWriter: () => undefined,

  tail: (info) => Buffer.from(`,"commitTime":"${trimFraction(info.commitTime)}","lsn":${JSON.stringify(info.position)},"xid":${xidJson(info.xid)}}`),

  event(out, plan, id, tail, action, row, old, oldKeyOnly) {
    writeHead(out, plan, id, action);
    const unchanged = writeNewRow(out, plan, row, old, oldKeyOnly);
    out.ascii(',"dataOld":');
    if (old === null) out.ascii('{}');
    else writeOldRow(out, plan, old, oldKeyOnly, true);
    writeEnd(out, unchanged, tail);
  },

  key(plan, row, action) {
    if (plan.messageKeyIndex < 0) return messageKey(plan, row);
    // Go looks the column up in `data`, which is empty for DELETE (and TRUNCATE): then the table name.
    if (row === null || action === 'DELETE') return plan.table;
    const value = valueAt(row, plan.messageKeyIndex);
    return value === null || value === undefined || value === UNCHANGED ? 'null' : plan.columns[plan.messageKeyIndex]!.toJson(value);
  },
};

/** Go's time.Time JSON of a commit time in the native form: "2024-02-29T08:15:56.123400Z" → "…56.1234Z". */
export function trimFraction(rfc3339: string): string {
  return rfc3339.replace(/\.(\d*?)0+Z$/, (_, kept: string) => (kept ? `.${kept}Z` : 'Z'));
}
