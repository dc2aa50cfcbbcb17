/**
 * `wal_listener.backfills` (DESIGN.md "The daemon's own objects"): snapshot and backfill requests
 * of a slot's daemon, with their progress. `wal-listener backfill` inserts a request (queued); the
 * daemon streaming from that slot runs them one at a time in request order (backfiller.ts), keeps
 * the last key published and acknowledged, and ends each as done, cancelled or failed. The initial
 * snapshot (listener.snapshot.initial) records its tables here too (kind 'initial'), so that a
 * daemon that died during it goes on from the last key with watermarks.
 */
import type { Query } from './dead-letter-table.js';

export type BackfillStatus = 'queued' | 'running' | 'done' | 'cancelled' | 'failed';

const DDL = `
CREATE TABLE IF NOT EXISTS wal_listener.backfills (
  id           bigserial PRIMARY KEY,
  slot_name    text NOT NULL,
  kind         text NOT NULL DEFAULT 'backfill',
  schema_name  text NOT NULL,
  table_name   text NOT NULL,
  where_sql    text,
  chunk_size   integer NOT NULL,
  status       text NOT NULL DEFAULT 'queued',
  last_key     jsonb,
  rows         bigint NOT NULL DEFAULT 0,
  requested_at timestamptz NOT NULL DEFAULT now(),
  started_at   timestamptz,
  updated_at   timestamptz,
  finished_at  timestamptz,
  error        text
);
CREATE INDEX IF NOT EXISTS backfills_slot_status ON wal_listener.backfills (slot_name, status);`;

export interface BackfillRequest {
  id: string;
  slotName: string;
  kind: 'backfill' | 'initial';
  schema: string;
  table: string;
  where: string | null;
  chunkSize: number;
  status: BackfillStatus;
  /** The key (text values, key order) of the last row published and acknowledged; null before the first chunk. */
  lastKey: string[] | null;
  rows: number;
  requestedAt: Date;
  startedAt: Date | null;
  updatedAt: Date | null;
  finishedAt: Date | null;
  error: string | null;
}

interface Row {
  id: string;
  slot_name: string;
  kind: 'backfill' | 'initial';
  schema_name: string;
  table_name: string;
  where_sql: string | null;
  chunk_size: number;
  status: BackfillStatus;
  last_key: string[] | null;
  rows: string;
  requested_at: Date;
  started_at: Date | null;
  updated_at: Date | null;
  finished_at: Date | null;
  error: string | null;
}

const COLUMNS = 'id::text, slot_name, kind, schema_name, table_name, where_sql, chunk_size, status, last_key, rows::text, requested_at, started_at, updated_at, finished_at, error';

function toRequest(row: Row): BackfillRequest {
  return {
    id: row.id,
    slotName: row.slot_name,
    kind: row.kind,
    schema: row.schema_name,
    table: row.table_name,
    where: row.where_sql,
    chunkSize: row.chunk_size,
    status: row.status,
    lastKey: row.last_key,
    rows: Number(row.rows),
    requestedAt: row.requested_at,
    startedAt: row.started_at,
    updatedAt: row.updated_at,
    finishedAt: row.finished_at,
    error: row.error,
  };
}

async function tableExists(query: Query): Promise<boolean> {
  return ((await query("SELECT to_regclass('wal_listener.backfills') IS NOT NULL AS ok")).rows[0] as { ok: boolean }).ok;
}

/** Creates schema wal_listener and the table when missing (each looked up first, as state.ts does). */
export async function ensureBackfillTable(query: Query): Promise<void> {
  const found = await query("SELECT to_regnamespace('wal_listener') IS NOT NULL AS schema, to_regclass('wal_listener.backfills') IS NOT NULL AS table");
  const { schema, table } = found.rows[0] as { schema: boolean; table: boolean };
  if (table) return;
  if (!schema) await query('CREATE SCHEMA IF NOT EXISTS wal_listener');
  await query(DDL);
}

export type NewBackfill = Pick<BackfillRequest, 'slotName' | 'kind' | 'schema' | 'table' | 'where' | 'chunkSize'>;

export async function insertBackfill(query: Query, request: NewBackfill): Promise<BackfillRequest> {
  await ensureBackfillTable(query);
  const result = await query(
    `INSERT INTO wal_listener.backfills (slot_name, kind, schema_name, table_name, where_sql, chunk_size)
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${COLUMNS}`,
    [request.slotName, request.kind, request.schema, request.table, request.where, request.chunkSize],
  );
  return toRequest(result.rows[0] as Row);
}

/** The request to run next: one already running (resumed after a restart) first, then the oldest queued. */
export async function nextBackfill(query: Query, slot: string): Promise<BackfillRequest | null> {
  if (!(await tableExists(query))) return null;
  const result = await query(
    `SELECT ${COLUMNS} FROM wal_listener.backfills WHERE slot_name = $1 AND status IN ('queued', 'running')
      ORDER BY status = 'running' DESC, id LIMIT 1`,
    [slot],
  );
  const row = result.rows[0] as Row | undefined;
  return row ? toRequest(row) : null;
}

export async function readBackfill(query: Query, id: string): Promise<BackfillRequest | null> {
  const result = await query(`SELECT ${COLUMNS} FROM wal_listener.backfills WHERE id = $1`, [id]);
  const row = result.rows[0] as Row | undefined;
  return row ? toRequest(row) : null;
}

export async function listBackfills(query: Query, slot: string): Promise<BackfillRequest[]> {
  if (!(await tableExists(query))) return [];
  const result = await query(`SELECT ${COLUMNS} FROM wal_listener.backfills WHERE slot_name = $1 ORDER BY id`, [slot]);
  return (result.rows as Row[]).map(toRequest);
}

export async function markRunning(query: Query, id: string): Promise<void> {
  await query("UPDATE wal_listener.backfills SET status = 'running', started_at = coalesce(started_at, now()), updated_at = now() WHERE id = $1 AND status = 'queued'", [id]);
}

/** A chunk was acknowledged: its last key and its row count. */
export async function recordProgress(query: Query, id: string, lastKey: readonly string[], rows: number): Promise<void> {
  await query("UPDATE wal_listener.backfills SET last_key = $2::jsonb, rows = rows + $3, updated_at = now() WHERE id = $1 AND status = 'running'", [id, JSON.stringify(lastKey), rows]);
}

export async function finishBackfill(query: Query, id: string, status: 'done' | 'failed', error?: string): Promise<void> {
  await query("UPDATE wal_listener.backfills SET status = $2, error = $3, finished_at = now(), updated_at = now() WHERE id = $1 AND status IN ('queued', 'running')", [id, status, error ?? null]);
}

/** Cancels a queued or running request; returns the request as it was, or null when there is none with that id. */
export async function cancelBackfill(query: Query, slot: string, id: string): Promise<BackfillRequest | null> {
  if (!(await tableExists(query))) return null;
  const before = await readBackfill(query, id);
  if (!before || before.slotName !== slot) return null;
  await query("UPDATE wal_listener.backfills SET status = 'cancelled', finished_at = now(), updated_at = now() WHERE id = $1 AND status IN ('queued', 'running')", [id]);
  return before;
}

/** Unfinished initial-snapshot requests of a slot are dropped when the slot is created again (a new initial snapshot replaces them). */
export async function dropUnfinishedInitial(query: Query, slot: string): Promise<void> {
  await query("DELETE FROM wal_listener.backfills WHERE slot_name = $1 AND kind = 'initial' AND status IN ('queued', 'running')", [slot]);
}
