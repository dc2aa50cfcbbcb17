/**
 * Dead letters (DESIGN.md "The delivery rule", `publisher.onReject: deadLetter`): a message the
 * broker will never accept is stored whole, with the broker's reason, in the source database
 * (`wal_listener.dead_letters`), in position order, and counts as delivered once stored. The store
 * belongs to the source (it lives in the source database); the policy lives in the dispatcher.
 */
import type { OutboundMessage } from './message.js';

export interface DeadLetter {
  readonly message: OutboundMessage;
  /** publisher.type that refused it. */
  readonly broker: string;
  readonly reason: string;
}

export interface StoredDeadLetter extends DeadLetter {
  /** The store's own id (for list, replay and removal). */
  readonly storeId: string;
  readonly storedAt: Date;
}

export interface DeadLetterStore {
  /** Stores the letters durably, in the order given; resolves once committed. */
  store(letters: readonly DeadLetter[]): Promise<void>;
  /** Stored letters in the order they were stored; all of them, or those with the given ids. */
  list(options?: { ids?: readonly string[]; limit?: number }): Promise<StoredDeadLetter[]>;
  /** Removes letters (after a replay was acknowledged). */
  remove(storeIds: readonly string[]): Promise<void>;
}
