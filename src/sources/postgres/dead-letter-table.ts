/**
 * `wal_listener.dead_letters` (DESIGN.md "The daemon's own objects"): rejected messages stored whole
 * with the broker's reason, in the order stored, for `wal-listener dead-letters list|replay`.
 * Shared by the sources that live in PostgreSQL (the slot source and PgQ), told apart by `source`.
 */
import type pg from 'pg';
import type { DeadLetter, StoredDeadLetter } from '../../pipeline/dead-letters.js';
import type { OutboundMessage } from '../../pipeline/message.js';
import { payloadBuffer } from '../../pipeline/message.js';

/** Runs one statement (a pooled or a session connection). */
export type Query = (text: string, values?: unknown[]) => Promise<pg.QueryResult>;

export const DEAD_LETTERS_DDL = `
CREATE TABLE IF NOT EXISTS wal_listener.dead_letters (
  id bigserial PRIMARY KEY,
  stored_at timestamptz NOT NULL DEFAULT now(),
  source text NOT NULL,
  position text NOT NULL,
  message_id text NOT NULL,
  subject text NOT NULL,
  broker text NOT NULL,
  reason text NOT NULL,
  message jsonb NOT NULL,
  payload bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_message_id ON wal_listener.dead_letters (message_id);`;

/**
 * Creates the schema and table when missing. Both are looked up first: CREATE SCHEMA IF NOT
 * EXISTS needs the CREATE privilege on the database even when the schema exists, and a
 * least-privilege user may be given a schema a DBA made.
 */
export async function ensureDeadLetterTable(query: Query): Promise<void> {
  const found = await query("SELECT to_regnamespace('wal_listener') IS NOT NULL AS schema, to_regclass('wal_listener.dead_letters') IS NOT NULL AS table");
  const { schema, table } = found.rows[0] as { schema: boolean; table: boolean };
  if (table) return;
  if (!schema) await query('CREATE SCHEMA IF NOT EXISTS wal_listener');
  await query(DEAD_LETTERS_DDL);
}

/** The message's fields but its payload (stored as bytea beside it) and its chunk's lease (memory of this process). */
function messageJson(message: OutboundMessage): string {
  const { payload: _payload, lease: _lease, ...rest } = message;
  return JSON.stringify(rest);
}

/** Inserts letters in order, in the caller's transaction (the table must exist). */
export async function insertDeadLetters(query: Query, source: string, letters: readonly DeadLetter[]): Promise<void> {
  for (const { message, broker, reason } of letters) {
    await query(
      `INSERT INTO wal_listener.dead_letters (source, position, message_id, subject, broker, reason, message, payload)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [source, message.lsn, message.id, message.subject, broker, reason, messageJson(message), payloadBuffer(message)],
    );
  }
}

interface Row {
  id: string;
  stored_at: Date;
  broker: string;
  reason: string;
  message: Omit<OutboundMessage, 'payload'>;
  payload: Buffer;
}

/** Stored letters of `source` in storage order: all, or those with the given store ids. */
export async function listDeadLetters(query: Query, source: string, options: { ids?: readonly string[]; limit?: number } = {}): Promise<StoredDeadLetter[]> {
  const exists = await query("SELECT to_regclass('wal_listener.dead_letters') IS NOT NULL AS ok");
  if (!exists.rows[0]?.ok) return [];
  const result = await query(
    `SELECT id::text, stored_at, broker, reason, message, payload FROM wal_listener.dead_letters
      WHERE source = $1 AND ($2::bigint[] IS NULL OR id = ANY($2::bigint[]))
      ORDER BY id LIMIT $3`,
    [source, options.ids ?? null, options.limit ?? null],
  );
  return (result.rows as Row[]).map((row) => ({
    storeId: row.id,
    storedAt: row.stored_at,
    broker: row.broker,
    reason: row.reason,
    message: { ...withoutLease(row.message), payload: row.payload },
  }));
}

/** Rows stored since 0bc25b3 and before 348ed7b carry the lease, with its chunk, as JSON: it is dropped. */
function withoutLease(message: Omit<OutboundMessage, 'payload'>): Omit<OutboundMessage, 'payload'> {
  const { lease: _lease, ...rest } = message;
  return rest;
}

export async function removeDeadLetters(query: Query, source: string, storeIds: readonly string[]): Promise<void> {
  if (storeIds.length === 0) return;
  await query('DELETE FROM wal_listener.dead_letters WHERE source = $1 AND id = ANY($2::bigint[])', [source, storeIds]);
}
