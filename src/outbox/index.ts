/**
 * wal-listener/outbox: writes outbox messages inside the caller's `pg` transaction, the
 * counterpart of goharvest's stasher (DESIGN.md "Outbox"). Two ways, both routed by the daemon
 * from the WAL once the transaction commits (and never if it rolls back):
 *
 * - `via: 'table'` (default): one row per message in a `listener.outbox` table, goharvest's
 *   columns by default (kafka_topic, kafka_key, kafka_value, kafka_header_keys,
 *   kafka_header_values, create_time). The application may delete the rows in the same
 *   transaction: the daemon publishes inserts only.
 * - `via: 'message'`: `pg_logical_emit_message(true, 'wal-listener', json)`; no table at all.
 *
 *   import pg from 'pg';
 *   import { createStasher } from 'wal-listener/outbox';
 *
 *   const stasher = createStasher({ table: 'outbox' });
 *   const client = await pool.connect();
 *   await client.query('BEGIN');
 *   await client.query('UPDATE accounts SET balance = balance - 10 WHERE id = $1', [id]);
 *   await stasher.stash(client, { topic: 'payments', key: String(id), value: JSON.stringify({ id, amount: 10 }), headers: { type: 'debit' } });
 *   await client.query('COMMIT');
 *
 * It imports nothing of the daemon: only a `query(text, values)` method is needed (pg.Client,
 * pg.PoolClient).
 */

/** One message. */
export interface OutboxRecord {
  /** Kafka/Pub/Sub topic, NATS subject (inside a JetStream stream), RabbitMQ routing key. */
  readonly topic: string;
  /** Kafka key, Pub/Sub ordering key, `key` header on NATS and RabbitMQ; the unit of ordering. */
  readonly key?: string | null;
  /** The payload, byte for byte; null or absent = empty payload (a Kafka tombstone). */
  readonly value?: string | Uint8Array | null;
  /** Kafka headers, NATS headers, AMQP headers, Pub/Sub attributes. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** Column names of the outbox table (defaults: goharvest's). */
export interface OutboxColumns {
  readonly topic?: string;
  readonly key?: string;
  readonly value?: string;
  readonly headerKeys?: string;
  readonly headerValues?: string;
  /** Set to now() on insert (goharvest's table requires it); null: the table has no such column. */
  readonly createTime?: string | null;
}

export interface StasherOptions {
  /** `table` (default): insert into the outbox table; `message`: emit a logical message. */
  readonly via?: 'table' | 'message';
  /** The outbox table, as named in listener.outbox (`schema.table` or `table`); default `outbox`. */
  readonly table?: string;
  readonly columns?: OutboxColumns;
  /** Type of the value column: `text` (goharvest's varchar, the default) or `bytea`. */
  readonly valueType?: 'text' | 'bytea';
}

/** What the stasher needs of a `pg` client. */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<unknown>;
}

export interface Stasher {
  /** Writes the records, in order, in the client's current transaction (one statement). */
  stash(client: Queryable, ...records: OutboxRecord[]): Promise<void>;
}

/** The prefix of the logical messages the daemon routes. */
export const MESSAGE_PREFIX = 'wal-listener';

const GOHARVEST = { topic: 'kafka_topic', key: 'kafka_key', value: 'kafka_value', headerKeys: 'kafka_header_keys', headerValues: 'kafka_header_values', createTime: 'create_time' } as const;

export function createStasher(options: StasherOptions = {}): Stasher {
  if (options.via === 'message') return { stash: (client, ...records) => emitMessages(client, records) };
  const columns = { ...GOHARVEST, ...options.columns };
  const names = [columns.topic, columns.key, columns.value, columns.headerKeys, columns.headerValues].map(quoteIdent);
  const head = `INSERT INTO ${(options.table ?? 'outbox').split('.').map(quoteIdent).join('.')} (${names.join(', ')}${columns.createTime ? `, ${quoteIdent(columns.createTime)}` : ''}) VALUES `;
  const now = columns.createTime ? ', now()' : '';
  const binary = options.valueType === 'bytea';
  return {
    async stash(client, ...records) {
      if (records.length === 0) return;
      const values: unknown[] = [];
      const rows = records.map((record) => {
        check(record);
        const headers = Object.entries(record.headers ?? {});
        const n = values.push(record.topic, record.key ?? '', valueParam(record.value, binary), headers.map(([k]) => k), headers.map(([, v]) => v));
        return `($${n - 4}, $${n - 3}, $${n - 2}, $${n - 1}, $${n}${now})`;
      });
      await client.query(head + rows.join(', '), values);
    },
  };
}

/** The logical message body the daemon routes (see README "Outbox"). */
export function messageBody(record: OutboxRecord): string {
  check(record);
  const value = record.value;
  return JSON.stringify({
    topic: record.topic,
    key: record.key ?? '',
    ...(value === null || value === undefined ? { value: null } : typeof value === 'string' ? { value } : { valueBase64: Buffer.from(value).toString('base64') }),
    headers: record.headers ?? {},
  });
}

async function emitMessages(client: Queryable, records: readonly OutboxRecord[]): Promise<void> {
  if (records.length === 0) return;
  await client.query(
    'SELECT pg_logical_emit_message(true, $1, m.body) FROM unnest($2::text[]) WITH ORDINALITY AS m(body, n) ORDER BY m.n',
    [MESSAGE_PREFIX, records.map(messageBody)],
  );
}

function valueParam(value: OutboxRecord['value'], binary: boolean): string | Buffer | null {
  if (value === null || value === undefined) return null;
  if (binary) return typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
  return typeof value === 'string' ? value : Buffer.from(value).toString('utf8');
}

function check(record: OutboxRecord): void {
  if (typeof record.topic !== 'string' || record.topic === '') throw new TypeError('outbox record: topic must be a non-empty string');
  for (const [name, value] of Object.entries(record.headers ?? {})) {
    if (typeof value !== 'string') throw new TypeError(`outbox record: header ${JSON.stringify(name)} must be a string`);
  }
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
