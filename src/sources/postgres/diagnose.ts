/**
 * `wal-listener check` for PostgreSQL: each prerequisite on its own line, read-only (issue 11):
 * reachable, wal_level, replication privilege, where the daemon keeps its state, the publication
 * and what it covers, the slot (absent, present, in use, invalidated, lost), slot and WAL sender
 * headroom, max_slot_wal_keep_size, published tables without a replica identity.
 */
import type pg from 'pg';
import type { Config } from '../../config/schema.js';
import type { Finding } from '../../findings.js';
import { checkOutboxTables } from './outbox-tables.js';
import { tlsError } from './connection-options.js';
import { classifyPgError } from './errors.js';
import { roleFacts, serverFacts, slotActivity } from './inspect.js';
import {
  compareScope,
  createStatement,
  desiredScope,
  describeScope,
  readPublication,
  replicaIdentityProblem,
  tablesWithoutReplicaIdentity,
  type PublicationScope,
} from './publication.js';
import { checkFailoverSupport } from './setup.js';
import { assessSlot, readSlotFacts, type SlotFacts, type SlotVerdict } from './slot-history.js';
import type { SqlClient } from './sql-client.js';

export async function diagnosePostgres(config: Config, sql: SqlClient): Promise<Finding[]> {
  const db = config.database;
  const where = `${db.host}:${db.port}, database ${db.name}, user ${db.user}`;
  let client;
  try {
    client = await sql.connection();
  } catch (err) {
    const error = tlsError(db, err) ?? classifyPgError(err, { doing: 'connecting', database: db.name, user: db.user });
    return [{ status: 'problem', subject: 'PostgreSQL', detail: `not reachable (${where}): ${error.message} [${error.code}]` }];
  }
  const findings: Finding[] = [];
  const server = await serverFacts(client);
  findings.push({ status: 'ok', subject: 'PostgreSQL', detail: `reachable: PostgreSQL ${server.version} (${where})` });
  findings.push(
    server.walLevel === 'logical'
      ? { status: 'ok', subject: 'wal_level', detail: 'logical' }
      : { status: 'problem', subject: 'wal_level', detail: `${server.walLevel}; logical replication needs wal_level=logical`, fix: 'ALTER SYSTEM SET wal_level = logical, then restart PostgreSQL' },
  );
  const role = await roleFacts(client);
  findings.push(
    role.replication
      ? { status: 'ok', subject: 'replication privilege', detail: role.superuser ? `${role.user} is a superuser` : `${role.user} may use replication slots` }
      : { status: 'problem', subject: 'replication privilege', detail: `${role.user} has neither the REPLICATION attribute nor superuser`, fix: `ALTER ROLE "${role.user}" REPLICATION (on Amazon RDS: GRANT rds_replication TO "${role.user}")` },
  );
  findings.push(
    role.stateSchema
      ? { status: 'ok', subject: 'schema wal_listener', detail: 'the daemon can keep its slot record and dead letters there' }
      : { status: 'problem', subject: 'schema wal_listener', detail: `${role.user} may not create schema wal_listener (or tables in it), where the daemon records its slot`, fix: `GRANT CREATE ON DATABASE "${db.name}" TO "${role.user}", or CREATE SCHEMA wal_listener AUTHORIZATION "${role.user}"` },
  );

  const { slotName, publication } = config.listener;
  const facts = await readSlotFacts(client, slotName, publication);
  const verdict = assessSlot(facts);
  const scope = await desiredScope(client, config.listener.filter, config.listener.outbox);
  findings.push(await publicationFinding(client, facts, verdict, scope, role.superuser));
  findings.push(await slotFinding(client, facts, verdict));
  const needsSlot = facts.slot === null;
  const slotsFull = needsSlot && server.slotsUsed >= server.maxReplicationSlots;
  findings.push({
    status: slotsFull ? 'problem' : 'ok',
    subject: 'max_replication_slots',
    detail: `${server.slotsUsed} of ${server.maxReplicationSlots} in use${needsSlot ? '; the daemon needs one more' : ''}`,
    ...(slotsFull ? { fix: 'raise max_replication_slots (restart needed) or drop a stale slot: SELECT slot_name, active, wal_status FROM pg_replication_slots' } : {}),
  });
  const sendersFull = facts.slot?.activePid == null && server.walSendersUsed >= server.maxWalSenders;
  findings.push({
    status: sendersFull ? 'problem' : 'ok',
    subject: 'max_wal_senders',
    detail: `${server.walSendersUsed} of ${server.maxWalSenders} in use`,
    ...(sendersFull ? { fix: 'raise max_wal_senders (restart needed), or stop a client that streams for nothing' } : {}),
  });
  findings.push(
    server.maxSlotWalKeepSize === '-1'
      ? { status: 'warn', subject: 'max_slot_wal_keep_size', detail: 'unlimited: a slot nobody reads (an abandoned or long-stopped daemon) keeps WAL until the disk is full', fix: "ALTER SYSTEM SET max_slot_wal_keep_size = '<a size your disk can spare>'; SELECT pg_reload_conf(); (README: Slot hygiene)" }
      : { status: 'ok', subject: 'max_slot_wal_keep_size', detail: `${server.maxSlotWalKeepSize}: a slot further behind is invalidated, and the daemon then refuses to start (WAL_PG_SLOT_LOST) until the gap is acknowledged` },
  );
  if (config.listener.failoverSlot) findings.push(await failoverFinding(client));
  const keyless = await tablesWithoutReplicaIdentity(client, facts.publicationExists ? { publication } : { scope });
  findings.push(
    keyless.length
      ? { status: 'warn', subject: 'replica identity', detail: replicaIdentityProblem(publication, keyless) }
      : { status: 'ok', subject: 'replica identity', detail: 'every published table has one (PostgreSQL accepts UPDATE and DELETE on them)' },
  );
  if (config.listener.outbox.length) {
    const subject = 'listener.outbox';
    const problem = await checkOutboxTables(client, config.listener.outbox).then(() => null, (err: unknown) => (err as Error).message);
    findings.push(problem === null ? { status: 'ok', subject, detail: `${config.listener.outbox.map((o) => o.table).join(', ')}: every named column exists with a usable type` } : { status: 'problem', subject, detail: problem });
  }
  if (scope.unmatched.length) {
    findings.push({ status: 'warn', subject: 'listener.filter.tables', detail: `names ${scope.unmatched.join(', ')}, which match no existing table`, fix: 'check the names (a renamed table keeps streaming under its new name only if the filter names it)' });
  }
  return findings;
}

