/** A regular (non-replication) SQL connection for setup and catalog lookups, reconnected when lost. */
import type pg from 'pg';
import type { DatabaseConfig } from '../../config/schema.js';
import { connectClient } from './connection-options.js';

export class SqlClient {
  private client: pg.Client | null = null;
  private connecting: Promise<pg.Client> | null = null;

  constructor(private readonly db: DatabaseConfig) {}

  async connection(): Promise<pg.Client> {
    if (this.client) return this.client;
    this.connecting ??= connectClient(this.db).then(
      (client) => {
        client.on('error', () => {
          if (this.client === client) this.client = null;
        });
        client.on('end', () => {
          if (this.client === client) this.client = null;
        });
        this.client = client;
        this.connecting = null;
        return client;
      },
      (err: unknown) => {
        this.connecting = null;
        throw err;
      },
    );
    return this.connecting;
  }

  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, params?: unknown[]): Promise<R[]> {
    const client = await this.connection();
    return (await client.query<R>(text, params)).rows;
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => {});
  }
}
