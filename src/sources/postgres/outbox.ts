/**
 * Outbox routing (DESIGN.md "Outbox"): an inserted row of a `listener.outbox` table becomes one
 * RoutedMessage: topic, key, value (payload byte for byte: bytea as its bytes, text as UTF-8; NULL =
 * empty payload, a Kafka tombstone) and headers from two parallel text arrays (goharvest's
 * kafka_header_keys / kafka_header_values). A row without a topic, or whose header arrays do not
 * pair up, is a message no broker can take: it carries a refusal, and the dead-letter policy applies.
 * Routes are built once per Relation message; per row only the named columns are read.
 */
import type { OutboxTableConfig } from '../../config/outbox.js';
import { WalListenerError } from '../../errors.js';
import { parseFilterKey } from '../../pipeline/filter.js';
import { isRawRow, valueAt, type RoutedMessage, type Row } from '../../pipeline/change.js';
import type { RelationMessage } from './pgoutput.js';

const BYTEA_OID = 17;
const COMMA = 0x2c;
const EMPTY = Buffer.alloc(0);

/** Turns an inserted row of an outbox table into its message. */
export type OutboxRoute = (row: Row) => RoutedMessage;

/** The outbox routes of the relations seen in a session, by relation id. */
export class OutboxRoutes {
  private readonly routes = new Map<number, OutboxRoute>();

  constructor(private readonly tables: readonly OutboxTableConfig[]) {}

  /**
   * Learns a relation's route. A named column it lacks stops the stream, and so does an outbox
   * table renamed away from its listener.outbox name: its rows would otherwise turn silently into
   * change events (or be filtered out).
   */
  relation(message: RelationMessage): void {
    const entry = outboxEntry(this.tables, message.schema, message.name);
    if (entry) this.routes.set(message.relationId, outboxRoute(entry, message));
    else if (this.routes.has(message.relationId)) {
      throw new WalListenerError('WAL_OUTBOX_TABLE', `an outbox table was renamed to ${message.schema}.${message.name}, which listener.outbox does not name; name it there (or rename it back) and restart`);
    }
  }

  get(relationId: number): OutboxRoute | undefined {
    return this.routes.get(relationId);
  }
}

/** The listener.outbox entry for a table: "schema.table" exactly, else "table" in any schema. */
export function outboxEntry(tables: readonly OutboxTableConfig[], schema: string, table: string): OutboxTableConfig | undefined {
  let loose: OutboxTableConfig | undefined;
  for (const entry of tables) {
    const key = parseFilterKey(entry.table);
    if (key.table !== table) continue;
    if (key.schema === schema) return entry;
    if (key.schema === null) loose = entry;
  }
  return loose;
}

function outboxRoute(entry: OutboxTableConfig, relation: RelationMessage): OutboxRoute {
  const table = `${relation.schema}.${relation.name}`;
  const index = (role: 'topic' | 'key' | 'value' | 'headerKeys' | 'headerValues'): number => {
    const i = relation.columns.findIndex((c) => c.name === entry[role]);
    if (i < 0) throw missingColumn(table, entry[role], role);
    return i;
  };
  const topicAt = index('topic');
  const keyAt = index('key');
  const valueIndex = index('value');
  const headerKeysAt = index('headerKeys');
  const headerValuesAt = index('headerValues');
  const binaryValue = relation.columns[valueIndex]!.typeOid === BYTEA_OID;
  const { schema, name } = relation;

  return (row) => {
    const topic = text(valueAt(row, topicAt));
    const key = text(valueAt(row, keyAt)) ?? '';
    const payload = binaryValue ? byteaValue(row, valueIndex) : textValue(row, valueIndex);
    const headers = pairHeaders(text(valueAt(row, headerKeysAt)), text(valueAt(row, headerValuesAt)), entry);
    const refusal = topic === null || topic === '' ? `outbox row of ${table} has no topic (column ${entry.topic} is ${topic === null ? 'NULL' : 'empty'})` : typeof headers === 'string' ? `outbox row of ${table}: ${headers}` : undefined;
    const message: RoutedMessage = { schema, table: name, keyHeader: true, subject: topic ?? '', key, payload: payload ?? EMPTY, tombstone: payload === null, headers: typeof headers === 'string' ? {} : headers };
    return refusal === undefined ? message : { ...message, refusal };
  };
}

