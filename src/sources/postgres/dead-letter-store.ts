/**
 * Dead letters in the source database: `wal_listener.dead_letters`, created on first need (the
 * daemon's own schema is never published). Each rejected message is stored whole (payload bytes,
 * headers, routing) with the broker's reason, on its own connection, in the order given.
 */
import type { DatabaseConfig } from '../../config/schema.js';
import type { DeadLetter, DeadLetterStore, StoredDeadLetter } from '../../pipeline/dead-letters.js';
import { payloadBuffer } from '../../pipeline/message.js';
import { SqlClient } from './sql-client.js';

const CREATE = `
CREATE SCHEMA IF NOT EXISTS wal_listener;
CREATE TABLE IF NOT EXISTS wal_listener.dead_letters (
  id          bigserial PRIMARY KEY,
  event_id    text NOT NULL,
  subject     text NOT NULL,
  message_key text NOT NULL,
  payload     bytea NOT NULL,
  headers     jsonb,
  properties  jsonb,
  exchange    text,
  schema_name text NOT NULL,
  table_name  text NOT NULL,
  action      text NOT NULL,
  lsn         text NOT NULL,
  broker      text NOT NULL,
  reason      text NOT NULL,
  stored_at   timestamptz NOT NULL DEFAULT now()
)`;

interface Row {
  id: string;
  event_id: string;
  subject: string;
  message_key: string;
  payload: Buffer;
  headers: Record<string, string> | null;
  properties: Record<string, unknown> | null;
  exchange: string | null;
  schema_name: string;
  table_name: string;
  action: string;
  lsn: string;
  broker: string;
  reason: string;
  stored_at: Date;
}

export class PostgresDeadLetterStore implements DeadLetterStore {
  private readonly sql: SqlClient;
  private ready: Promise<void> | null = null;

  constructor(database: DatabaseConfig) {
    this.sql = new SqlClient(database);
  }

  async store(letters: readonly DeadLetter[]): Promise<void> {
    if (letters.length === 0) return;
    await this.ensureTable();
    const client = await this.sql.connection();
    await client.query('BEGIN');
    try {
      for (const { message, broker, reason } of letters) {
        await client.query(
          `INSERT INTO wal_listener.dead_letters (event_id, subject, message_key, payload, headers, properties, exchange, schema_name, table_name, action, lsn, broker, reason)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
          [message.id, message.subject, message.key, payloadBuffer(message), message.headers, message.properties, message.exchange, message.schema, message.table, message.action, message.lsn, broker, reason],
        );
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    }
  }

  async list(options: { ids?: readonly string[]; limit?: number } = {}): Promise<StoredDeadLetter[]> {
    if (!(await this.exists())) return [];
    const rows = await this.sql.query<Row>(
      `SELECT id::text, event_id, subject, message_key, payload, headers, properties, exchange, schema_name, table_name, action, lsn, broker, reason, stored_at
         FROM wal_listener.dead_letters
        WHERE $1::bigint[] IS NULL OR id = ANY ($1::bigint[])
        ORDER BY id LIMIT $2`,
      [options.ids ? [...options.ids] : null, options.limit ?? null],
    );
    return rows.map((row) => ({
      storeId: row.id,
      storedAt: row.stored_at,
      broker: row.broker,
      reason: row.reason,
      message: {
        id: row.event_id,
        subject: row.subject,
        key: row.message_key,
        payload: row.headers === null && row.properties === null && row.action !== 'MESSAGE' ? row.payload.toString('utf8') : row.payload,
        lsn: row.lsn,
        schema: row.schema_name,
        table: row.table_name,
        action: row.action,
        headers: row.headers,
        properties: row.properties,
        exchange: row.exchange,
      },
    }));
  }

  async remove(storeIds: readonly string[]): Promise<void> {
    if (storeIds.length === 0) return;
    await this.sql.query('DELETE FROM wal_listener.dead_letters WHERE id = ANY ($1::bigint[])', [[...storeIds]]);
  }

  close(): Promise<void> {
    return this.sql.close();
  }

  private ensureTable(): Promise<void> {
    this.ready ??= this.sql.query(CREATE).then(
      () => undefined,
      (err: unknown) => {
        this.ready = null;
        throw err;
      },
    );
    return this.ready;
  }

  private async exists(): Promise<boolean> {
    const rows = await this.sql.query<{ exists: boolean }>("SELECT to_regclass('wal_listener.dead_letters') IS NOT NULL AS exists");
    return rows[0]?.exists === true;
  }
}
