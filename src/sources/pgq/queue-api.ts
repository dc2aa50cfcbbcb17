/**
 * The PgQ SQL calls the source makes (pgq/pgq `functions/`), one function each, on a session's own
 * connection. Values come back as PostgreSQL's text (no type parsing), so int8 ids and
 * microsecond times are exact.
 */
import type pg from 'pg';
import { WalListenerError } from '../../errors.js';
import type { PgqEventRow } from './event-mapping.js';

/** Session settings: the timestamps the event mapping reads are written in UTC, ISO style. */
export const PGQ_SESSION_OPTIONS = '-c TimeZone=UTC -c DateStyle=ISO,YMD';

/** Every column as text: int8 stays exact, timestamptz keeps its microseconds. */
const RAW = { getTypeParser: () => (value: string) => value };

async function rows<R>(client: pg.Client, text: string, values: unknown[] = []): Promise<R[]> {
  return (await client.query({ text, values, types: RAW })).rows as R[];
}

/** Fatal errors naming the fix when PgQ or the queue is missing. */
export async function checkQueue(client: pg.Client, queue: string): Promise<void> {
  const [db] = await rows<{ db: string; installed: string | null }>(client, "SELECT current_database() AS db, to_regprocedure('pgq.next_batch_custom(text,text,interval,int4,interval)')::text AS installed");
  if (!db?.installed) {
    throw new WalListenerError('WAL_PGQ_NOT_INSTALLED', `PgQ is not installed in database ${db?.db}: run CREATE EXTENSION pgq there (Debian package postgresql-<version>-pgq3), then SELECT pgq.create_queue('${queue}'), and run pgqd`);
  }
  const found = await rows(client, 'SELECT 1 FROM pgq.get_queue_info($1)', [queue]);
  if (found.length === 0) {
    throw new WalListenerError('WAL_PGQ_QUEUE_MISSING', `PgQ queue ${JSON.stringify(queue)} does not exist in database ${db.db}: create it with SELECT pgq.create_queue('${queue}') or fix pgq.queue`);
  }
}

/** Registers the consumer (idempotent). True when it was new: it starts at the queue's current tick. */
export async function registerConsumer(client: pg.Client, queue: string, consumer: string): Promise<boolean> {
  const [row] = await rows<{ registered: string }>(client, 'SELECT pgq.register_consumer($1, $2) AS registered', [queue, consumer]);
  return row?.registered === '1';
}

export async function unregisterConsumer(client: pg.Client, queue: string, consumer: string): Promise<void> {
  await rows(client, 'SELECT pgq.unregister_consumer($1, $2)', [queue, consumer]);
}

/** What the database and cluster are: the source identity of message ids. */
export async function identity(client: pg.Client): Promise<{ systemId: string; database: string }> {
  const [row] = await rows<{ system_id: string; database: string }>(client, 'SELECT system_identifier::text AS system_id, current_database() AS database FROM pg_control_system()');
  return { systemId: row!.system_id, database: row!.database };
}

export interface BatchInfo {
  readonly batchId: number;
  /** End tick. */
  readonly tickId: number;
  /** End tick time as PostgreSQL's text. */
  readonly tickTime: string;
}

interface BatchRow {
  batch_id: string | null;
  cur_tick_id: string | null;
  cur_tick_time: string | null;
}

function batchInfo(row: BatchRow | undefined): BatchInfo | undefined {
  if (!row?.batch_id || !row.cur_tick_id) return undefined;
  return { batchId: Number(row.batch_id), tickId: Number(row.cur_tick_id), tickTime: row.cur_tick_time ?? '' };
}

/**
 * The consumer's next batch, or its unfinished one (PgQ hands it out again), or undefined when no
 * tick is ready. A consumer that is behind gets the ticks it missed merged into one batch of about
 * `target` events (`next_batch_custom` with min_count = the pending events, capped at `target`:
 * PgQ then picks the newest tick, or the first one `target` events ahead when that is more than
 * twice as far), so a backlog is not read one tick (≤ queue_ticker_max_count events) per
 * confirmation. When the pending events do not fill a batch (empty ticks), the plain next tick.
 */
