/**
 * Finishing a batch whose every event the pipeline confirmed (acknowledged by the broker, or
 * rejected and noted by PgqDeadLetters), in one transaction: rejected events go back to PgQ
 * (`pgq.event_retry`) or, after `maxFailures` retries, into `wal_listener.dead_letters`; delivered
 * events get their audit rows; `pgq.finish_batch` moves the consumer past the batch. A crash
 * before the commit leaves all of it undone and PgQ hands the batch out again.
 */
import type pg from 'pg';
import type { DeadLetter } from '../../pipeline/dead-letters.js';
import { auditBatch, type AuditScope } from './audit-table.js';
import { ensureDeadLetterTable, insertDeadLetters, type Query } from '../postgres/dead-letter-table.js';
import { DEAD_LETTER_SOURCE, type RejectedEvents } from './pgq-dead-letters.js';

export interface FinishPolicy {
  readonly audit: AuditScope | undefined;
  readonly maxFailures: number;
  readonly retryDelayMs: number;
}

export interface FinishResult {
  readonly retried: number;
  readonly deadLettered: number;
  readonly audited: number;
}

export async function finishBatch(client: pg.Client, batchId: number, rejected: RejectedEvents, policy: FinishPolicy): Promise<FinishResult> {
  const query: Query = (text, values) => client.query(text, values);
  await query('BEGIN');
  try {
    let retried = 0;
    const dead: DeadLetter[] = [];
    if (rejected.size > 0) {
      const retries = await retryCounts(query, batchId, [...rejected.keys()]);
      for (const [evId, letter] of rejected) {
        const attempts = retries.get(evId);
        if (attempts !== undefined && attempts < policy.maxFailures) {
          await query("SELECT pgq.event_retry($1, $2::bigint, now() + $3 * interval '1 millisecond')", [batchId, evId, policy.retryDelayMs]);
          retried++;
        } else {
          dead.push({ ...letter, reason: `${letter.reason} (PgQ event ${evId}, retried ${attempts ?? 0} times)` });
        }
      }
      if (dead.length > 0) {
        await ensureDeadLetterTable(query);
        await insertDeadLetters(query, DEAD_LETTER_SOURCE, dead);
      }
    }
    const audited = policy.audit ? await auditBatch(query, policy.audit, batchId, [...rejected.keys()]) : 0;
    await query('SELECT pgq.finish_batch($1)', [batchId]);
    await query('COMMIT');
    return { retried, deadLettered: dead.length, audited };
  } catch (err) {
    await query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** ev_retry of the given events of the batch (absent: the event is not in the batch). */
async function retryCounts(query: Query, batchId: number, evIds: readonly string[]): Promise<Map<string, number>> {
  const result = await query('SELECT ev_id::text AS id, coalesce(ev_retry, 0) AS retry FROM pgq.get_batch_events($1) WHERE ev_id = ANY ($2::bigint[])', [batchId, evIds]);
  return new Map((result.rows as { id: string; retry: number }[]).map((row) => [row.id, Number(row.retry)]));
}
