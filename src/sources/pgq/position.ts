/**
 * A PgQ source position: one batch of one consumer. PgQ gives a consumer one batch at a time and
 * hands the same batch (same id, same ticks) out again until it is finished, so a batch is both
 * what the pipeline confirms and what `pgq.finish_batch` makes durable.
 */

export interface PgqPosition {
  readonly queue: string;
  /** `pgq.next_batch`'s batch id (the event's `xid`). */
  readonly batchId: number;
  /** The batch's end tick: the queue position, increasing from batch to batch. */
  readonly tickId: number;
}

/** The event's `lsn` field and the dead letters' position: "pgq:<queue>:<batch id>". */
export function formatPosition(position: Pick<PgqPosition, 'queue' | 'batchId'>): string {
  return `pgq:${position.queue}:${position.batchId}`;
}

/** The batch id of a position text written by formatPosition for `queue`; undefined for any other text. */
export function batchIdOf(queue: string, text: string): number | undefined {
  const prefix = `pgq:${queue}:`;
  if (!text.startsWith(prefix)) return undefined;
  const digits = text.slice(prefix.length);
  return /^\d+$/.test(digits) ? Number(digits) : undefined;
}

/** Sort order of positions (for the checkpointer): by end tick. */
export function comparePositions(a: PgqPosition, b: PgqPosition): number {
  return a.tickId - b.tickId;
}
