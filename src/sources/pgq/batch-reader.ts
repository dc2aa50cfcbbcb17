/**
 * Streams one PgQ batch into the sink as one transaction: events are fetched from a cursor in
 * chunks and handed over one by one, waiting whenever the in-flight window is full, so a batch of
 * any size is never held whole. An empty batch opens no transaction.
 */
import type pg from 'pg';
import type { ChangeSink, TransactionHandle } from '../../pipeline/change.js';
import { eventIdPrefix } from '../../pipeline/event-id.js';
import type { EventMapper, PgqEventRow } from './event-mapping.js';
import { parseEventTime } from './event-time.js';
import { formatPosition, type PgqPosition } from './position.js';
import { closeBatchCursor, fetchEvents, openBatchCursor, type BatchInfo } from './queue-api.js';

export interface BatchReaderOptions {
  readonly client: pg.Client;
  readonly sink: ChangeSink<PgqPosition>;
  readonly map: EventMapper;
  readonly queue: string;
  /** event-id.ts sourceHash of the database: only for the transaction's idPrefix (every event has its own id). */
  readonly sourceHash: number;
  /** Events per FETCH. */
  readonly fetchSize: number;
  /** Resolves when the session stops reading. */
  readonly stopped: Promise<void>;
  readonly isStopped: () => boolean;
}

export type BatchOutcome =
  /** Every event was handed over and the transaction committed (or there were none). */
  | { readonly kind: 'read'; readonly events: number; readonly position: PgqPosition }
  /** The session stopped in the middle: the transaction stays uncommitted and the batch unfinished. */
  | { readonly kind: 'stopped' };

export async function readBatch(options: BatchReaderOptions, batch: BatchInfo): Promise<BatchOutcome> {
  const { client, sink, map, queue, fetchSize } = options;
  const position: PgqPosition = { queue, batchId: batch.batchId, tickId: batch.tickId };
  let txn: TransactionHandle | undefined;
  let events = 0;
  await openBatchCursor(client, batch.batchId);
  // The next chunk is asked for before this one is handed over, so the server reads while we map.
  let next: Promise<PgqEventRow[]> | undefined = fetchEvents(client, fetchSize);
  try {
    while (next) {
      const rows: PgqEventRow[] = await next;
      next = rows.length === fetchSize && !options.isStopped() ? fetchEvents(client, fetchSize) : undefined;
      for (const row of rows) {
        txn ??= sink.begin({
          idPrefix: eventIdPrefix(BigInt(batch.tickId), options.sourceHash),
          // The tick is the batch's commit: its events became readable together at that moment.
          // Each event's own time travels in its `timestamp` header and property.
          commitTime: parseEventTime(batch.tickTime)?.rfc3339 ?? batch.tickTime,
          position: formatPosition(position),
          xid: batch.batchId,
        });
        sink.message(txn, map(row));
        events++;
        if (sink.full && !(await roomOrStop(sink, options))) return { kind: 'stopped' };
      }
      if (options.isStopped()) return { kind: 'stopped' };
    }
  } finally {
    await next?.catch(() => undefined);
    await closeBatchCursor(client).catch(() => undefined); // a lost connection took it already
  }
  if (txn) sink.commit(txn, position);
  return { kind: 'read', events, position };
}

/** Waits for room in the window; false when the session stopped first. */
async function roomOrStop(sink: ChangeSink<PgqPosition>, options: BatchReaderOptions): Promise<boolean> {
  await Promise.race([sink.ready(), options.stopped]);
  return !options.isStopped();
}
