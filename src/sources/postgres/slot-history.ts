/**
 * Whether the slot can be trusted (issue 10 #1): a slot this daemon recorded in wal_listener.state
 * that is gone (dropped, or a failover or restore without it), a slot PostgreSQL invalidated, or a
 * publication missing under an existing slot means changes were or will be lost. The daemon then
 * refuses to start (WAL_PG_SLOT_LOST / WAL_PG_PUBLICATION) until the operator acknowledges the gap
 * with `run --recreate-slot`, instead of silently streaming from a new slot at today's position.
 */
import type pg from 'pg';
import { WalListenerError, type ErrorCode } from '../../errors.js';
import { readSlotRecord, type SlotRecord } from './state.js';

type Queryable = Pick<pg.Client, 'query'>;

/** A row of pg_replication_slots, whatever the server version exposes (columns added in 16–18 are null before). */
export interface SlotInfo {
  name: string;
  plugin: string | null;
  slotType: string;
  database: string | null;
  temporary: boolean;
  activePid: number | null;
  restartLsn: string | null;
  confirmedFlush: string | null;
  /** reserved, extended, unreserved or lost (PostgreSQL 13+). */
  walStatus: string | null;
  safeWalSize: number | null;
  /** PostgreSQL 16+: invalidated by a conflict with recovery. */
  conflicting: boolean | null;
  /** PostgreSQL 17+: wal_removed, rows_removed, wal_level_insufficient, idle_timeout (18). */
  invalidationReason: string | null;
  /** PostgreSQL 17+. */
  inactiveSince: string | null;
}

export async function readSlot(client: Queryable, name: string): Promise<SlotInfo | null> {
  // to_jsonb: one query for every server version, whichever columns it has.
  const result = await client.query<{ s: Record<string, unknown> }>('SELECT to_jsonb(s) AS s FROM pg_replication_slots s WHERE slot_name = $1', [name]);
  const s = result.rows[0]?.s;
  if (!s) return null;
  const text = (key: string): string | null => (s[key] === null || s[key] === undefined ? null : String(s[key]));
  return {
    name,
    plugin: text('plugin'),
    slotType: String(s.slot_type),
    database: text('database'),
    temporary: s.temporary === true,
    activePid: typeof s.active_pid === 'number' ? s.active_pid : null,
    restartLsn: text('restart_lsn'),
    confirmedFlush: text('confirmed_flush_lsn'),
    walStatus: text('wal_status'),
    safeWalSize: s.safe_wal_size === null || s.safe_wal_size === undefined ? null : Number(s.safe_wal_size),
    conflicting: typeof s.conflicting === 'boolean' ? s.conflicting : null,
    invalidationReason: text('invalidation_reason'),
    inactiveSince: text('inactive_since'),
  };
}

/** Recorded when the server does not tell its system identifier: never compared. */
export const UNKNOWN_SYSTEM = 'unknown';

/**
 * The PostgreSQL system identifier (the same as IDENTIFY_SYSTEM's; kept by physical replicas, new
 * for a new cluster), or UNKNOWN_SYSTEM where pg_control_system() is not offered (some managed services).
 */
