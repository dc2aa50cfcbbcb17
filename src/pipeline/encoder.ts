/**
 * Turns changes into event JSON (DESIGN.md "The event"), as bytes, and message keys. The parts
 * that depend only on the table (TablePlan: head, column keys) or only on the transaction (the
 * tail, built once in tail()) are prepared as bytes; per change the values are written between
 * them. RawRow values (PostgreSQL) go from the received bytes to JSON bytes through each column's
 * `writeJson`, without strings.
 */
import { RAW_NULL, RAW_UNCHANGED, UNCHANGED, isRawRow, valueAt, type ColumnDescriptor, type Row, type ToJson, type TransactionInfo, type WriteJson } from './change.js';
import type { JsonOut } from './json-out.js';
import type { ColumnPlan, TablePlan } from './table-plan.js';

export type EventAction = 'INSERT' | 'UPDATE' | 'DELETE' | 'TRUNCATE' | 'SNAPSHOT';

/**
 * The fixed end of a transaction's events: its bytes, or a writer of them (NativeTail: most
 * transactions have a single event, and writing the end straight into it costs less than
 * building bytes to copy).
 */
export type EventTail = Buffer | { write(out: JsonOut): void };

export interface EventEncoder {
  /** The column converter this format uses. */
  pick(column: ColumnDescriptor): ToJson;
  /** The byte writer this format uses for RawRow values, if any (else `pick`'s converter on the text). */
  pickWriter(column: ColumnDescriptor): WriteJson | undefined;
  /** The event's fixed end for one transaction: `,"commitTime":…,"lsn":…,"xid":…}`. */
  tail(info: TransactionInfo): EventTail;
  /**
   * Writes the event JSON into `out`. `row`: the new row (null for DELETE/TRUNCATE); `old`: the old
   * row or key when the source sent one; `oldKeyOnly`: `old` holds only identity columns.
   */
  event(out: JsonOut, plan: TablePlan, id: string, tail: EventTail, action: EventAction, row: Row | null, old: Row | null, oldKeyOnly: boolean): void;
  /** The message key of a change (`row`: the new row, or the old one for DELETE; null for TRUNCATE). */
  key(plan: TablePlan, row: Row | null, action: EventAction): string;
}

/** The native format (DESIGN.md "Values"). */
export const nativeEncoder: EventEncoder = {
  pick: (column) => column.toJson,
  pickWriter: (column) => column.writeJson,

  tail: (info) => new NativeTail(info),

  event(out, plan, id, tail, action, row, old, oldKeyOnly) {
    writeHead(out, plan, id, action);
    const unchanged = writeNewRow(out, plan, row, old, oldKeyOnly);
    out.ascii(',"dataOld":');
    if (old === null) out.ascii('{}');
    else writeOldRow(out, plan, old, oldKeyOnly, false);
    writeEnd(out, unchanged, tail);
  },

  key: (plan, row) => messageKey(plan, row),
};

/** `{"id":"…","schema":…,"table":…,"action":"…","data":` */
export function writeHead(out: JsonOut, plan: TablePlan, id: string, action: EventAction): void {
  out.ascii('{"id":"');
  out.ascii(id);
  out.bytes(plan.heads[action]);
}

/** `,"unchangedToast":[…]` when some were left out, then the transaction's tail. */
export function writeEnd(out: JsonOut, unchanged: string[] | null, tail: EventTail): void {
  if (unchanged !== null) {
    out.ascii(',"unchangedToast":');
    out.utf8(JSON.stringify(unchanged));
  }
  if (Buffer.isBuffer(tail)) out.bytes(tail);
  else tail.write(out);
}

/**
 * The native tail of a transaction: `,"commitTime":"…","lsn":"…","xid":…}`. The first event
 * gets it written piece by piece; a second one builds the bytes, which every later event copies.
 */
class NativeTail {
  private bytes: Buffer | null = null;
  private written = false;

  constructor(private readonly info: TransactionInfo) {}

  write(out: JsonOut): void {
    if (this.bytes !== null) {
      out.bytes(this.bytes);
      return;
    }
    const info = this.info;
    if (this.written) {
      this.bytes = Buffer.from(`,"commitTime":"${info.commitTime}","lsn":${jsonText(info.position)},"xid":${xidJson(info.xid)}}`);
      out.bytes(this.bytes);
      return;
    }
    this.written = true;
    out.ascii(',"commitTime":"');
    text(out, info.commitTime);
    out.ascii('","lsn":');
    text(out, jsonText(info.position));
    out.ascii(',"xid":');
    text(out, xidJson(info.xid));
    out.byte(0x7d /* } */);
  }
}