async function publicationFinding(client: pg.Client, facts: SlotFacts, verdict: SlotVerdict, scope: PublicationScope, superuser: boolean): Promise<Finding> {
  const subject = `publication "${facts.publication}"`;
  if (!facts.publicationExists) {
    if (verdict.kind === 'broken' && verdict.error.code === 'WAL_PG_PUBLICATION') return { status: 'problem', subject, detail: verdict.error.message };
    const statement = createStatement(facts.publication, scope);
    if (!superuser && (scope.allTables || scope.schemas.length)) {
      return { status: 'problem', subject, detail: `absent, and only a superuser may create it as ${scope.allTables ? 'FOR ALL TABLES' : 'FOR TABLES IN SCHEMA'}`, fix: `as a superuser: ${statement}; (or set listener.filter.tables)` };
    }
    return { status: 'ok', subject, detail: `absent; the first start creates it, with the slot: ${statement}` };
  }
  const existing = (await readPublication(client, facts.publication))!;
  const covers = existing.allTables ? 'FOR ALL TABLES' : existing.tables.length ? existing.tables.join(', ') : 'no table';
  const difference = compareScope(facts.publication, existing, scope);
  const detail = `covers ${covers} (publishes ${existing.publish.join(', ')})`;
  if (difference) return { status: 'warn', subject, detail: `${detail}; ${difference.differences.join('; ')}`, fix: difference.fix };
  return { status: 'ok', subject, detail: `${detail}; listener.filter.tables asks for ${describeScope(scope)}` };
}

async function slotFinding(client: pg.Client, facts: SlotFacts, verdict: SlotVerdict): Promise<Finding> {
  const subject = `replication slot "${facts.slotName}"`;
  const slot = facts.slot;
  if (verdict.kind === 'foreign' || (verdict.kind === 'broken' && verdict.error.code === 'WAL_PG_SLOT_LOST')) return { status: 'problem', subject, detail: verdict.error.message };
  if (!slot) return { status: 'ok', subject, detail: 'absent; the first start creates it (streaming begins at that moment)' };
  const position = `confirmed up to ${slot.confirmedFlush ?? 'nothing yet'}, wal_status ${slot.walStatus ?? 'unknown'}`;
  if (slot.activePid !== null) {
    const who = await slotActivity(client, slot.activePid);
    const by = who ? ` (${who.applicationName || 'no application_name'}${who.clientAddr ? ` from ${who.clientAddr}` : ''})` : '';
    return { status: 'ok', subject, detail: `present, ${position}; streaming to PID ${slot.activePid}${by}: a second daemon waits until it stops` };
  }
  if (slot.walStatus === 'unreserved') {
    return { status: 'warn', subject, detail: `present, ${position}: it is about to lose WAL it needs (max_slot_wal_keep_size)`, fix: 'start the daemon now, or raise max_slot_wal_keep_size' };
  }
  return { status: 'ok', subject, detail: `present, ${position}; not in use${slot.inactiveSince ? ` since ${slot.inactiveSince}` : ''}` };
}

/** listener.failoverSlot: true needs PostgreSQL 17+. */
async function failoverFinding(client: pg.Client): Promise<Finding> {
  try {
    await checkFailoverSupport(client);
    return { status: 'ok', subject: 'listener.failoverSlot', detail: 'failover slots supported: the slot is created (or altered at the next start) with FAILOVER; standbys that should keep it need sync_replication_slots = on' };
  } catch (err) {
    return { status: 'problem', subject: 'listener.failoverSlot', detail: `${(err as Error).message} [WAL_PG_FAILOVER_SLOT]`, fix: 'upgrade to PostgreSQL 17 or later, or set listener.failoverSlot: false' };
  }
}
