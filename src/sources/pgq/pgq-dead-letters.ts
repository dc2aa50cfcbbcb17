/**
 * The PgQ source's DeadLetterStore: what becomes of an event the broker will never accept
 * (`publisher.onReject: deadLetter`). As mikkoo does, the event goes back to PgQ through
 * `pgq.event_retry` (it returns after `pgq.retryDelay`) until it has been retried
 * `pgq.maxFailures` times; then it is stored whole in `wal_listener.dead_letters`.
 *
 * Both happen in the transaction that finishes the event's batch (finish.ts), not here: `store`
 * only notes the letter against its batch. That keeps retry, dead letter, audit and finish atomic:
 * until the batch is finished nothing of it is durable, and PgQ hands the whole batch out again, so
 * a letter noted by a session that dies is not lost but made again. The pipeline confirms a batch
 * only after `store` resolved for its letters, so the finish always carries them.
 */
import type { DeadLetter, DeadLetterStore, StoredDeadLetter } from '../../pipeline/dead-letters.js';
import { WalListenerError } from '../../errors.js';
import { listDeadLetters, removeDeadLetters, type Query } from '../postgres/dead-letter-table.js';
import { eventIdOf } from './ids.js';
import { batchIdOf } from './position.js';

/** The `source` column of this source's dead letters. */
export const DEAD_LETTER_SOURCE = 'pgq';

/** Letters of one batch by ev_id (decimal digits), in the order they were stored. */
export type RejectedEvents = ReadonlyMap<string, DeadLetter>;

export class PgqDeadLetters implements DeadLetterStore {
  private readonly byBatch = new Map<number, Map<string, DeadLetter>>();

  constructor(
    private readonly queue: string,
    /** ids.ts messageIdPrefix of the queue, known once a session has connected. */
    private readonly idPrefix: () => string | undefined,
    private readonly query: Query,
  ) {}

  async store(letters: readonly DeadLetter[]): Promise<void> {
    const prefix = this.idPrefix();
    for (const letter of letters) {
      const batchId = batchIdOf(this.queue, letter.message.lsn);
      const evId = prefix === undefined ? undefined : eventIdOf(prefix, letter.message.id);
      if (batchId === undefined || evId === undefined) {
        throw new WalListenerError('WAL_DEAD_LETTER', `message ${letter.message.id} at ${letter.message.lsn} is not an event of PgQ queue ${this.queue}: cannot retry or store it`);
      }
      let batch = this.byBatch.get(batchId);
      if (!batch) this.byBatch.set(batchId, (batch = new Map()));
      batch.set(evId, letter);
    }
  }

  /** The batch is read (again): forget what an earlier reading of it noted. */
  beginBatch(batchId: number): void {
    this.byBatch.delete(batchId);
  }

  /** The letters of a batch being finished. */
  takeBatch(batchId: number): RejectedEvents {
    const batch = this.byBatch.get(batchId) ?? new Map<string, DeadLetter>();
    this.byBatch.delete(batchId);
    return batch;
  }

  list(options?: { ids?: readonly string[]; limit?: number }): Promise<StoredDeadLetter[]> {
    return listDeadLetters(this.query, DEAD_LETTER_SOURCE, options);
  }

  remove(storeIds: readonly string[]): Promise<void> {
    return removeDeadLetters(this.query, DEAD_LETTER_SOURCE, storeIds);
  }
}