/** Text as it is: by `ascii` when it is ASCII (no native call for short text), else as UTF-8. */
function text(out: JsonOut, value: string): void {
  for (let i = 0; i < value.length; i++) {
    if (value.charCodeAt(i) > 0x7f) {
      out.utf8(value);
      return;
    }
  }
  out.ascii(value);
}

/** Whether column i of a row is absent (a shorter row), NULL, UNCHANGED, or a value. */
const enum Cell {
  Absent,
  Null,
  Unchanged,
  Value,
}

function cellOf(row: Row, i: number): Cell {
  if (isRawRow(row)) {
    const start = row.spans[2 * i];
    return start === undefined ? Cell.Absent : start === RAW_NULL ? Cell.Null : start === RAW_UNCHANGED ? Cell.Unchanged : Cell.Value;
  }
  const value = row[i];
  return value === undefined ? Cell.Absent : value === null ? Cell.Null : value === UNCHANGED ? Cell.Unchanged : Cell.Value;
}

/** Writes the JSON of a value cell (cellOf(row, i) === Cell.Value). */
function writeValue(out: JsonOut, column: ColumnPlan, row: Row, i: number): void {
  if (isRawRow(row)) {
    const from = row.spans[2 * i]!;
    const to = row.spans[2 * i + 1]!;
    if (column.writeJson) column.writeJson(row.buf, from, to, out);
    else out.utf8(column.toJson(row.buf.toString('utf8', from, to)));
  } else {
    out.utf8(column.toJson(row[i]));
  }
}

/**
 * The new row as JSON; returns the unchanged TOAST columns it could not fill. With a full old row
 * (REPLICA IDENTITY FULL) the old row carries an unchanged TOAST value; otherwise the column is
 * left out and named in `unchangedToast`.
 */
export function writeNewRow(out: JsonOut, plan: TablePlan, row: Row | null, old: Row | null, oldKeyOnly: boolean): string[] | null {
  if (row === null) {
    out.ascii('{}');
    return null;
  }
  let unchanged: string[] | null = null;
  const fallback = old !== null && !oldKeyOnly ? old : null;
  const columns = plan.columns;
  let first = true;
  out.byte(0x7b /* { */);
  for (let i = 0; i < columns.length; i++) {
    const column = columns[i]!;
    let source = row;
    let cell = cellOf(row, i);
    if (cell === Cell.Unchanged) {
      if (fallback !== null && (cell = cellOf(fallback, i)) !== Cell.Unchanged && cell !== Cell.Absent) source = fallback;
      else {
        (unchanged ??= []).push(column.name);
        continue;
      }
    }
    out.bytes(column.jsonKey, first ? 1 : 0);
    first = false;
    if (cell === Cell.Value) writeValue(out, column, source, i);
    else out.ascii('null');
  }
  out.byte(0x7d /* } */);
  return unchanged;
}

/**
 * An old row. With `keyOnly` only identity columns carry values: the others are left out, or,
 * with `everyColumn` (the compat format), written as null.
 */
export function writeOldRow(out: JsonOut, plan: TablePlan, row: Row, keyOnly: boolean, everyColumn: boolean): void {
  const columns = plan.columns;
  let first = true;
  out.byte(0x7b /* { */);
  for (let i = 0; i < columns.length; i++) {
    const column = columns[i]!;
    const cell = cellOf(row, i);
    if (cell === Cell.Unchanged || cell === Cell.Absent) continue;
    const placeholder = keyOnly && !column.inIdentity;
    if (placeholder && !everyColumn) continue;
    out.bytes(column.jsonKey, first ? 1 : 0);
    first = false;
    if (cell === Cell.Value && !placeholder) writeValue(out, column, row, i);
    else out.ascii('null');
  }
  out.byte(0x7d /* } */);
}

/**
 * JSON.stringify of a string, without its cost for printable ASCII with nothing to escape (the
 * text of source positions, built once per transaction).
 */
export function jsonText(text: string): string {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 /* " */ || c === 0x5c /* \ */) return JSON.stringify(text);
  }
  return `"${text}"`;
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
    const value = valueAt(row, plan.messageKeyIndex);
    return typeof value === 'string' ? value : value === null || value === undefined || value === UNCHANGED ? plan.tableKey : String(value);
  }
  const indexes = plan.keyColumns;
  if (indexes.length === 0) return plan.tableKey;
  let key = '{';
  for (let k = 0; k < indexes.length; k++) {
    const i = indexes[k]!;
    const column = plan.columns[i]!;
    const value = valueAt(row, i);
    key += `${k > 0 ? ',' : ''}${column.jsonKeyText}${value === null || value === undefined || value === UNCHANGED ? 'null' : column.toJson(value)}`;
  }
  return `${key}}`;
}