export async function nextBatch(client: pg.Client, queue: string, consumer: string, target: number): Promise<BatchInfo | undefined> {
  const [merged] = await rows<BatchRow>(
    client,
    `SELECT b.batch_id, b.cur_tick_id, b.cur_tick_time
       FROM pgq.get_consumer_info($1, $2) i,
            pgq.next_batch_custom($1, $2, NULL, least(greatest(i.pending_events, 1), $3)::int4, NULL) b`,
    [queue, consumer, target],
  );
  const batch = batchInfo(merged);
  if (batch) return batch;
  const [next] = await rows<BatchRow>(client, 'SELECT batch_id, cur_tick_id, cur_tick_time FROM pgq.next_batch_info($1, $2)', [queue, consumer]);
  return batchInfo(next);
}

const CURSOR = 'wal_listener_pgq_batch';

/**
 * Opens a cursor over the batch's events (PgQ's own query, `pgq.batch_event_sql`, ordered by
 * ev_id). WITH HOLD: the result is kept by the server outside any transaction, so waiting for
 * the in-flight window (a broker outage) holds no transaction open and no snapshot back from vacuum.
 */
export async function openBatchCursor(client: pg.Client, batchId: number): Promise<void> {
  const [row] = await rows<{ sql: string }>(client, 'SELECT pgq.batch_event_sql($1) AS sql', [batchId]);
  await client.query(`DECLARE ${CURSOR} NO SCROLL CURSOR WITH HOLD FOR ${row!.sql}`);
}

export async function fetchEvents(client: pg.Client, count: number): Promise<PgqEventRow[]> {
  return rows<PgqEventRow>(client, `FETCH ${count} FROM ${CURSOR}`);
}

export async function closeBatchCursor(client: pg.Client): Promise<void> {
  await client.query(`CLOSE ${CURSOR}`);
}

export interface QueueInfo {
  /** Seconds since the queue's last tick. */
  readonly tickerLag: number;
  /** queue_ticker_idle_period in seconds: the ticker ticks at least this often, even without events. */
  readonly idlePeriod: number;
  readonly paused: boolean;
}

export async function queueInfo(client: pg.Client, queue: string): Promise<QueueInfo | undefined> {
  const [row] = await rows<{ lag: string | null; idle: string; paused: string }>(
    client,
    `SELECT extract(epoch FROM ticker_lag) AS lag, extract(epoch FROM queue_ticker_idle_period) AS idle, queue_ticker_paused AS paused
       FROM pgq.get_queue_info($1)`,
    [queue],
  );
  if (!row) return undefined;
  return { tickerLag: Number(row.lag ?? Infinity), idlePeriod: Number(row.idle), paused: row.paused === 't' };
}

/**
 * The consumer's open batch (its id and how many events it holds) and its events waiting in the
 * retry queue: what unregistering would drop.
 */
export async function consumerBacklog(client: pg.Client, queue: string, consumer: string): Promise<{ openBatch: string | null; openBatchEvents: number; retries: number }> {
  const [row] = await rows<{ batch: string | null; events: string | null; retries: string }>(
    client,
    `SELECT i.current_batch AS batch,
            CASE WHEN i.current_batch IS NOT NULL THEN (SELECT count(*) FROM pgq.get_batch_events(i.current_batch)) END AS events,
            (SELECT count(*) FROM pgq.retry_queue r JOIN pgq.subscription s ON r.ev_owner = s.sub_id
               JOIN pgq.queue q ON q.queue_id = s.sub_queue JOIN pgq.consumer c ON c.co_id = s.sub_consumer
              WHERE q.queue_name = $1 AND c.co_name = $2) AS retries
       FROM pgq.get_consumer_info($1, $2) i`,
    [queue, consumer],
  );
  return { openBatch: row?.batch ?? null, openBatchEvents: Number(row?.events ?? 0), retries: Number(row?.retries ?? 0) };
}

/** Finishes a batch (the consumer moves past it). */
export async function finishBatch(client: pg.Client, batchId: string): Promise<void> {
  await rows(client, 'SELECT pgq.finish_batch($1)', [batchId]);
}
