/**
 * Dead letters of the PostgreSQL source in the source database: `wal_listener.dead_letters`
 * (dead-letter-table.ts, shared with PgQ), created on first need (the daemon's own schema is never
 * published). Each rejected message is stored whole with the broker's reason, on its own
 * connection, in the order given; rows are told apart by `source` (`postgres:<slot>`).
 */
import type { DatabaseConfig } from '../../config/schema.js';
import type { DeadLetter, DeadLetterStore, StoredDeadLetter } from '../../pipeline/dead-letters.js';
import { ensureDeadLetterTable, insertDeadLetters, listDeadLetters, removeDeadLetters, type Query } from './dead-letter-table.js';
import { SqlClient } from './sql-client.js';

export class PostgresDeadLetterStore implements DeadLetterStore {
  private readonly sql: SqlClient;
  private readonly source: string;
  private ready: Promise<void> | null = null;

  constructor(database: DatabaseConfig, slotName: string) {
    this.sql = new SqlClient(database);
    this.source = `postgres:${slotName}`;
  }

  async store(letters: readonly DeadLetter[]): Promise<void> {
    if (letters.length === 0) return;
    await this.ensureTable();
    const client = await this.sql.connection();
    const query: Query = (text, values) => client.query(text, values);
    await client.query('BEGIN');
    try {
      await insertDeadLetters(query, this.source, letters);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    }
  }

  async list(options: { ids?: readonly string[]; limit?: number } = {}): Promise<StoredDeadLetter[]> {
    return listDeadLetters(await this.query(), this.source, options);
  }

  async remove(storeIds: readonly string[]): Promise<void> {
    await removeDeadLetters(await this.query(), this.source, storeIds);
  }

  close(): Promise<void> {
    return this.sql.close();
  }

  private async query(): Promise<Query> {
    const client = await this.sql.connection();
    return (text, values) => client.query(text, values);
  }

  private ensureTable(): Promise<void> {
    this.ready ??= this.query()
      .then((query) => ensureDeadLetterTable(query))
      .catch((err: unknown) => {
        this.ready = null;
        throw err;
      });
    return this.ready;
  }
}