/** A text value's bytes, copied from the received row (no decoding and re-encoding); null for NULL. */
function textValue(row: Row, i: number): Buffer | null {
  if (isRawRow(row)) {
    const from = row.spans[2 * i]!;
    return from < 0 ? null : Buffer.from(row.buf.subarray(from, row.spans[2 * i + 1]));
  }
  const value = text(row[i]);
  return value === null ? null : Buffer.from(value, 'utf8');
}

function byteaValue(row: Row, i: number): Buffer | null {
  const value = text(valueAt(row, i));
  return value === null ? null : byteaBytes(value);
}

export function missingColumn(table: string, column: string, role: string): WalListenerError {
  return new WalListenerError(
    'WAL_OUTBOX_TABLE',
    `outbox table ${table} has no column ${JSON.stringify(column)} (listener.outbox ${role}); add the column or name the right one in listener.outbox`,
  );
}

function text(value: unknown): string | null {
  return typeof value === 'string' ? value : value === null || value === undefined ? null : String(value);
}

/** bytea's text output: hex (`\x0a0b`, the default) or the old escape format. */
function byteaBytes(text: string): Buffer {
  if (text.startsWith('\\x')) return Buffer.from(text.slice(2), 'hex');
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\') {
      if (text[i + 1] === '\\') {
        bytes.push(0x5c);
        i++;
      } else {
        bytes.push(parseInt(text.slice(i + 1, i + 4), 8));
        i += 3;
      }
    } else bytes.push(text.charCodeAt(i));
  }
  return Buffer.from(bytes);
}

/**
 * A text[] value (array_out) as strings, NULL elements as null; undefined when it is not a
 * one-dimensional array without bounds. A direct scan: the generic array converter (arrays.ts)
 * plus JSON.parse cost about a third of an outbox row's routing.
 */
export function textArray(text: string): (string | null)[] | undefined {
  const n = text.length;
  if (text.charCodeAt(0) !== 0x7b /* { */ || text.charCodeAt(n - 1) !== 0x7d /* } */) return undefined;
  const out: (string | null)[] = [];
  if (n === 2) return out;
  let i = 1;
  for (;;) {
    let c = text.charCodeAt(i);
    if (c === 0x7b /* { */) return undefined; // multi-dimensional
    if (c === 0x22 /* " */) {
      let element = '';
      let from = ++i;
      for (;;) {
        c = text.charCodeAt(i);
        if (Number.isNaN(c)) return undefined;
        if (c === 0x5c /* \ */) {
          element += text.slice(from, i);
          from = ++i;
          i++;
        } else if (c === 0x22) break;
        else i++;
      }
      out.push(element + text.slice(from, i));
      i++;
    } else {
      const from = i;
      while (i < n - 1 && text.charCodeAt(i) !== COMMA) i++;
      const element = text.slice(from, i);
      out.push(element.length === 4 && element.toUpperCase() === 'NULL' ? null : element);
    }
    c = text.charCodeAt(i);
    if (i >= n - 1) return c === 0x7d ? out : undefined;
    if (c !== COMMA) return undefined;
    i++;
  }
}

/** Header names and values paired up, or why they cannot be. NULL arrays are no headers. */
function pairHeaders(keysText: string | null, valuesText: string | null, entry: OutboxTableConfig): Record<string, string> | string {
  const keys = keysText === null || keysText === '{}' ? [] : textArray(keysText);
  const values = valuesText === null || valuesText === '{}' ? [] : textArray(valuesText);
  if (keys === undefined) return `column ${entry.headerKeys} is not a one-dimensional text array`;
  if (values === undefined) return `column ${entry.headerValues} is not a one-dimensional text array`;
  if (keys.length !== values.length) return `${entry.headerKeys} has ${keys.length} element(s) but ${entry.headerValues} has ${values.length}`;
  const headers: Record<string, string> = {};
  for (let i = 0; i < keys.length; i++) {
    const name = keys[i] ?? null;
    const value = values[i] ?? null;
    if (name === null || name === '') return `header name ${i + 1} in ${entry.headerKeys} is ${name === null ? 'NULL' : 'empty'}`;
    if (value === null) return `header ${JSON.stringify(name)} has a NULL value in ${entry.headerValues}`;
    headers[name] = value;
  }
  return headers;
}
