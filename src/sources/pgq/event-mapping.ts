/**
 * mikkoo's PgQ event → message mapping (gmr/mikkoo `worker.py` build_properties_kwargs, docs
 * "PgQ Event to AMQP Mapping"), as one RoutedMessage per event:
 *
 * | event       | message                                                                   |
 * |-------------|---------------------------------------------------------------------------|
 * | `ev_type`   | routing key (RabbitMQ); subject suffix elsewhere; the message key        |
 * | `ev_data`   | body, byte for byte                                                      |
 * | `ev_extra1` | exchange (RabbitMQ), subject root elsewhere; `publisher.topic` when empty |
 * | `ev_extra2` | `content_type` property                                                  |
 * | `ev_extra3` | AMQP properties as JSON; they win over the automatic ones                |
 * | `ev_extra4` | headers as JSON (replaced by a `headers` key of `ev_extra3`, as in mikkoo)|
 * | `ev_time`   | `timestamp` header (ISO 8601) and `timestamp` property (epoch seconds)   |
 * | `ev_txid`   | `txid` header                                                            |
 *
 * Automatic properties: app_id `wal-listener`, content_type, correlation_id (the message id: a
 * UUID that is the same on every delivery), message_id (the message id), timestamp, and
 * delivery_mode 2 (persistent). Automatic headers `origin`, `sequence`, `timestamp` and `txid`
 * never overwrite headers the event gives.
 *
 * RabbitMQ (`amqp`): subject = `ev_type` (the routing key), `exchange` set, `properties` in
 * amqplib's names (`Options.Publish`) with `headers` as a typed AMQP table (numbers stay numbers,
 * as mikkoo's pika sends them), `headers` the same table as text. Other brokers: subject =
 * `<exchange>.<ev_type>`, and `headers` carries the properties (mikkoo's snake_case names, except
 * delivery_mode) and the headers as text, headers winning on a shared name (`timestamp`);
 * `properties` are the AMQP ones without headers (for logs and dead letters).
 */
import type { RoutedMessage } from '../../pipeline/change.js';
import { parseEventTime } from './event-time.js';
import { messageId, sequenceId } from './ids.js';

/** One event as `pgq.batch_event_sql` selects it, every column as PostgreSQL's text. */
export interface PgqEventRow {
  readonly ev_id: string;
  readonly ev_time: string;
  readonly ev_txid: string | null;
  readonly ev_retry: string | null;
  readonly ev_type: string | null;
  readonly ev_data: string | null;
  readonly ev_extra1: string | null;
  readonly ev_extra2: string | null;
  readonly ev_extra3: string | null;
  readonly ev_extra4: string | null;
}

/** mikkoo's `VALID_PROPERTIES` (the `ev_extra3` keys it reads) and their amqplib names. */
export const AMQP_PROPERTIES: Readonly<Record<string, string>> = {
  app_id: 'appId',
  content_encoding: 'contentEncoding',
  content_type: 'contentType',
  correlation_id: 'correlationId',
  delivery_mode: 'deliveryMode',
  expiration: 'expiration',
  headers: 'headers',
  message_id: 'messageId',
  priority: 'priority',
  timestamp: 'timestamp',
  type: 'type',
  user_id: 'userId',
};

export const APP_ID = 'wal-listener';

export interface MappingOptions {
  /** `publisher.topic`: the exchange (subject root) of events without `ev_extra1`. */
  readonly topic: string;
  /** The publisher is RabbitMQ: routing key and exchange apart, properties as AMQP properties. */
  readonly amqp: boolean;
  /** The queue name: the message's `table` (its `schema` is "pgq"). */
  readonly queue: string;
  /** ids.ts messageIdPrefix of the queue. */
  readonly idPrefix: string;
  /** The `origin` header: this host's name. */
  readonly origin: string;
  /** An `ev_extra3`/`ev_extra4` that is not a JSON object: mikkoo ignores it with a warning, so do we. */
  readonly badJson: (evId: string, column: 'ev_extra3' | 'ev_extra4', reason: string) => void;
}

type Table = Record<string, unknown>;
type TextTable = Record<string, string>;

/** A header table as given (AMQP, typed) and as text (other brokers). */
interface Headers {
  readonly table: Table;
  readonly text: TextTable;
}

/** `ev_extra3` as mikkoo reads it, parsed once per distinct text. */
interface GivenProperties {
  /** Its VALID_PROPERTIES but headers, in amqplib's names. */
  readonly amqp: Table;
  /** The same in mikkoo's names as text, for other brokers (delivery_mode means nothing there). */
  readonly text: TextTable;
  /** Its `headers`: they replace ev_extra4's, as in mikkoo. */
  readonly headers: Headers | undefined;
  /** Why its `headers` were ignored. */
  readonly headersProblem: string | undefined;
}

export type EventMapper = (row: PgqEventRow) => RoutedMessage;

