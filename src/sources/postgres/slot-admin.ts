/**
 * The slot as an operator sees it (`wal-listener status`) and its removal (`wal-listener slot
 * drop`): read from pg_replication_slots, pg_stat_replication and wal_listener.state.
 */
import type pg from 'pg';
import { WalListenerError } from '../../errors.js';
import { lsnDistance, slotActivity, type SlotActivity } from './inspect.js';
import { invalidation, readSlot } from './slot-history.js';
import { readSlotRecord, removeSlotRecord, type SlotRecord } from './state.js';

export interface SlotStatus {
  slot: string;
  database: string;
  exists: boolean;
  /** Why PostgreSQL invalidated it (wal_status lost, …), or null. */
  invalidated: string | null;
  plugin: string | null;
  activePid: number | null;
  /** Whoever streams from it now (application, address, lag). */
  streaming: SlotActivity | null;
  confirmedLsn: string | null;
  currentLsn: string;
  /** Bytes of WAL written after the confirmed position: what a consumer has not got yet. */
  lagBytes: number | null;
  /** pg_stat_replication.flush_lag, while a daemon streams and something is in flight. */
  lagSeconds: number | null;
  /** Bytes of WAL PostgreSQL keeps for the slot (from restart_lsn). */
  retainedBytes: number | null;
  walStatus: string | null;
  safeWalSize: number | null;
  /** PostgreSQL 17+: when it stopped being used. */
  inactiveSince: string | null;
  /** What wal_listener.state knows of it (null: not recorded). */
  record: Omit<SlotRecord, 'slotName'> | null;
}

export async function slotStatus(client: pg.Client, slotName: string): Promise<SlotStatus> {
  const slot = await readSlot(client, slotName);
  const record = await readSlotRecord(client, slotName);
  const { lsn: currentLsn, database } = (await client.query<{ lsn: string; database: string }>('SELECT pg_current_wal_lsn()::text AS lsn, current_database() AS database')).rows[0]!;
  const streaming = slot?.activePid ? await slotActivity(client, slot.activePid) : null;
  const confirmedLsn = slot?.confirmedFlush ?? null;
  let recorded: SlotStatus['record'] = null;
  if (record) {
    const { slotName: _name, ...rest } = record;
    recorded = rest;
  }
  return {
    slot: slotName,
    database,
    exists: slot !== null,
    invalidated: slot ? invalidation(slot) : null,
    plugin: slot?.plugin ?? null,
    activePid: slot?.activePid ?? null,
    streaming,
    confirmedLsn,
    currentLsn,
    lagBytes: confirmedLsn ? Math.max(0, await lsnDistance(client, confirmedLsn, currentLsn)) : null,
    lagSeconds: streaming?.flushLagSeconds ?? null,
    retainedBytes: slot?.restartLsn ? await lsnDistance(client, slot.restartLsn, currentLsn) : null,
    walStatus: slot?.walStatus ?? null,
    safeWalSize: slot?.safeWalSize ?? null,
    inactiveSince: slot?.inactiveSince ?? null,
    record: recorded,
  };
}

export interface DroppedSlot {
  existed: boolean;
  confirmedLsn: string | null;
  /** WAL PostgreSQL no longer keeps for it. */
  freedBytes: number | null;
  /** The wal_listener.state record was removed. */
  recordRemoved: boolean;
}

/** Drops the slot unless it is in use, and removes its record (a new slot is then a first start, not a lost one). */
export async function dropSlot(client: pg.Client, slotName: string): Promise<DroppedSlot> {
  const slot = await readSlot(client, slotName);
  if (slot?.activePid) {
    throw new WalListenerError('WAL_PG_SLOT_IN_USE', `replication slot ${slotName} is in use by PID ${slot.activePid} (a daemon is streaming from it): stop that daemon first`);
  }
  const freedBytes = slot?.restartLsn ? await lsnDistance(client, slot.restartLsn, (await client.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l) : null;
  if (slot) await client.query('SELECT pg_drop_replication_slot($1)', [slotName]);
  const recordRemoved = await removeSlotRecord(client, slotName);
  return { existed: slot !== null, confirmedLsn: slot?.confirmedFlush ?? null, freedBytes, recordRemoved };
}
