/**
 * The source-neutral change model (DESIGN.md "The pipeline"): what a source hands to the pipeline.
 * Nothing here knows which database a change came from. A source describes each table once
 * (columns, key, how each value becomes JSON), opens a transaction with its position facts, calls
 * one method per change, and commits with the position to confirm once everything before it is
 * acknowledged. The pipeline filters, routes, encodes and dispatches; the source reads and confirms.
 */
import type { JsonOut } from './json-out.js';

/** A column value the source did not send (PostgreSQL's unchanged TOAST value). */
export const UNCHANGED: unique symbol = Symbol('unchanged');

/** In RawRow spans: a NULL value, and a value the source did not send. */
export const RAW_NULL = -1;
export const RAW_UNCHANGED = -2;

/**
 * A row as byte ranges of the buffer it arrived in (PostgreSQL's text values), read without
 * copying or decoding: `spans[2i]` is where column i's bytes start (or RAW_NULL / RAW_UNCHANGED),
 * `spans[2i + 1]` where they end. Valid only during the sink call that receives it (the buffer is
 * the connection's): copy what must outlive it.
 */
export interface RawRow {
  readonly buf: Buffer;
  readonly spans: readonly number[];
}

/**
 * One row: a value per column of the table, in column order, as an array (`null` is SQL NULL,
 * `UNCHANGED` a value the source did not send; values in the source's own form, which each
 * column's `toJson` turns into JSON) or as a RawRow. Read values with `valueAt`.
 */
export type Row = readonly unknown[] | RawRow;

export function isRawRow(row: Row): row is RawRow {
  return (row as RawRow).spans !== undefined;
}

/** Column `i` of a row: its value (a RawRow's as UTF-8 text), null, UNCHANGED, or undefined when the row is shorter. */
export function valueAt(row: Row, i: number): unknown {
  if (!isRawRow(row)) return row[i];
  const start = row.spans[2 * i];
  if (start === undefined) return undefined;
  if (start === RAW_NULL) return null;
  if (start === RAW_UNCHANGED) return UNCHANGED;
  return row.buf.toString('utf8', start, row.spans[2 * i + 1]);
}

/** Number of columns of a row. */
export function rowLength(row: Row): number {
  return isRawRow(row) ? row.spans.length >> 1 : row.length;
}

/** Turns one non-null source value into JSON text. Built once per column, called per value. */
export type ToJson = (value: never) => string;

/**
 * Writes the JSON of one non-null value of a RawRow (bytes `from`–`to` of `buf`) into `out`: the
 * fast path, no strings. Must write exactly what `toJson` returns for the decoded text.
 */
export type WriteJson = (buf: Buffer, from: number, to: number, out: JsonOut) => void;

export interface ColumnDescriptor {
  readonly name: string;
  /** Native event format (DESIGN.md "Values"). */
  readonly toJson: ToJson;
  /** ihippik/wal-listener's value shape (`publisher.eventFormat: compat`); defaults to `toJson`. */
  readonly toCompatJson?: ToJson;
  /** The native format for RawRow values, straight from bytes; without it, `toJson` of the decoded text. */
  readonly writeJson?: WriteJson;
  /**
   * Part of the replica identity: the columns a key-only old row carries (PostgreSQL sends the
   * others as placeholders, which must not be published).
   */
  readonly inIdentity: boolean;
}

/** A table as the source knows it. Described once (per relation message, table map, first event). */
export interface TableDescriptor {
  readonly schema: string;
  readonly table: string;
  readonly columns: readonly ColumnDescriptor[];
  /**
   * Indexes of the columns that make the row key, in key order: the message key (Kafka, Pub/Sub)
   * and the unit of ordering. Empty for a table without a key: the table name is the key.
   */
  readonly keyColumns: readonly number[];
}

/** Facts shared by every change of a transaction, given once at its start. */
export interface TransactionInfo {
  /**
   * Everything of the event ids of this transaction but the change's position
   * (event-id.ts `eventIdPrefix`, from the source position and the source identity).
   */
  readonly idPrefix: string;
  /** Commit time, RFC 3339 in UTC with microseconds: "2024-02-29T08:15:56.123456Z". */
  readonly commitTime: string;
  /** The same in ms since the epoch, when the source has it at hand (else parsed from commitTime). */
  readonly commitTimeMs?: number;
  /** The event's `lsn` field: the transaction's source position as text ("0/1A2B3C4", "binlog.000003:4711"). */
  readonly position: string;
  /** The event's `xid` field: a number, or digits when it does not fit a double. */
  readonly xid: number | string;
}

