/**
 * Turns decoded row changes into broker messages (DESIGN.md "The event").
 * Everything that depends only on the relation (subject, filter decision, JSON keys, converters,
 * key columns) is prepared once per Relation message in a RelationPlan; everything that depends only
 * on the transaction (id prefix, commitTime, lsn, xid) once per Begin. Per change, the JSON is
 * joined from those pieces and the converted values.
 */
import { formatLsn, formatPgTimestamp, UNCHANGED_TOAST, type BeginMessage, type RelationMessage, type Tuple } from '../sources/postgres/pgoutput.js';
import type { ToJson, ValueConverters } from '../sources/postgres/values.js';
import type { OutboundMessage } from '../publishers/publisher.js';
import { eventId, eventIdPrefix } from './event-id.js';
import type { ActionSet, TableFilter } from './filter.js';
import type { SubjectRouter } from './router.js';

export interface ColumnPlan {
  readonly name: string;
  /** `"name":` */
  readonly jsonKey: string;
  readonly toJson: ToJson;
  readonly isKey: boolean;
}

export interface RelationPlan {
  readonly relationId: number;
  readonly schema: string;
  readonly table: string;
  readonly subject: string;
  readonly actions: ActionSet;
  /** `","schema":"…","table":"…","action":"` — placed after the id. */
  readonly head: string;
  readonly columns: readonly ColumnPlan[];
  /** Columns that make the message key; empty = the table name is the key. */
  readonly keyIndexes: readonly number[];
  /** Column named by publisher.messageKeyFrom, or -1. */
  readonly messageKeyIndex: number;
  /** Key for messages without row data (TRUNCATE) or keyless tables. */
  readonly tableKey: string;
}

/** Per-transaction state: built at Begin. */
export interface TxnContext {
  readonly idPrefix: string;
  /** `,"commitTime":"…","lsn":"…","xid":N}` */
  readonly tail: string;
  readonly lsn: string;
  /** Position of the next change within the transaction (every change counts, filtered or not). */
  position: number;
}

export interface BuilderOptions {
  filter: TableFilter;
  router: SubjectRouter;
  converters: ValueConverters;
  /** Build `key` for each message (only when the publisher uses keys). */
  withKeys: boolean;
  messageKeyFrom: string;
  /** Source hash for event ids (event-id.ts). */
  source: number;
}

export class EventBuilder {
  constructor(private readonly options: BuilderOptions) {}

  /** `primaryKey` replaces the replica-identity flags as the message key (used for REPLICA IDENTITY FULL/NOTHING). */
  plan(relation: RelationMessage, primaryKey?: readonly string[]): RelationPlan {
    const { filter, router, converters, messageKeyFrom } = this.options;
    const columns: ColumnPlan[] = relation.columns.map((column) => ({
      name: column.name,
      jsonKey: `${JSON.stringify(column.name)}:`,
      toJson: converters.forColumn(column),
      isKey: column.isKey,
    }));
    const keyNames = primaryKey ?? (relation.replicaIdentity === 'f' ? [] : relation.columns.filter((c) => c.isKey).map((c) => c.name));
    const keyIndexes = keyNames.map((name) => columns.findIndex((c) => c.name === name)).filter((i) => i >= 0);
    return {
      relationId: relation.relationId,
      schema: relation.schema,
      table: relation.name,
      subject: router(relation.schema, relation.name),
      actions: filter(relation.schema, relation.name),
      head: `","schema":${JSON.stringify(relation.schema)},"table":${JSON.stringify(relation.name)},"action":"`,
      columns,
      keyIndexes,
      messageKeyIndex: messageKeyFrom ? columns.findIndex((c) => c.name === messageKeyFrom) : -1,
      tableKey: `${relation.schema}.${relation.name}`,
    };
  }

  begin(message: BeginMessage): TxnContext {
    const lsn = formatLsn(message.finalLsn);
    return {
      idPrefix: eventIdPrefix(message.finalLsn, this.options.source),
      tail: `,"commitTime":"${formatPgTimestamp(message.commitTimeMicros)}","lsn":"${lsn}","xid":${message.xid}}`,
      lsn,
      position: 0,
    };
  }

