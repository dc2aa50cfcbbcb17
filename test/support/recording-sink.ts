/**
 * A real ChangeSink that records every call, for testing sources directly (no pipeline, no broker).
 * It can simulate a full in-flight window: with `window` set, `full` turns true once that many
 * changes were handed over since the last `drain()`, and `ready()` resolves at the next drain.
 * Values are kept in the source's form; `json()` turns a recorded row into the column's JSON text.
 */
import type { ChangeSink, Row, TableDescriptor, TableHandle, TransactionHandle, TransactionInfo } from '../../src/pipeline/change.js';
import { UNCHANGED, valueAt } from '../../src/pipeline/change.js';

export interface RecordedTable extends TableHandle {
  readonly descriptor: TableDescriptor;
}

export interface RecordedChange {
  readonly action: 'INSERT' | 'UPDATE' | 'DELETE' | 'TRUNCATE' | 'SNAPSHOT' | 'MESSAGE' | 'SKIP';
  readonly table: RecordedTable | null;
  readonly row: Row | null;
  readonly old: Row | null;
  readonly oldKeyOnly: boolean;
  /** Changes handed over while `full` was true (a source must stop reading then). */
  readonly whileFull: boolean;
}

export interface RecordedTransaction extends TransactionHandle {
  readonly info: TransactionInfo;
  readonly changes: RecordedChange[];
  end: unknown;
}

export class RecordingSink<P> implements ChangeSink<P> {
  readonly tables: RecordedTable[] = [];
  readonly transactions: RecordedTransaction[] = [];
  readonly idles: P[] = [];
  /** Every position given to commit() or idle(), in order. */
  readonly positions: P[] = [];
  private sinceDrain = 0;
  private waiters: (() => void)[] = [];
  private listeners: (() => void)[] = [];

  constructor(private readonly window = Infinity) {}

  get full(): boolean {
    return this.sinceDrain >= this.window;
  }

  ready(): Promise<void> {
    return this.full ? new Promise((resolve) => this.waiters.push(resolve)) : Promise.resolve();
  }

  /** The simulated broker acknowledged everything: the window is empty again. */
  drain(): void {
    this.sinceDrain = 0;
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }

  table(descriptor: TableDescriptor): RecordedTable {
    const handle = { schema: descriptor.schema, table: descriptor.table, descriptor };
    this.tables.push(handle);
    return handle;
  }

  begin(info: TransactionInfo): RecordedTransaction {
    const txn: RecordedTransaction = { info, changes: [], end: undefined };
    this.transactions.push(txn);
    return txn;
  }

  insert(txn: TransactionHandle, table: TableHandle, row: Row): void {
    this.record(txn, { action: 'INSERT', table: table as RecordedTable, row, old: null, oldKeyOnly: false });
  }

  update(txn: TransactionHandle, table: TableHandle, row: Row, old: Row | null, oldKeyOnly: boolean): void {
    this.record(txn, { action: 'UPDATE', table: table as RecordedTable, row, old, oldKeyOnly });
  }

  delete(txn: TransactionHandle, table: TableHandle, old: Row, oldKeyOnly: boolean): void {
    this.record(txn, { action: 'DELETE', table: table as RecordedTable, row: null, old, oldKeyOnly });
  }

  truncate(txn: TransactionHandle, table: TableHandle): void {
    this.record(txn, { action: 'TRUNCATE', table: table as RecordedTable, row: null, old: null, oldKeyOnly: false });
  }

  snapshot(txn: TransactionHandle, table: TableHandle, row: Row): void {
    this.record(txn, { action: 'SNAPSHOT', table: table as RecordedTable, row, old: null, oldKeyOnly: false });
  }

  message(txn: TransactionHandle): void {
    this.record(txn, { action: 'MESSAGE', table: null, row: null, old: null, oldKeyOnly: false });
  }

  skip(txn: TransactionHandle): void {
    this.record(txn, { action: 'SKIP', table: null, row: null, old: null, oldKeyOnly: false });
  }

  commit(txn: TransactionHandle, end: P): void {
    (txn as RecordedTransaction).end = end;
    this.positions.push(end);
    this.notify();
  }

  idle(position: P): void {
    this.idles.push(position);
    this.positions.push(position);
    this.notify();
  }

  /** Committed transactions only. */
  get committed(): RecordedTransaction[] {
    return this.transactions.filter((t) => t.end !== undefined);
  }

  /** Every change of committed transactions, in order. */
  get changes(): RecordedChange[] {
    return this.committed.flatMap((t) => t.changes);
  }

  /** Resolves once `predicate` holds after some call (checked after each commit or idle), or rejects after `timeoutMs`. */
  until(what: string, predicate: () => boolean, timeoutMs = 20_000): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.listeners = this.listeners.filter((l) => l !== check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${this.committed.length} transactions, ${this.changes.length} changes so far)`));
      }, timeoutMs);
      const check = (): void => {
        if (!predicate()) return;
        clearTimeout(timer);
        this.listeners = this.listeners.filter((l) => l !== check);
        resolve();
      };
      this.listeners.push(check);
    });
  }

  private record(txn: TransactionHandle, change: Omit<RecordedChange, 'whileFull'>): void {
    (txn as RecordedTransaction).changes.push({ ...change, whileFull: this.full });
    this.sinceDrain++;
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }
}

/** A recorded row as { column: JSON text } through each column's toJson (null stays "null"). */
export function json(table: RecordedTable, row: Row): Record<string, string> {
  const out: Record<string, string> = {};
  table.descriptor.columns.forEach((column, i) => {
    const value = valueAt(row, i);
    if (value === UNCHANGED) return;
    out[column.name] = value === null || value === undefined ? 'null' : column.toJson(value as never);
  });
  return out;
}
