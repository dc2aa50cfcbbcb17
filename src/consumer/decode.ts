/**
 * A message body → a typed Change (DESIGN.md "The event"). Per table, the column converters are
 * chosen once, on the table's first event; per event, values are converted in place in the object
 * the JSON parser just built.
 */
import { EventDecodeError, describe } from './errors.js';
import { parseJson } from './json.js';
import { Timestamp } from './timestamp.js';
import type { Action, Change, ColumnTypeMap, Row } from './types.js';
import { converterFor, type Convert, type ValueOptions } from './values.js';

export interface DecodeOptions extends ValueOptions {
  readonly tables: ColumnTypeMap;
}

/** A decoded event and the key that orders it. */
export interface DecodedEvent {
  readonly change: Change;
  /** `"schema.table"`. */
  readonly table: string;
  /** Changes with the same key are handled one at a time, in arrival order. */
  readonly key: string;
}

interface TablePlan {
  readonly converters: ReadonlyMap<string, Convert>;
  readonly key: readonly string[];
}

const ACTIONS = new Set<string>(['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'SNAPSHOT']);
const NO_COLUMNS: readonly string[] = [];

export type Decode = (body: string, brokerKey: string | undefined) => DecodedEvent;

export function createDecoder(options: DecodeOptions): Decode {
  const plans = new Map<string, TablePlan>();
  const planFor = (table: string): TablePlan => {
    let plan = plans.get(table);
    if (!plan) {
      const types = options.tables[table];
      const converters = new Map<string, Convert>();
      for (const [column, type] of Object.entries(types?.columns ?? {})) {
        const convert = converterFor(type, options);
        if (convert) converters.set(column, convert);
      }
      plan = { converters, key: types?.key ?? NO_COLUMNS };
      plans.set(table, plan);
    }
    return plan;
  };

  return (body, brokerKey) => {
    let event: unknown;
    try {
      event = parseJson(body);
    } catch (err) {
      throw new EventDecodeError(`message is not JSON: ${describe(err)}`, { cause: err });
    }
    if (typeof event !== 'object' || event === null || Array.isArray(event)) throw new EventDecodeError('message is not a JSON object, so not a wal-listener event');
    const e = event as Record<string, unknown>;
    const id = field(e, 'id');
    const schema = field(e, 'schema');
    const tableName = field(e, 'table');
    const action = field(e, 'action');
    if (!ACTIONS.has(action)) throw new EventDecodeError(`event ${id}: unknown action ${JSON.stringify(action)}`);
    const commitTimeText = field(e, 'commitTime');
    const table = `${schema}.${tableName}`;
    const plan = planFor(table);
    const after = row(e.data, plan, id, table, 'data');
    const before = row(e.dataOld, plan, id, table, 'dataOld');
    let commitTime: Timestamp;
    try {
      commitTime = Timestamp.from(commitTimeText);
    } catch (err) {
      throw new EventDecodeError(`event ${id}: commitTime ${describe(err)}`, { cause: err });
    }
    const change: Change = {
      id,
      action: action as Action,
      schema,
      table: tableName,
      before,
      after,
      lsn: typeof e.lsn === 'string' ? e.lsn : '',
      xid: typeof e.xid === 'number' ? e.xid : undefined,
      commitTime,
      commitTimeText,
      unchangedToast: Array.isArray(e.unchangedToast) ? (e.unchangedToast as string[]) : NO_COLUMNS,
    };
    const key = brokerKey !== undefined && brokerKey !== '' ? `${table}\u0000${brokerKey}` : rowKey(table, plan.key, action === 'DELETE' ? before : after);
    return { change, table, key };
  };
}

function field(event: Record<string, unknown>, name: string): string {
  const value = event[name];
  if (typeof value !== 'string') throw new EventDecodeError(`message has no string "${name}", so it is not a wal-listener event`);
  return value;
}

/** `{}` (no row) → null; otherwise the row with its values converted in place. */
function row(value: unknown, plan: TablePlan, id: string, table: string, what: string): Row | null {
  if (value === undefined) return null;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new EventDecodeError(`event ${id}: "${what}" is not an object`);
  const values = value as Row;
  let empty = true;
  for (const column in values) {
    empty = false;
    const v = values[column];
    const convert = plan.converters.get(column);
    if (v === null || convert === undefined) continue;
    try {
      values[column] = convert(v);
    } catch (err) {
      throw new EventDecodeError(`event ${id}: ${table}.${column}: ${describe(err)}`, { cause: err });
    }
  }
  return empty ? null : values;
}

/** The row's key columns, or the whole table when they are unknown or absent. */
function rowKey(table: string, columns: readonly string[], values: Row | null): string {
  if (columns.length === 0 || values === null) return table;
  let key = table;
  for (const column of columns) {
    const v = values[column];
    if (v === undefined) return table;
    key += `\u0000${v instanceof Date ? v.toJSON() : String(v)}`;
  }
  return key;
}

/**
 * A decoder of single events, for events that reach you some other way than through
 * createConsumer() (the stdout publisher, your own broker client): JSON text → typed Change.
 * Throws EventDecodeError.
 *
 * @example
 * const decode = createEventDecoder({ tables: columnTypes });
 * for await (const line of lines) handle(decode<PublicUsers>(line));
 */
export function createEventDecoder(options: Partial<DecodeOptions> = {}): <T = Row>(text: string) => Change<T> {
  const decode = createDecoder({ format: options.format ?? 'native', decimal: options.decimal, tables: options.tables ?? {} });
  return <T = Row>(text: string) => decode(text, undefined).change as Change<T>;
}