  insert(plan: RelationPlan, txn: TxnContext, position: number, row: Tuple): OutboundMessage {
    return this.message(plan, txn, position, 'INSERT', row, null, null, row);
  }

  /** `oldKind` K: `old` holds only the key columns; O: the whole old row (REPLICA IDENTITY FULL). */
  update(plan: RelationPlan, txn: TxnContext, position: number, oldKind: 'K' | 'O' | null, old: Tuple | null, row: Tuple): OutboundMessage {
    return this.message(plan, txn, position, 'UPDATE', row, old, oldKind, row);
  }

  delete(plan: RelationPlan, txn: TxnContext, position: number, oldKind: 'K' | 'O', old: Tuple): OutboundMessage {
    return this.message(plan, txn, position, 'DELETE', null, old, oldKind, old);
  }

  truncate(plan: RelationPlan, txn: TxnContext, position: number): OutboundMessage {
    return this.message(plan, txn, position, 'TRUNCATE', null, null, null, null);
  }

  private message(
    plan: RelationPlan,
    txn: TxnContext,
    position: number,
    action: string,
    row: Tuple | null,
    old: Tuple | null,
    oldKind: 'K' | 'O' | null,
    keySource: Tuple | null,
  ): OutboundMessage {
    const id = eventId(txn.idPrefix, position);
    let unchanged: string[] | null = null;
    let data = '{}';
    if (row !== null) {
      data = '{';
      const columns = plan.columns;
      // With REPLICA IDENTITY FULL the old row carries the value of an unchanged TOAST column.
      const fallback = oldKind === 'O' ? old : null;
      for (let i = 0; i < columns.length; i++) {
        let value = row[i];
        if (value === UNCHANGED_TOAST) {
          const previous = fallback?.[i];
          if (previous === undefined || previous === UNCHANGED_TOAST) {
            (unchanged ??= []).push(columns[i]!.name);
            continue;
          }
          value = previous;
        }
        const column = columns[i]!;
        data += `${data.length > 1 ? ',' : ''}${column.jsonKey}${value === null || value === undefined ? 'null' : column.toJson(value)}`;
      }
      data += '}';
    }
    const dataOld = old === null ? '{}' : rowJson(plan, old, oldKind === 'K');
    const toast = unchanged === null ? '' : `,"unchangedToast":${JSON.stringify(unchanged)}`;
    return {
      id,
      subject: plan.subject,
      key: this.options.withKeys ? messageKey(plan, keySource) : '',
      payload: `{"id":"${id}${plan.head}${action}","data":${data},"dataOld":${dataOld}${toast}${txn.tail}`,
      lsn: txn.lsn,
      schema: plan.schema,
      table: plan.table,
      action,
    };
  }
}

/** An old row: with `keyOnly`, only the replica identity columns (the others are sent as NULL placeholders). */
function rowJson(plan: RelationPlan, tuple: Tuple, keyOnly: boolean): string {
  let json = '{';
  const columns = plan.columns;
  for (let i = 0; i < columns.length; i++) {
    const column = columns[i]!;
    const value = tuple[i];
    if (value === UNCHANGED_TOAST || value === undefined || (keyOnly && !column.isKey)) continue;
    json += `${json.length > 1 ? ',' : ''}${column.jsonKey}${value === null ? 'null' : column.toJson(value)}`;
  }
  return `${json}}`;
}

function messageKey(plan: RelationPlan, tuple: Tuple | null): string {
  if (tuple === null) return plan.tableKey;
  if (plan.messageKeyIndex >= 0) {
    const value = tuple[plan.messageKeyIndex];
    return typeof value === 'string' ? value : plan.tableKey;
  }
  const indexes = plan.keyIndexes;
  if (indexes.length === 0) return plan.tableKey;
  let key = '{';
  for (let k = 0; k < indexes.length; k++) {
    const i = indexes[k]!;
    const column = plan.columns[i]!;
    const value = tuple[i];
    key += `${k > 0 ? ',' : ''}${column.jsonKey}${typeof value === 'string' ? column.toJson(value) : 'null'}`;
  }
  return `${key}}`;
}
