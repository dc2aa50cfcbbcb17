/**
 * The one interface every source implements (DESIGN.md "The pipeline"): PostgreSQL (a logical
 * replication slot), MySQL/MariaDB (a row binlog), PgQ (queue batches). A source turns its native
 * stream into calls on a ChangeSink and confirms positions durably in its own way (PostgreSQL: the
 * slot's flush LSN; PgQ: finish the batch; MySQL: write the binlog position to its store) when the
 * pipeline says everything up to them was acknowledged. Nothing downstream knows which source a
 * change came from.
 *
 * Lifecycle, driven by the daemon: open() a session (connect, check prerequisites, start reading
 * from the last confirmed position) → changes flow into the sink → the session ends (connection
 * lost: the daemon drains the pipeline and opens a new session after a backoff; or an error whose
 * `fatal` flag stops the daemon) → close().
 */
import type { ChangeSink } from '../pipeline/change.js';
import type { DeadLetterStore } from '../pipeline/dead-letters.js';

export interface SourceSession<P> {
  /**
   * Settles when the stream stops: resolves when the connection ended (reconnect), rejects with
   * the error otherwise (a WalListenerError's `fatal` decides between reconnecting and stopping).
   */
  readonly ended: Promise<void>;
  /**
   * Everything up to and including `position` was acknowledged (or dead-lettered): make it durable
   * in the source. Called at most about once a second while positions move, and at shutdown.
   */
  confirm(position: P): void;
  /** Stops reading (shutdown or reconnect); changes already handed over still get acknowledged. */
  stop(): void;
  /** Sends the last confirmation it was given and closes the session's connections. */
  close(): Promise<void>;
}

export interface Source<P> {
  /** For logs and metrics: postgres, mysql, pgq. */
  readonly kind: string;
  /** Orders two positions (negative, zero, positive), so a confirmation never goes backwards. */
  compare(a: P, b: P): number;
  /**
   * Connects, checks prerequisites, prepares what is missing (slot, publication, consumer) and
   * starts streaming into `sink` from the last confirmed position. Throws a WalListenerError
   * (`fatal` or not) when it cannot.
   */
  open(sink: ChangeSink<P>, signal: AbortSignal): Promise<SourceSession<P>>;
  /** Where rejected messages are kept (`publisher.onReject: deadLetter`), in the source database. */
  deadLetters(): DeadLetterStore;
  /** Closes every connection the source holds. */
  close(): Promise<void>;
}
