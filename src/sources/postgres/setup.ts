/**
 * Prepares PostgreSQL over a regular SQL connection: checks wal_level, creates the permanent
 * pgoutput slot when it is missing, and reports whether the slot is in use by another process.
 * (Whether a missing slot may be created, and the publication: prepare.ts.)
 */
import pg from 'pg';
import { WalListenerError } from '../../errors.js';

export interface SlotState {
  /** confirmed_flush_lsn as "X/Y", or null for a slot that never confirmed anything. */
  confirmedFlush: string | null;
  /** PID of the process streaming from the slot now, or null. */
  activePid: number | null;
  created: boolean;
}

export async function checkWalLevel(client: pg.Client): Promise<void> {
  const result = await client.query<{ wal_level: string }>('SHOW wal_level');
  const level = result.rows[0]?.wal_level;
  if (level !== 'logical') {
    throw new WalListenerError(
      'WAL_PG_WAL_LEVEL',
      `PostgreSQL runs with wal_level=${level}; logical replication needs wal_level=logical ` +
        `(ALTER SYSTEM SET wal_level = logical, then restart PostgreSQL)`,
    );
  }
}

/** Creates the logical slot with pgoutput if missing (with `create` when given: the initial snapshot's); checks an existing one fits. */
export async function ensureSlot(client: pg.Client, slot: string, database: string, create?: () => Promise<void>): Promise<SlotState> {
  const read = async () =>
    (
      await client.query<{ plugin: string; slot_type: string; database: string; active_pid: number | null; confirmed: string | null }>(
        'SELECT plugin, slot_type, database, active_pid, confirmed_flush_lsn::text AS confirmed FROM pg_replication_slots WHERE slot_name = $1',
        [slot],
      )
    ).rows[0];
  let row = await read();
  let created = false;
  if (!row) {
    try {
      if (create) await create();
      else await client.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slot]);
      created = true;
    } catch (err) {
      if ((err as { code?: string }).code !== '42710') throw err; // created concurrently: read it below
    }
    row = await read();
    if (!row) throw new WalListenerError('WAL_PG_REPLICATION', `replication slot ${slot} vanished right after it was created`);
  }
  if (row.slot_type !== 'logical' || row.plugin !== 'pgoutput' || row.database !== database) {
    throw new WalListenerError(
      'WAL_PG_SLOT_MISMATCH',
      `replication slot ${slot} exists but is a ${row.slot_type} slot with plugin ${row.plugin ?? 'none'} on database ${row.database ?? 'none'}; ` +
        `wal-listener needs a logical pgoutput slot on ${database} (drop it or choose another listener.slotName)`,
    );
  }
  return { confirmedFlush: row.confirmed, activePid: row.active_pid, created };
}

/** Primary key columns of a table, in key order (for message keys when the replica identity does not name them). */
export async function primaryKeyColumns(client: pg.Client, relationId: number): Promise<string[]> {
  const result = await client.query<{ attname: string }>(
    `SELECT a.attname FROM pg_index i
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
      WHERE i.indrelid = $1 AND i.indisprimary
      ORDER BY array_position(i.indkey::int2[], a.attnum)`,
    [relationId],
  );
  return result.rows.map((r) => r.attname);
}
