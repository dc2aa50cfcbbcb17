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
 * delivery_mode) and the headers as text, headers winning on a shared name (`timestamp`).
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

export type EventMapper = (row: PgqEventRow) => RoutedMessage;

export function createEventMapper(options: MappingOptions): EventMapper {
  const { topic, amqp, queue, idPrefix, origin, badJson } = options;

  const jsonObject = (row: PgqEventRow, column: 'ev_extra3' | 'ev_extra4'): Table | undefined => {
    const text = row[column];
    if (text === null || text === '') return undefined;
    const value = parseObject(text);
    if (typeof value === 'string') {
      badJson(row.ev_id, column, value);
      return undefined;
    }
    return value;
  };

  return (row) => {
    const id = messageId(idPrefix, row.ev_id);
    const time = parseEventTime(row.ev_time);
    const exchange = row.ev_extra1 || topic;
    const routingKey = row.ev_type ?? '';

    const properties: Table = { appId: APP_ID, correlationId: id, messageId: id, deliveryMode: 2 };
    if (row.ev_extra2) properties.contentType = row.ev_extra2;
    if (time) properties.timestamp = time.epochSeconds;
    let headers: Table = jsonObject(row, 'ev_extra4') ?? {};
    const given = jsonObject(row, 'ev_extra3');
    if (given) {
      for (const key of Object.keys(given)) {
        const name = AMQP_PROPERTIES[key];
        if (name === undefined) continue; // mikkoo reads only its VALID_PROPERTIES
        if (name === 'headers') {
          const table = typeof given.headers === 'string' ? parseObject(given.headers) : given.headers;
          if (isTable(table)) headers = { ...table };
          else badJson(row.ev_id, 'ev_extra3', 'its "headers" is not a JSON object');
        } else {
          properties[name] = given[key];
        }
      }
    }
    headers.origin ??= origin;
    headers.sequence ??= time ? sequenceId(time.epochMicros, row.ev_id) : row.ev_id;
    if (row.ev_txid !== null) headers.txid ??= txidValue(row.ev_txid);
    headers.timestamp ??= time?.iso ?? row.ev_time;

    const textHeaders = amqp ? asText(headers) : { ...propertiesAsHeaders(given, properties), ...asText(headers) };
    return {
      id,
      subject: amqp ? routingKey : routingKey === '' ? exchange : `${exchange}.${routingKey}`,
      key: routingKey,
      payload: Buffer.from(row.ev_data ?? '', 'utf8'),
      headers: textHeaders,
      properties: amqp ? { ...properties, headers } : properties,
      exchange,
      schema: 'pgq',
      table: queue,
    };
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

function asText(table: Table): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(table)) {
    if (table[key] !== undefined && table[key] !== null) out[key] = headerText(table[key]);
  }
  return out;
}

const SNAKE: Readonly<Record<string, string>> = Object.fromEntries(Object.entries(AMQP_PROPERTIES).map(([snake, camel]) => [camel, snake]));

/** Properties as headers for brokers without AMQP properties: mikkoo's names; delivery_mode means nothing there. */
function propertiesAsHeaders(given: Table | undefined, properties: Table): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of Object.keys(properties)) {
    if (name === 'deliveryMode') continue;
    if (name === 'messageId' && given?.message_id === undefined) continue; // the id travels as the broker's dedup id
    const value = properties[name];
    if (value !== undefined && value !== null) out[SNAKE[name]!] = headerText(value);
  }
  return out;
}
