/**
 * `wal_listener.audit` (`pgq.audit: true`): one row per delivered event, written in the transaction
 * that finishes its batch (finish.ts), so the table holds exactly the events the broker
 * acknowledged and PgQ will not hand out again. Events retried or dead-lettered get no row.
 * `consumer` is part of the key: two daemons reading one queue (say one to Kafka, one to NATS)
 * keep their own audits.
 */
import type { Query } from '../postgres/dead-letter-table.js';
import { messageIdSql } from './ids.js';

export const AUDIT_DDL = `
CREATE SCHEMA IF NOT EXISTS wal_listener;
CREATE TABLE IF NOT EXISTS wal_listener.audit (
  queue text NOT NULL,
  consumer text NOT NULL,
  ev_id bigint NOT NULL,
  message_id uuid NOT NULL,
  exchange text NOT NULL,
  routing_key text NOT NULL,
  delivered_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (queue, consumer, ev_id)
);
CREATE INDEX IF NOT EXISTS audit_delivered_at ON wal_listener.audit (delivered_at);`;

export async function ensureAuditTable(query: Query): Promise<void> {
  await query(AUDIT_DDL);
}

export interface AuditScope {
  readonly queue: string;
  readonly consumer: string;
  /** publisher.topic: the exchange of events without ev_extra1. */
  readonly topic: string;
  /** ids.ts messageIdPrefix of the queue. */
  readonly idPrefix: string;
}

/** Records the batch's events but `excluded` (ev_ids retried or dead-lettered). Returns the rows written. */
export async function auditBatch(query: Query, scope: AuditScope, batchId: number, excluded: readonly string[]): Promise<number> {
  // ON CONFLICT: a consumer moved back to an earlier tick (pgq.register_consumer_at) delivers events
  // again; the row of the first delivery stays.
  const result = await query(
    `INSERT INTO wal_listener.audit (queue, consumer, ev_id, message_id, exchange, routing_key)
     SELECT $2, $3, e.ev_id, ${messageIdSql('$4', 'e.ev_id')}::uuid, coalesce(nullif(e.ev_extra1, ''), $5), coalesce(e.ev_type, '')
       FROM pgq.get_batch_events($1) e
      WHERE e.ev_id <> ALL ($6::bigint[])
     ON CONFLICT DO NOTHING`,
    [batchId, scope.queue, scope.consumer, scope.idPrefix, scope.topic, excluded],
  );
  return result.rowCount ?? 0;
}
