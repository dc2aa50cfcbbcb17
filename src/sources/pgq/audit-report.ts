/**
 * `wal-listener audit -c cfg --since 1h` (the lead wires the command): for each queue the audit
 * knows (and the configured one), how many of the events PgQ still holds from that period were
 * delivered (an audit row), dead-lettered, are still pending (not yet finished by the consumer, or
 * waiting in PgQ's retry queue), and which are missing: finished by the consumer with no audit row
 * and no dead letter, which must never happen.
 *
 * How far back it can look: PgQ keeps a queue's events in `queue_ntables` tables (3) and rotates
 * every `queue_rotation_period` (2 h), truncating the oldest table, and only once every consumer
 * has moved past it. So at least (ntables − 1) × rotation period (4 h by default) of events is
 * kept; older events are gone and cannot be checked. The report says from when it could check.
 * Nor can it check events from before the audit began (pgq.audit turned on later, or events older
 * than the consumer): it starts at the first event the audit recorded for that queue and consumer.
 */
import type pg from 'pg';
import type { Config } from '../../config/schema.js';
import { connectClient } from '../postgres/connection-options.js';
import { messageIdPrefix, messageIdSql, queueHash } from './ids.js';
import { DEAD_LETTER_SOURCE } from './pgq-dead-letters.js';
import { identity, PGQ_SESSION_OPTIONS } from './queue-api.js';

export interface MissingEvent {
  readonly evId: string;
  readonly evTime: string;
  readonly type: string;
}

export interface QueueAudit {
  readonly queue: string;
  readonly consumer: string;
  /** Events of the period still in PgQ's tables (a retried event counts once). */
  readonly events: number;
  readonly delivered: number;
  readonly deadLettered: number;
  readonly pending: number;
  readonly missing: number;
  /** The first missing events, oldest first. */
  readonly missingEvents: MissingEvent[];
  /** Audit rows written during the period (deliveries of older events too). */
  readonly auditRows: number;
  /** The oldest event still held for this queue, or null when it holds none. */
  readonly historyFrom: string | null;
  readonly rotation: { readonly tables: number; readonly period: string };
  /** Why a queue could not be checked (not registered, unknown queue). */
  readonly problem?: string;
}

export interface AuditReport {
  readonly database: string;
  readonly since: string;
  readonly queues: QueueAudit[];
  /** Missing events over all queues: anything above 0 is a delivery the audit cannot account for. */
  readonly missing: number;
}

const EMPTY = { events: 0, delivered: 0, deadLettered: 0, pending: 0, missing: 0, missingEvents: [], auditRows: 0, historyFrom: null, rotation: { tables: 0, period: '' } };

/** Builds the report for events since `sinceMs` ago, listing at most `limit` missing events per queue. */
export async function auditReport(config: Config, sinceMs: number, limit = 100): Promise<AuditReport> {
  const client = await connectClient(config.database, { options: PGQ_SESSION_OPTIONS });
  try {
    const since = new Date(Date.now() - sinceMs).toISOString();
    const { systemId, database } = await identity(client);
    const tables = (await client.query("SELECT to_regclass('wal_listener.audit') IS NOT NULL AS audit, to_regclass('wal_listener.dead_letters') IS NOT NULL AS dead")).rows[0] as { audit: boolean; dead: boolean };
    const pairs = new Map<string, { queue: string; consumer: string }>();
    const add = (queue: string, consumer: string) => pairs.set(JSON.stringify([queue, consumer]), { queue, consumer });
    if (config.pgq) add(config.pgq.queue, config.pgq.consumerName);
    if (tables.audit) {
      const audited = await client.query('SELECT DISTINCT queue, consumer FROM wal_listener.audit WHERE delivered_at >= $1 ORDER BY 1, 2', [since]);
      for (const row of audited.rows as { queue: string; consumer: string }[]) add(row.queue, row.consumer);
    }
    const queues: QueueAudit[] = [];
    for (const { queue, consumer } of pairs.values()) {
      const prefix = messageIdPrefix(queueHash(systemId, database, queue));
      queues.push(await auditQueue(client, { queue, consumer, prefix, since, limit, ...tables }));
    }
    return { database, since, queues, missing: queues.reduce((sum, q) => sum + q.missing, 0) };
  } finally {
    await client.end().catch(() => undefined);
  }
}

interface Scope {
  readonly queue: string;
  readonly consumer: string;
  readonly prefix: string;
  readonly since: string;
  readonly limit: number;
  /** Whether wal_listener.audit and wal_listener.dead_letters exist. */
  readonly audit: boolean;
  readonly dead: boolean;
}

