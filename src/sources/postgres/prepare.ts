/**
 * What a session does before it streams, on the SQL connection: trust the slot or refuse
 * (slot-history.ts), acknowledge a gap when the operator asked (`run --recreate-slot`), create the
 * publication only together with a new slot, create the slot, record it in wal_listener.state, and
 * say what the publication covers that the filter does not (or the reverse) and which published
 * tables PostgreSQL will refuse UPDATE/DELETE on.
 */
import type pg from 'pg';
import type { ListenerConfig } from '../../config/schema.js';
import { WalListenerError } from '../../errors.js';
import type { Logger } from '../../observability/logger.js';
import { checkOutboxPublication } from './outbox-tables.js';
import { compareScope, createPublication, desiredScope, describeScope, readPublication, replicaIdentityProblem, tablesWithoutReplicaIdentity } from './publication.js';
import { checkFailoverSupport, ensureSlot, type SlotState } from './setup.js';
import { assessSlot, readSlotFacts } from './slot-history.js';
import { ensureStateTable, writeSlotRecord, type AcknowledgedGap } from './state.js';

export interface PrepareOptions {
  listener: Pick<ListenerConfig, 'slotName' | 'publication' | 'filter' | 'outbox' | 'failoverSlot'>;
  database: string;
  /** `run --recreate-slot`: the operator acknowledges that changes since the last confirmed position are lost. */
  recreateSlot: boolean;
  /** Say what is worth saying once per process (scope differences, replica identity). */
  announce: boolean;
  log: Logger;
  /** Told what is being done, for error messages ("creating the publication"). */
  step(doing: string): void;
  /** Creates a missing slot instead of pg_create_logical_replication_slot (the initial snapshot's exported snapshot). */
  createSlot?: (failover: boolean) => Promise<void>;
}

export interface PreparedSlot extends SlotState {
  /** true when a gap was acknowledged (the --recreate-slot request is used up). */
  recreated: boolean;
}

export async function prepareSlot(client: pg.Client, options: PrepareOptions): Promise<PreparedSlot> {
  const { listener, log } = options;
  const { slotName, publication } = listener;
  const facts = await readSlotFacts(client, slotName, publication);
  const verdict = assessSlot(facts);
  let gap: Omit<AcknowledgedGap, 'to'> | null = null;
  const problem = facts.record?.problem ?? null;
  if (verdict.kind === 'foreign' || (verdict.kind === 'broken' && !options.recreateSlot)) throw verdict.error;
  if (verdict.kind === 'broken' || (options.recreateSlot && problem)) {
    const slot = facts.slot;
    if (slot?.activePid) throw new WalListenerError('WAL_PG_SLOT_IN_USE', `replication slot ${slotName} is active for PID ${slot.activePid}; it cannot be re-created while in use; retrying`);
    options.step('dropping the lost replication slot');
    if (slot) await client.query('SELECT pg_drop_replication_slot($1)', [slotName]);
    gap = {
      from: (verdict.kind === 'broken' ? verdict.lostFrom : slot?.confirmedFlush) ?? facts.record?.confirmedLsn ?? 'unknown',
      reason: verdict.kind === 'broken' ? verdict.reason : `the stream stopped on ${problem!.code}: ${problem!.message}`,
      acknowledgedAt: new Date().toISOString(),
    };
  } else if (options.recreateSlot) {
    log.info({ slot: slotName }, '--recreate-slot: the replication slot is usable and nothing was lost; nothing to re-create');
  }

  const scope = await desiredScope(client, listener.filter, listener.outbox);
  if (options.announce && scope.unmatched.length) {
    log.warn({ filter: scope.unmatched }, 'listener.filter.tables names tables that do not exist now; their changes are published once they exist and the publication covers them');
  }
  if (!facts.publicationExists) {
    // Only together with a new slot: under an existing slot, assessSlot refused above.
    options.step('creating the publication');
    const statement = await createPublication(client, publication, scope);
    if (statement) log.info({ publication, covers: describeScope(scope), statement }, 'created publication');
  } else {
    options.step('checking that the publication covers the outbox tables');
    await checkOutboxPublication(client, publication, listener.outbox);
  }
  if (facts.publicationExists && options.announce) {
    const existing = await readPublication(client, publication);
    const difference = existing && compareScope(publication, existing, scope);
    if (difference) {
      log.warn({ publication, differences: difference.differences, fix: difference.fix }, 'the publication does not match listener.filter.tables; it is not changed by the daemon: run the fix yourself (with the daemon running or stopped)');
    }
  }

  // Where the slot will be recorded must be writable before the slot exists (a missing privilege stops here).
  options.step('creating schema wal_listener');
  if (facts.slot === null || gap !== null) await ensureStateTable(client);
  options.step('creating the replication slot');
  if (listener.failoverSlot) await checkFailoverSupport(client);
  const state = await ensureSlot(client, slotName, options.database, { failover: listener.failoverSlot, ...(options.createSlot ? { create: options.createSlot } : {}) });
  options.step('recording the replication slot');
  if (state.created || verdict.kind === 'usable' && (verdict.adopt || verdict.movedFrom)) {
    const lsn = state.confirmedFlush ?? '0/0';
    const acknowledged = gap ? { ...gap, to: lsn } : undefined;
    await writeSlotRecord(client, { slotName, systemId: facts.systemId, publication, origin: state.created ? 'created' : 'adopted', lsn, ...(acknowledged ? { gap: acknowledged } : {}) });
    if (acknowledged) {
      log.warn({ code: 'WAL_PG_SLOT_LOST', slot: slotName, lostFrom: acknowledged.from, lostTo: acknowledged.to, reason: acknowledged.reason }, 'gap acknowledged (--recreate-slot): changes committed in this LSN range were never published; re-read the affected tables (wal-listener backfill)');
    }
    if (verdict.kind === 'usable' && verdict.movedFrom) {
      log.warn({ slot: slotName, recordedSystem: verdict.movedFrom, system: facts.systemId }, 'the replication slot was recorded on another PostgreSQL system (a pg_upgrade that carried it over, or a slot made by hand after a restore); using it as it is');
    } else if (verdict.kind === 'usable') {
      log.info({ slot: slotName, confirmedFlush: state.confirmedFlush }, 'recorded the existing replication slot in wal_listener.state');
    }
  }
  if (options.announce) {
    const keyless = await tablesWithoutReplicaIdentity(client, { publication });
    if (keyless.length) log.warn({ publication, tables: keyless.map((t) => `${t.schema}.${t.table}`) }, replicaIdentityProblem(publication, keyless));
  }
  return { ...state, recreated: gap !== null };
}
