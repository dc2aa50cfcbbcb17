/**
 * What a failed PgQ call means for the daemon (DESIGN.md "The delivery rule": server errors are
 * classified by SQLSTATE class where they arise). A lost connection or a server going away is
 * retried by a new session, and PgQ hands the unfinished batch out again; an error that names a
 * privilege, an object or a PgQ refusal ("Not subscriber to queue") stops the daemon with the text.
 */
import pg from 'pg';
import { WalListenerError, describeError } from '../../errors.js';

/** SQLSTATE classes and codes a new session can get past. */
const TRANSIENT_CLASSES = new Set(['08', '53', '57', '58', '40']); // connection, resources, shutdown, system, rollback
const TRANSIENT_CODES = new Set(['55P03', '55006']); // lock not available, object in use

/** Errors of the client's socket, not of the server: the connection is gone. */
function isConnectionError(err: unknown): boolean {
  const e = err as { syscall?: unknown; message?: unknown } | null;
  if (typeof e?.syscall === 'string') return true; // ECONNRESET, EPIPE, ETIMEDOUT, ...
  return typeof e?.message === 'string' && /connection terminated|not queryable|connection error|timeout expired/i.test(e.message);
}

/** The error to end a session with for a failure of a PgQ call made while `doing` ("reading batch 12 of queue q"). */
export function pgqError(err: unknown, doing: string): unknown {
  if (err instanceof WalListenerError) return err;
  const text = describeError(err);
  if (err instanceof pg.DatabaseError && err.code) {
    const transient = TRANSIENT_CLASSES.has(err.code.slice(0, 2)) || TRANSIENT_CODES.has(err.code);
    return new WalListenerError(transient ? 'WAL_PGQ_READ' : 'WAL_PGQ_SQL', `${doing}: ${text} (SQLSTATE ${err.code})`, { cause: err });
  }
  if (isConnectionError(err)) return connectionLost(err, doing);
  return err; // not from PostgreSQL: a bug, fatal as it is
}

/** The session's connection is gone. */
export function connectionLost(err: unknown, doing: string): WalListenerError {
  return new WalListenerError('WAL_PGQ_READ', `${doing}: ${describeError(err)}`, { cause: err });
}
