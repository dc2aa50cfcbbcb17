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
  /** The slot is a failover slot (PostgreSQL 17+). */
  failover: boolean;
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

/**
 * `listener.failoverSlot: true` needs failover slots (PostgreSQL 17+): refused on older servers
 * before anything is created, with what to do.
 */
export async function checkFailoverSupport(client: pg.Client): Promise<void> {
  const result = await client.query<{ num: string; version: string }>("SELECT current_setting('server_version_num') AS num, current_setting('server_version') AS version");
  const row = result.rows[0]!;
  if (Number(row.num) >= 170000) return;
  throw new WalListenerError(
    'WAL_PG_FAILOVER_SLOT',
    `listener.failoverSlot is true, but PostgreSQL ${row.version} has no failover slots (PostgreSQL 17 or later): ` +
      'upgrade the server, or set listener.failoverSlot: false (after a failover the slot is then missing on the new primary and the daemon stops with WAL_PG_SLOT_LOST)',
  );
}

/**
 * Creates the logical slot with pgoutput if missing (with FAILOVER when asked, PostgreSQL 17+;
 * through `create` when given: the initial snapshot's, which gets `failover` too); checks an
 * existing one fits.
 */
export async function ensureSlot(
  client: pg.Client,
  slot: string,
  database: string,
  how: { failover?: boolean; create?: (failover: boolean) => Promise<void> } = {},
): Promise<SlotState> {
  const failover = how.failover ?? false;
  const read = async () =>
    (
      await client.query<{ plugin: string; slot_type: string; database: string; active_pid: number | null; confirmed: string | null; failover: boolean | null }>(
        // to_jsonb: the failover column exists from PostgreSQL 17 on.
        "SELECT plugin, slot_type, database, active_pid, confirmed_flush_lsn::text AS confirmed, (to_jsonb(s) ->> 'failover')::boolean AS failover FROM pg_replication_slots s WHERE slot_name = $1",
        [slot],
      )
    ).rows[0];
  let row = await read();
  let created = false;
  if (!row) {
    try {
      if (how.create) await how.create(failover);
      else if (failover) await client.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput', failover => true)", [slot]);
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
  return { confirmedFlush: row.confirmed, activePid: row.active_pid, created, failover: row.failover === true };
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
