/**
 * Dead letters in the source server: `wal_listener.dead_letters`, created on first need (the
 * daemon's own database is never published). Each rejected message is stored whole (payload bytes,
 * headers, routing) with the broker's reason, in the order given, in one transaction.
 */
import type mysql from 'mysql2/promise';
import type { MysqlConfig } from '../../config/mysql.js';
import type { DeadLetter, DeadLetterStore, StoredDeadLetter } from '../../pipeline/dead-letters.js';
import { payloadBuffer } from '../../pipeline/message.js';
import { OwnTables } from './connection.js';

const CREATE = `CREATE TABLE IF NOT EXISTS wal_listener.dead_letters (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  event_id     VARCHAR(64) NOT NULL,
  subject      TEXT NOT NULL,
  message_key  MEDIUMTEXT NOT NULL,
  payload      LONGBLOB NOT NULL,
  payload_text TINYINT(1) NOT NULL,
  headers      LONGTEXT NULL,
  properties   LONGTEXT NULL,
  exchange     TEXT NULL,
  schema_name  VARCHAR(64) NOT NULL,
  table_name   VARCHAR(64) NOT NULL,
  action       VARCHAR(16) NOT NULL,
  lsn          VARCHAR(600) NOT NULL,
  broker       VARCHAR(32) NOT NULL,
  reason       TEXT NOT NULL,
  stored_at    TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`;

export class MysqlDeadLetterStore implements DeadLetterStore {
  private readonly tables: OwnTables;

  constructor(config: MysqlConfig) {
    this.tables = new OwnTables(config);
  }

  async store(letters: readonly DeadLetter[]): Promise<void> {
    if (letters.length === 0) return;
    await this.tables.run(async (c) => {
      await c.beginTransaction();
      try {
        for (const { message, broker, reason } of letters) {
          await c.query(
            `INSERT INTO wal_listener.dead_letters
               (event_id, subject, message_key, payload, payload_text, headers, properties, exchange, schema_name, table_name, action, lsn, broker, reason)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
            [
              message.id, message.subject, message.key, payloadBuffer(message), typeof message.payload === 'string' ? 1 : 0,
              message.headers === null ? null : JSON.stringify(message.headers),
              message.properties === null ? null : JSON.stringify(message.properties),
              message.exchange, message.schema, message.table, message.action, message.lsn, broker, reason,
            ],
          );
        }
        await c.commit();
      } catch (err) {
        await c.rollback().catch(() => undefined);
        throw err;
      }
    }, CREATE);
  }

  async list(options: { ids?: readonly string[]; limit?: number } = {}): Promise<StoredDeadLetter[]> {
    if (options.ids?.length === 0 || !(await this.tables.exists('dead_letters'))) return [];
    return this.tables.run(async (c) => {
      const where = options.ids ? `WHERE d.id IN (${options.ids.map(() => '?').join(', ')})` : '';
      const limit = options.limit === undefined ? '' : 'LIMIT ?';
      const params: unknown[] = [...(options.ids ?? []), ...(options.limit === undefined ? [] : [options.limit])];
      const [rows] = await c.query<mysql.RowDataPacket[]>(
        // ORDER BY the column, not the text alias: '10' sorts before '9'.
        `SELECT CAST(d.id AS CHAR) AS id, event_id, subject, message_key, payload, payload_text, headers, properties, exchange,
                schema_name, table_name, action, lsn, broker, reason, stored_at
           FROM wal_listener.dead_letters d ${where} ORDER BY d.id ${limit}`,
        params,
      );
      return rows.map((row): StoredDeadLetter => ({
        storeId: String(row.id),
        // The connection reads dates as UTC text.
        storedAt: new Date(`${String(row.stored_at).replace(' ', 'T')}Z`),
        broker: String(row.broker),
        reason: String(row.reason),
        message: {
          id: String(row.event_id),
          subject: String(row.subject),
          key: String(row.message_key),
          payload: Number(row.payload_text) === 1 ? (row.payload as Buffer).toString('utf8') : (row.payload as Buffer),
          lsn: String(row.lsn),
          schema: String(row.schema_name),
          table: String(row.table_name),
          action: String(row.action),
          headers: row.headers === null ? null : (JSON.parse(String(row.headers)) as Record<string, string>),
          properties: row.properties === null ? null : (JSON.parse(String(row.properties)) as Record<string, unknown>),
          exchange: row.exchange === null ? null : String(row.exchange),
        },
      }));
    });
  }

  async remove(storeIds: readonly string[]): Promise<void> {
    if (storeIds.length === 0) return;
    await this.tables.run((c) => c.query(`DELETE FROM wal_listener.dead_letters WHERE id IN (${storeIds.map(() => '?').join(', ')})`, [...storeIds]));
  }

  close(): Promise<void> {
    return this.tables.close();
  }
}
