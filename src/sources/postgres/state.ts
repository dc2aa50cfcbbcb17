/**
 * `wal_listener.state` in the source database (DESIGN.md "The daemon's own objects"): the slots
 * this daemon created or took over, with the PostgreSQL system they belong to and the last position
 * it confirmed. It is how a later start knows that a slot existed and is gone (slot-history.ts),
 * and from which LSN changes were lost. The schema is created on first need and never published
 * (the pipeline drops schema wal_listener).
 */
import type pg from 'pg';

const CREATE_TABLE = `
CREATE TABLE IF NOT EXISTS wal_listener.state (
  slot_name     text PRIMARY KEY,
  database      text NOT NULL,
  system_id     text NOT NULL,
  publication   text NOT NULL,
  origin        text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  created_lsn   pg_lsn NOT NULL,
  confirmed_lsn pg_lsn,
  confirmed_at  timestamptz,
  problem       jsonb,
  gaps          jsonb NOT NULL DEFAULT '[]'
)`;

/** A gap the operator acknowledged (`run --recreate-slot`): changes in (from, to] were never published. */
export interface AcknowledgedGap {
  from: string;
  to: string;
  reason: string;
  acknowledgedAt: string;
}

/** A problem the stream stopped on that only `--recreate-slot` resolves (e.g. changes PostgreSQL skipped). */
export interface RecordedProblem {
  code: string;
  message: string;
  at: string;
}

export interface SlotRecord {
  slotName: string;
  database: string;
  systemId: string;
  publication: string;
  /** created: this daemon created the slot; adopted: it existed before the first start that recorded it. */
  origin: 'created' | 'adopted';
  createdAt: Date;
  createdLsn: string;
  confirmedLsn: string | null;
  confirmedAt: Date | null;
  problem: RecordedProblem | null;
  gaps: AcknowledgedGap[];
}

interface Row {
  slot_name: string;
  database: string;
  system_id: string;
  publication: string;
  origin: 'created' | 'adopted';
  created_at: Date;
  created_lsn: string;
  confirmed_lsn: string | null;
  confirmed_at: Date | null;
  problem: RecordedProblem | null;
  gaps: AcknowledgedGap[];
}

type Queryable = Pick<pg.Client, 'query'>;

/** The record of `slot`, or null (also when the table does not exist: nothing is created to read). */
export async function readSlotRecord(client: Queryable, slot: string): Promise<SlotRecord | null> {
  const exists = await client.query<{ exists: boolean }>("SELECT to_regclass('wal_listener.state') IS NOT NULL AS exists");
  if (!exists.rows[0]?.exists) return null;
  const result = await client.query<Row>(
    `SELECT slot_name, database, system_id, publication, origin, created_at, created_lsn::text, confirmed_lsn::text,
            confirmed_at, problem, gaps
       FROM wal_listener.state WHERE slot_name = $1`,
    [slot],
  );
  const row = result.rows[0];
  if (!row) return null;
  return {
    slotName: row.slot_name,
    database: row.database,
    systemId: row.system_id,
    publication: row.publication,
    origin: row.origin,
    createdAt: row.created_at,
    createdLsn: row.created_lsn,
    confirmedLsn: row.confirmed_lsn,
    confirmedAt: row.confirmed_at,
    problem: row.problem,
    gaps: row.gaps,
  };
}

export interface NewRecord {
  slotName: string;
  systemId: string;
  publication: string;
  origin: 'created' | 'adopted';
  /** Where the slot starts (its consistent point, or its confirmed position when adopted). */
  lsn: string;
  /** A gap acknowledged on the way (the slot replaced a lost one). */
  gap?: AcknowledgedGap;
}

/**
 * Creates schema wal_listener and the table when missing (before a slot is created: a missing
 * privilege stops first). Each is looked up first: CREATE … IF NOT EXISTS checks the privilege to
 * create before it looks, and a DBA may have made the schema for a user who cannot create one.
 */
export async function ensureStateTable(client: Queryable): Promise<void> {
  const { schema, table } = (await client.query<{ schema: boolean; table: boolean }>(
    "SELECT to_regnamespace('wal_listener') IS NOT NULL AS schema, to_regclass('wal_listener.state') IS NOT NULL AS table",
  )).rows[0]!;
  if (!schema) await client.query('CREATE SCHEMA IF NOT EXISTS wal_listener');
  if (!table) await client.query(CREATE_TABLE);
}

/** Records a slot (replacing an older record of the same name, keeping its acknowledged gaps). */
export async function writeSlotRecord(client: Queryable, record: NewRecord): Promise<void> {
  await ensureStateTable(client);
  await client.query(
    `INSERT INTO wal_listener.state AS s (slot_name, database, system_id, publication, origin, created_lsn, confirmed_lsn, confirmed_at, gaps)
     VALUES ($1, current_database(), $2, $3, $4, $5::pg_lsn, $5::pg_lsn, now(), $6::jsonb)
     ON CONFLICT (slot_name) DO UPDATE SET
       database = EXCLUDED.database, system_id = EXCLUDED.system_id, publication = EXCLUDED.publication,
       origin = EXCLUDED.origin, created_at = now(), created_lsn = EXCLUDED.created_lsn,
       confirmed_lsn = EXCLUDED.confirmed_lsn, confirmed_at = now(), problem = NULL,
       gaps = s.gaps || EXCLUDED.gaps`,
    [record.slotName, record.systemId, record.publication, record.origin, record.lsn, JSON.stringify(record.gap ? [record.gap] : [])],
  );
}

/** Records a confirmed position; resolves with the WAL insert position after the write (see ConfirmRecorder). */
export async function writeConfirmed(client: Queryable, slot: string, lsn: string): Promise<string> {
  await client.query('UPDATE wal_listener.state SET confirmed_lsn = $2::pg_lsn, confirmed_at = now() WHERE slot_name = $1 AND confirmed_lsn IS DISTINCT FROM $2::pg_lsn', [slot, lsn]);
  const after = await client.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
  return after.rows[0]!.lsn;
}

export async function writeProblem(client: Queryable, slot: string, problem: RecordedProblem): Promise<void> {
  await client.query('UPDATE wal_listener.state SET problem = $2::jsonb WHERE slot_name = $1', [slot, JSON.stringify(problem)]);
}

/** Removes the record of a slot dropped on purpose (`wal-listener slot drop`), so a new slot is not taken for a lost one. */
export async function removeSlotRecord(client: Queryable, slot: string): Promise<boolean> {
  const exists = await client.query<{ exists: boolean }>("SELECT to_regclass('wal_listener.state') IS NOT NULL AS exists");
  if (!exists.rows[0]?.exists) return false;
  const result = await client.query('DELETE FROM wal_listener.state WHERE slot_name = $1', [slot]);
  return (result.rowCount ?? 0) > 0;
}