/**
 * A message that is not a row change event: an outbox row or a logical message (DESIGN.md
 * "Outbox"), or a queue event (PgQ). The payload goes to the broker byte for byte.
 */
export interface RoutedMessage {
  /** The broker-side dedup id; the pipeline derives one from the transaction when absent. */
  readonly id?: string;
  /** Full subject / topic / routing key, used as given (no `publisher.topic` prefix). */
  readonly subject: string;
  /** Message key (Kafka key, Pub/Sub ordering key); also the ordering unit. */
  readonly key: string;
  /** Also send the key as a `key` header where the broker has no key field (NATS, RabbitMQ): outbox messages. */
  readonly keyHeader?: boolean;
  readonly payload: Buffer;
  /** The value was NULL: sent as a Kafka tombstone (null value); an empty payload elsewhere. */
  readonly tombstone?: boolean;
  /** Why no broker can take it (an outbox row without a topic): rejected, the dead-letter policy applies. */
  readonly refusal?: string;
  /** Extra headers (Kafka headers, NATS headers, AMQP headers, Pub/Sub attributes). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Message properties for brokers that have them (AMQP: contentType, type, correlationId, ...). */
  readonly properties?: Readonly<Record<string, unknown>>;
  /** RabbitMQ exchange to publish to instead of `publisher.topic`. */
  readonly exchange?: string;
  /** Where it came from, for logs, metrics and dead letters. */
  readonly schema: string;
  readonly table: string;
}

/** The pipeline's handle for a described table (subject, filter decision, JSON pieces). Opaque to sources. */
export interface TableHandle {
  readonly schema: string;
  readonly table: string;
}

/** A transaction the pipeline tracks (ids, positions, acknowledgements). Opaque to sources. */
export interface TransactionHandle {
  readonly info: TransactionInfo;
}

/**
 * What a source calls, in source order. Every change takes the next position in its transaction,
 * also when the filter drops it, so event ids do not depend on the filter.
 * `P` is the source's position type (PostgreSQL: an LSN; MySQL: file and offset; PgQ: a batch).
 */
export interface ChangeSink<P> {
  /** Prepares a table; call again when its description changes (ALTER TABLE). */
  table(descriptor: TableDescriptor): TableHandle;
  begin(info: TransactionInfo): TransactionHandle;
  insert(txn: TransactionHandle, table: TableHandle, row: Row): void;
  /** `old`: the old row or key when the source sent one; `oldKeyOnly`: it holds only identity columns. */
  update(txn: TransactionHandle, table: TableHandle, row: Row, old: Row | null, oldKeyOnly: boolean): void;
  delete(txn: TransactionHandle, table: TableHandle, old: Row, oldKeyOnly: boolean): void;
  truncate(txn: TransactionHandle, table: TableHandle): void;
  /**
   * A row read by a snapshot (action SNAPSHOT). `id`: the event id, when it must not depend on the
   * transaction (snapshot ids derive from the snapshot and the row key, so a re-read after a
   * restart carries the same id).
   */
  snapshot(txn: TransactionHandle, table: TableHandle, row: Row, id?: string): void;
  /** A routed message (outbox, logical message, queue event). */
  message(txn: TransactionHandle, message: RoutedMessage): void;
  /** A change that publishes nothing but takes its position (e.g. an update of an outbox row). */
  skip(txn: TransactionHandle): void;
  /**
   * The transaction's last change was handed over; `end` is confirmed once all of it is acknowledged.
   * `acknowledged` is called once, when it and every transaction before it were acknowledged.
   */
  commit(txn: TransactionHandle, end: P, acknowledged?: () => void): void;
  /**
   * The source reached `position` outside any transaction (a keepalive): confirmed when nothing is
   * open or in flight. Positions given here and to commit() never go backwards.
   */
  idle(position: P): void;
  /** True when the in-flight window is full: stop reading until `ready()` resolves. */
  readonly full: boolean;
  ready(): Promise<void>;
}