export async function systemIdentifier(client: Queryable): Promise<string> {
  try {
    return (await client.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()')).rows[0]!.id;
  } catch (err) {
    if (['42501', '42883', '0A000'].includes(String((err as { code?: unknown }).code))) return UNKNOWN_SYSTEM;
    throw err;
  }
}

const REASONS: Record<string, string> = {
  wal_removed: 'WAL it still needed was removed (max_slot_wal_keep_size)',
  rows_removed: 'catalog rows it still needed were removed (a conflict with recovery on a standby)',
  wal_level_insufficient: 'wal_level was lowered below logical',
  idle_timeout: 'it stayed inactive longer than idle_replication_slot_timeout',
};

/** Why PostgreSQL invalidated the slot, or null while it is usable. */
export function invalidation(slot: SlotInfo): string | null {
  if (slot.invalidationReason) return `${REASONS[slot.invalidationReason] ?? slot.invalidationReason} (invalidation_reason = ${slot.invalidationReason})`;
  if (slot.walStatus === 'lost') return 'WAL it still needed was removed (wal_status = lost; max_slot_wal_keep_size)';
  if (slot.conflicting) return 'it conflicted with recovery (conflicting = true)';
  return null;
}

export interface SlotFacts {
  slotName: string;
  /** current_database(). */
  database: string;
  publication: string;
  systemId: string;
  slot: SlotInfo | null;
  record: SlotRecord | null;
  publicationExists: boolean;
}

export type SlotVerdict =
  /** No slot and no record of one: the first start (create the publication if missing, then the slot). */
  | { kind: 'new' }
  /** A slot of that name that is not a logical pgoutput slot of this database: someone else's, never dropped. */
  | { kind: 'foreign'; error: WalListenerError }
  /** The slot is there and usable. `adopt`: no record of it yet; `movedFrom`: recorded on another system. */
  | { kind: 'usable'; adopt: boolean; movedFrom: string | null }
  /** Changes were or will be lost: refuse, unless the operator acknowledges the gap (`--recreate-slot`). */
  | { kind: 'broken'; error: WalListenerError; reason: string; lostFrom: string | null };

const RECOVER =
  'Recover: run once with --recreate-slot (wal-listener run -c <config> --recreate-slot), which acknowledges the gap: it creates a new slot ' +
  '(and the publication when missing) from the current WAL position, logs the lost LSN range and records it in wal_listener.state; ' +
  'then re-read the tables whose changes were lost with wal-listener backfill -c <config> <schema.table>.';

function broken(code: ErrorCode, reason: string, lostFrom: string | null, message: string): SlotVerdict {
  return { kind: 'broken', reason, lostFrom, error: new WalListenerError(code, `${message} ${RECOVER}`) };
}

function confirmedText(record: SlotRecord | null, slot: SlotInfo | null): string {
  const lsn = slot?.confirmedFlush ?? record?.confirmedLsn ?? record?.createdLsn;
  if (!lsn) return 'its start';
  const at = record?.confirmedAt && record.confirmedLsn === lsn ? ` (recorded ${record.confirmedAt.toISOString()})` : '';
  return `LSN ${lsn}${at}`;
}

const movedSystem = (recorded: string, now: string): boolean => recorded !== now && recorded !== UNKNOWN_SYSTEM && now !== UNKNOWN_SYSTEM;

export function assessSlot(facts: SlotFacts): SlotVerdict {
  const { slot, record, slotName, publication } = facts;
  const created = record ? `created ${record.createdAt.toISOString()} at LSN ${record.createdLsn}` : null;
  if (slot) {
    const foreign = slotMismatch(slot, facts.database);
    if (foreign) return { kind: 'foreign', error: foreign };
    const why = invalidation(slot);
    if (why) {
      return broken('WAL_PG_SLOT_LOST', `invalidated: ${why}`, slot.confirmedFlush ?? record?.confirmedLsn ?? null,
        `replication slot "${slotName}"${created ? ` (${created})` : ''} was invalidated by PostgreSQL: ${why}. ` +
          `Changes committed after ${confirmedText(record, slot)} cannot be read from it any more and were not published.`);
    }
    if (!facts.publicationExists) {
      return broken('WAL_PG_PUBLICATION', `publication ${publication} is missing`, slot.confirmedFlush,
        `publication "${publication}" does not exist, but replication slot "${slotName}" (confirmed up to ${confirmedText(record, slot)}) streams through it. ` +
          'The daemon never re-creates a publication under an existing slot: changes written while it was missing cannot be decoded ' +
          '(PostgreSQL 15–17 stop with "publication does not exist", 18 skips them with a warning). ' +
          'If nothing was written to the published tables since it was dropped, re-create it exactly as it was and start again.');
    }
    return { kind: 'usable', adopt: record === null, movedFrom: record && movedSystem(record.systemId, facts.systemId) ? record.systemId : null };
  }
  if (!record) return { kind: 'new' };
  if (movedSystem(record.systemId, facts.systemId)) {
    return broken('WAL_PG_SLOT_LOST', `the database moved from PostgreSQL system ${record.systemId} to ${facts.systemId}`, record.confirmedLsn,
      `replication slot "${slotName}" (${created}) was recorded on PostgreSQL system ${record.systemId}, but this database now belongs to system ${facts.systemId}: ` +
        'it was restored or failed over to another cluster, without the slot. Changes committed on the old system after ' +
        `${confirmedText(record, null)} may not have been published, and positions of the old system mean nothing here.`);
  }
  return broken('WAL_PG_SLOT_LOST', 'the slot is gone', record.confirmedLsn,
    `replication slot "${slotName}" (${created}) no longer exists: it was dropped, or this server took over without it (a failover without failover slots). ` +
      `Changes committed after ${confirmedText(record, null)} were not published and cannot be read any more.`);
}

/** A slot of that name that wal-listener cannot use (another plugin, type or database), as WAL_PG_SLOT_MISMATCH; else null. */
export function slotMismatch(slot: SlotInfo, database: string): WalListenerError | null {
  if (slot.slotType === 'logical' && slot.plugin === 'pgoutput' && slot.database === database) return null;
  return new WalListenerError(
    'WAL_PG_SLOT_MISMATCH',
    `replication slot ${slot.name} exists but is a ${slot.slotType} slot with plugin ${slot.plugin ?? 'none'} on database ${slot.database ?? 'none'}; ` +
      `wal-listener needs a logical pgoutput slot on ${database} (drop it or choose another listener.slotName)`,
  );
}

/** Everything assessSlot needs, read without creating anything. */
export async function readSlotFacts(client: Queryable, slotName: string, publication: string): Promise<SlotFacts> {
  const systemId = await systemIdentifier(client);
  const database = (await client.query<{ db: string }>('SELECT current_database() AS db')).rows[0]!.db;
  const slot = await readSlot(client, slotName);
  const record = await readSlotRecord(client, slotName);
  const publicationExists = ((await client.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [publication])).rowCount ?? 0) > 0;
  return { slotName, database, publication, systemId, slot, record, publicationExists };
}
