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
import type { Finding } from '../findings.js';
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

/** How the operator started the daemon (command-line flags of `run`), for the source. */
export interface SourceOptions {
  /**
   * `--recreate-slot`: the operator acknowledges that changes since the last confirmed position are
   * lost (the slot is gone or invalidated); the source starts again from now and records the gap.
   */
  recreateSlot?: boolean;
}

export interface Source<P> {
  /** For logs and metrics: postgres, mysql, pgq. */
  readonly kind: string;
  /** Orders two positions (negative, zero, positive), so a confirmation never goes backwards. */
  compare(a: P, b: P): number;
  /**
   * Least time between two confirmations while positions move (default 1000 ms). PgQ hands out
   * its next batch only after the last one is finished, so it is confirmed at once (0).
   */
  readonly confirmEveryMs?: number;
  /**
   * Optional preflight, run once before the publisher connects: what can be checked without
   * creating anything (the database exists, a position it had is still readable), so that a fatal
   * problem stops the daemon before any broker object is created. Throws like open(); a retryable
   * error is left for open() to retry.
   */
  check?(signal: AbortSignal): Promise<void>;
  /** Optional, for `wal-listener check`: each prerequisite as a finding, read-only (creates nothing). */
  diagnose?(): Promise<Finding[]>;
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

/**
 * A connection to the source's own server that can hold the leader lock (high availability,
 * src/ha/elector.ts): a lock bound to the session, so that it frees when the process dies or the
 * connection is lost. PostgreSQL and PgQ: a session advisory lock; MySQL: GET_LOCK.
 */
export interface LeaderLockSession {
  /** Takes the lock if it is free; true when this session holds it (then and until the session ends). */
  tryLock(): Promise<boolean>;
  /** One round trip proving the session, and with it the lock, is alive; rejects after `timeoutMs`. */
  ping(timeoutMs: number): Promise<void>;
  /** Settles (resolves with the reason) when the connection ends or fails. */
  readonly lost: Promise<Error>;
  /** Ends the session, which frees the lock (bounded: a dead socket is destroyed). */
  close(): Promise<void>;
}

/** How to hold the leader lock for one config: `key` names the lock (one per slot, queue or server id). */
export interface LeaderLock {
  readonly key: string;
  /** Connects a new lock session; throws a WalListenerError (`fatal` when retrying cannot help). */
  connect(): Promise<LeaderLockSession>;
}
