/**
 * Everything about a table that does not change per row, worked out once when the source describes
 * it (STYLE.md: build at startup, only look up on the hot path): the subject, the filter decision,
 * the JSON pieces of the event, the key columns.
 */
import type { ActionSet, TableFilter } from './filter.js';
import type { ColumnDescriptor, TableDescriptor, TableHandle, ToJson, WriteJson } from './change.js';
import type { EventAction } from './encoder.js';
import type { SubjectRouter } from './router.js';

/** The schema of the daemon's own objects (DESIGN.md): never published. */
export const OWN_SCHEMA = 'wal_listener';

export interface ColumnPlan {
  readonly name: string;
  /** `,"name":` as bytes (from offset 1 for a row's first column: `"name":`), and `"name":` as text. */
  readonly jsonKey: Buffer;
  readonly jsonKeyText: string;
  readonly toJson: (value: unknown) => string;
  /** The byte path for RawRow values, when the format and the source have one. */
  readonly writeJson: WriteJson | undefined;
  readonly inIdentity: boolean;
}

export interface TablePlan extends TableHandle {
  readonly subject: string;
  /** Actions the filter lets through; null = none (the daemon's own schema is never published). */
  readonly actions: ActionSet;
  /** Per action, `","schema":"…","table":"…","action":"<action>","data":` — placed after the id, as bytes. */
  readonly heads: Readonly<Record<EventAction, Buffer>>;
  readonly columns: readonly ColumnPlan[];
  /** Columns that make the row key, in key order; empty = the table name is the key. */
  readonly keyColumns: readonly number[];
  /** Column named by publisher.messageKeyFrom, or -1. */
  readonly messageKeyIndex: number;
  /** `<schema>.<table>`: the key of a keyless table's rows and of TRUNCATE. */
  readonly tableKey: string;
  /** Why the broker can never take this table's messages (its subject is unusable), or null. */
  readonly refusal: string | null;
}

export interface PlanOptions {
  filter: TableFilter;
  router: SubjectRouter;
  messageKeyFrom: string;
  /** The column converter the event format uses (native or compat). */
  pick(column: ColumnDescriptor): ToJson;
  /** Its byte path for RawRow values, if it has one. */
  pickWriter(column: ColumnDescriptor): WriteJson | undefined;
  /** A subject's problem for the broker (config/broker-names.ts), or null. */
  checkSubject(subject: string): string | null;
}

export function planTable(descriptor: TableDescriptor, options: PlanOptions): TablePlan {
  const { schema, table } = descriptor;
  const columns: ColumnPlan[] = descriptor.columns.map((column) => {
    const jsonKeyText = `${JSON.stringify(column.name)}:`;
    return {
      name: column.name,
      jsonKey: Buffer.from(`,${jsonKeyText}`),
      jsonKeyText,
      toJson: options.pick(column) as (value: unknown) => string,
      writeJson: options.pickWriter(column),
      inIdentity: column.inIdentity,
    };
  });
  const subject = options.router(schema, table);
  return {
    schema,
    table,
    subject,
    actions: schema === OWN_SCHEMA ? null : options.filter(schema, table),
    heads: eventHeads(schema, table),
    columns,
    keyColumns: descriptor.keyColumns,
    messageKeyIndex: options.messageKeyFrom ? columns.findIndex((c) => c.name === options.messageKeyFrom) : -1,
    tableKey: `${schema}.${table}`,
    refusal: options.checkSubject(subject),
  };
}

const ACTIONS: readonly EventAction[] = ['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'SNAPSHOT'];

function eventHeads(schema: string, table: string): Record<EventAction, Buffer> {
  const prefix = `","schema":${JSON.stringify(schema)},"table":${JSON.stringify(table)},"action":"`;
  return Object.fromEntries(ACTIONS.map((action) => [action, Buffer.from(`${prefix}${action}","data":`)])) as Record<EventAction, Buffer>;
}