export function createEventMapper(options: MappingOptions): EventMapper {
  const { topic, amqp, queue, idPrefix, origin, badJson } = options;
  // Events of one producer transaction share ev_time, and producers repeat their extras: each
  // distinct text is parsed once per run of equal ones (bench/pgq-read.ts).
  const eventTime = lastOf(parseEventTime);
  const extra3 = lastOf((text) => mapResult(parseObject(text), givenProperties));
  const extra4 = lastOf((text) => mapResult(parseObject(text), headersOf));

  const given = <T>(row: PgqEventRow, column: 'ev_extra3' | 'ev_extra4', read: (text: string) => T | string): T | undefined => {
    const text = row[column];
    if (text === null || text === '') return undefined;
    const value = read(text);
    if (typeof value !== 'string') return value;
    badJson(row.ev_id, column, value);
    return undefined;
  };

  return (row) => {
    const id = messageId(idPrefix, row.ev_id);
    const time = eventTime(row.ev_time);
    const exchange = row.ev_extra1 || topic;
    const routingKey = row.ev_type ?? '';
    const props = given(row, 'ev_extra3', extra3);
    if (props?.headersProblem) badJson(row.ev_id, 'ev_extra3', props.headersProblem);
    const givenHeaders = props?.headers ?? given(row, 'ev_extra4', extra4);

    // Objects are built as literals of one shape and the given values assigned over them: V8
    // makes spreads and keys added later slow dictionary objects (3–15× the mapping's CPU).
    const sequence = time ? sequenceId(time.sequencePart, row.ev_id) : row.ev_id;
    const timestamp = time?.iso ?? row.ev_time;
    const headers: Table = { origin, sequence, txid: row.ev_txid === null ? undefined : txidValue(row.ev_txid), timestamp };
    const headersText: TextTable = { origin, sequence, txid: row.ev_txid ?? '', timestamp };
    if (row.ev_txid === null) {
      delete headers.txid;
      delete headersText.txid;
    }
    if (givenHeaders) {
      Object.assign(headers, givenHeaders.table);
      Object.assign(headersText, givenHeaders.text);
    }
    const properties: Table = row.ev_extra2
      ? { appId: APP_ID, correlationId: id, messageId: id, deliveryMode: 2, contentType: row.ev_extra2, timestamp: time?.epochSeconds }
      : { appId: APP_ID, correlationId: id, messageId: id, deliveryMode: 2, timestamp: time?.epochSeconds };
    if (!time) delete properties.timestamp;
    if (props) Object.assign(properties, props.amqp);

    let subject = routingKey;
    let textHeaders = headersText;
    if (amqp) {
      properties.headers = headers;
    } else {
      subject = routingKey === '' ? exchange : `${exchange}.${routingKey}`;
      const text: TextTable = row.ev_extra2 ? { app_id: APP_ID, correlation_id: id, content_type: row.ev_extra2 } : { app_id: APP_ID, correlation_id: id };
      if (props) Object.assign(text, props.text);
      textHeaders = Object.assign(text, headersText);
    }
    return {
      id,
      subject,
      key: routingKey,
      payload: Buffer.from(row.ev_data ?? '', 'utf8'),
      headers: textHeaders,
      properties,
      exchange,
      schema: 'pgq',
      table: queue,
    };
  };
}

function givenProperties(value: Table): GivenProperties {
  const amqp: Table = {};
  const text: TextTable = {};
  let headers: Headers | undefined;
  let headersProblem: string | undefined;
  for (const key of Object.keys(value)) {
    const name = AMQP_PROPERTIES[key];
    if (name === undefined || value[key] === null || value[key] === undefined) continue; // mikkoo reads only its VALID_PROPERTIES
    if (name === 'headers') {
      const table = typeof value.headers === 'string' ? parseObject(value.headers) : isTable(value.headers) ? value.headers : 'not a JSON object';
      if (typeof table === 'string') headersProblem = `its "headers" is ${table}`;
      else headers = headersOf(table);
      continue;
    }
    amqp[name] = value[key];
    if (name !== 'deliveryMode') text[key] = headerText(value[key]);
  }
  return { amqp, text, headers, headersProblem };
}

function headersOf(table: Table): Headers {
  const text: TextTable = {};
  for (const key of Object.keys(table)) if (table[key] !== null && table[key] !== undefined) text[key] = headerText(table[key]);
  return { table, text };
}

function mapResult<T>(value: Table | string, map: (table: Table) => T): T | string {
  return typeof value === 'string' ? value : map(value);
}

/** `parse` remembering its last input and result (the result is shared: callers must not change it). */
function lastOf<T>(parse: (text: string) => T): (text: string) => T {
  let lastText: string | undefined;
  let last!: T;
  return (text) => {
    if (text !== lastText) {
      last = parse(text);
      lastText = text;
    }
    return last;
  };
}

/** A JSON object, or the reason it is not one. */
function parseObject(text: string): Table | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return `not valid JSON (${(err as Error).message})`;
  }
  return isTable(value) ? value : 'not a JSON object';
}

function isTable(value: unknown): value is Table {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** ev_txid as a number when exact (pika sends mikkoo's as an AMQP integer), else its digits. */
function txidValue(text: string): number | string {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : text;
}

function headerText(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}