async function auditQueue(client: pg.Client, scope: Scope): Promise<QueueAudit> {
  const { queue, consumer } = scope;
  const sub = (
    await client.query(
      `SELECT s.sub_id, t.tick_snapshot::text AS snapshot, q.queue_data_pfx AS events, q.queue_ntables AS tables, q.queue_rotation_period::text AS period
         FROM pgq.queue q
         LEFT JOIN pgq.consumer c ON c.co_name = $2
         LEFT JOIN pgq.subscription s ON s.sub_queue = q.queue_id AND s.sub_consumer = c.co_id
         LEFT JOIN pgq.tick t ON t.tick_queue = s.sub_queue AND t.tick_id = s.sub_last_tick
        WHERE q.queue_name = $1`,
      [queue, consumer],
    )
  ).rows[0] as { sub_id: number | null; snapshot: string | null; events: string; tables: number; period: string } | undefined;
  if (!sub) return { queue, consumer, ...EMPTY, problem: `PgQ has no queue ${queue}` };
  const rotation = { tables: sub.tables, period: sub.period };
  if (sub.sub_id === null || sub.snapshot === null) return { queue, consumer, ...EMPTY, rotation, problem: `consumer ${consumer} is not registered on queue ${queue}` };
  const first = scope.audit ? ((await client.query('SELECT min(ev_id)::text AS id FROM wal_listener.audit WHERE queue = $1 AND consumer = $2', [queue, consumer])).rows[0] as { id: string | null }).id : null;
  if (first === null) return { queue, consumer, ...EMPTY, rotation, problem: `wal_listener.audit has no row for it: is pgq.audit on?` };

  const eventTable = sub.events.split('.').map((part) => client.escapeIdentifier(part)).join('.');
  const id = messageIdSql('$4', 'e.ev_id');
  const audited = scope.audit ? 'EXISTS (SELECT 1 FROM wal_listener.audit a WHERE a.queue = $5 AND a.consumer = $6 AND a.ev_id = e.ev_id)' : 'false';
  const dead = scope.dead ? `EXISTS (SELECT 1 FROM wal_listener.dead_letters d WHERE d.source = '${DEAD_LETTER_SOURCE}' AND d.message_id = ${id})` : 'false';
  // One row per event: a retried event has copies (ev_owner = the consumer) with the same ev_id.
  const classified = `
    WITH e AS (
      SELECT ev_id, min(ev_time) AS ev_time, min(ev_type) AS ev_type,
             bool_or(NOT txid_visible_in_snapshot(ev_txid, $2::txid_snapshot)) AS unfinished
        FROM ${eventTable}
       WHERE ev_time >= $1 AND ev_id >= $7 AND (ev_owner IS NULL OR ev_owner = $3)
       GROUP BY ev_id)
    SELECT e.ev_id::text, e.ev_time::text, coalesce(e.ev_type, '') AS ev_type,
           CASE WHEN ${audited} THEN 'delivered'
                WHEN ${dead} THEN 'dead'
                WHEN e.unfinished OR EXISTS (SELECT 1 FROM pgq.retry_queue r WHERE r.ev_owner = $3 AND r.ev_id = e.ev_id) THEN 'pending'
                ELSE 'missing' END AS state
      FROM e`;
  const params = [scope.since, sub.snapshot, sub.sub_id, scope.prefix, queue, consumer, first];
  const counts = (await client.query(`SELECT state, count(*)::int AS n FROM (${classified}) c GROUP BY state`, params)).rows as { state: string; n: number }[];
  const count = (state: string): number => counts.find((c) => c.state === state)?.n ?? 0;
  const missingEvents = (await client.query(`SELECT ev_id, ev_time, ev_type FROM (${classified}) c WHERE state = 'missing' ORDER BY ev_id LIMIT ${Number(scope.limit)}`, params)).rows.map(
    (row: { ev_id: string; ev_time: string; ev_type: string }) => ({ evId: row.ev_id, evTime: row.ev_time, type: row.ev_type }),
  );
  const history = (await client.query(`SELECT min(ev_time)::text AS first FROM ${eventTable}`)).rows[0] as { first: string | null };
  const auditRows = scope.audit
    ? ((await client.query('SELECT count(*)::int AS n FROM wal_listener.audit WHERE queue = $1 AND consumer = $2 AND delivered_at >= $3', [queue, consumer, scope.since])).rows[0] as { n: number }).n
    : 0;
  return {
    queue,
    consumer,
    events: counts.reduce((sum, c) => sum + c.n, 0),
    delivered: count('delivered'),
    deadLettered: count('dead'),
    pending: count('pending'),
    missing: count('missing'),
    missingEvents,
    auditRows,
    historyFrom: history.first,
    rotation,
  };
}

/** The report as text for the terminal. */
export function formatAuditReport(report: AuditReport): string {
  const lines = [`PgQ delivery audit of database ${report.database} since ${report.since}`];
  for (const q of report.queues) {
    const head = `queue ${q.queue} (consumer ${q.consumer})`;
    if (q.problem) {
      lines.push(`${head}: not checked: ${q.problem}`);
      continue;
    }
    lines.push(`${head}: ${q.events} events; ${q.delivered} delivered, ${q.deadLettered} dead-lettered, ${q.pending} pending, ${q.missing} MISSING; ${q.auditRows} audit rows written`);
    lines.push(`  history: PgQ holds this queue's events from ${q.historyFrom ?? '(none held)'}; it keeps ${q.rotation.tables} tables rotated every ${q.rotation.period}, so at least ${q.rotation.tables - 1} × ${q.rotation.period} of events; older ones cannot be checked`);
    for (const m of q.missingEvents) lines.push(`  missing: ev_id ${m.evId} at ${m.evTime} (${m.type})`);
    if (q.missing > q.missingEvents.length) lines.push(`  … and ${q.missing - q.missingEvents.length} more`);
  }
  if (!report.queues.some((q) => !q.problem)) lines.push('no queue could be checked');
  return lines.join('\n');
}
