/**
 * PostgreSQL errors, classified where they arise (DESIGN.md "The delivery rule"): by SQLSTATE
 * class, into a WalListenerError whose code says whether the daemon retries or stops. Connection
 * and shutdown classes retry; data, object, privilege and configuration problems stop the daemon
 * with the code, the LSN where known, and the remedy.
 * SQLSTATE list: https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
import { WalListenerError, describeError, type ErrorCode } from '../../errors.js';

interface PgErrorLike {
  code?: unknown;
  message?: unknown;
}

/** Node socket errors that mean "not reachable now". */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED']);

export interface PgErrorContext {
  /** What was being done: "connecting", "creating the replication slot", "streaming". */
  doing: string;
  /** database.name, for messages. */
  database: string;
  /** database.user, for messages. */
  user: string;
  /** The LSN being read, when streaming. */
  lsn?: string;
}

/** The error as a WalListenerError with the code that decides its fate. */
export function classifyPgError(err: unknown, context: PgErrorContext): WalListenerError {
  if (err instanceof WalListenerError) return err;
  const { code, message } = (err ?? {}) as PgErrorLike;
  const sqlstate = typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
  const text = typeof message === 'string' ? message : describeError(err);
  const at = context.lsn ? ` at LSN ${context.lsn}` : '';
  const make = (errorCode: ErrorCode, explanation: string): WalListenerError =>
    new WalListenerError(errorCode, `${explanation} (${context.doing}${at}; PostgreSQL said: ${text}${sqlstate ? ` [SQLSTATE ${sqlstate}]` : ''})`, { cause: err });

  if (sqlstate === undefined) {
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return make('WAL_PG_CONNECT', 'PostgreSQL is not reachable');
    if (/terminat|timeout|Connection ended|socket|ECONN/i.test(text)) return make('WAL_PG_CONNECT', 'the connection to PostgreSQL was lost');
    return make('WAL_PG_CONNECT', 'PostgreSQL failed');
  }
  const cls = sqlstate.slice(0, 2);
  switch (sqlstate) {
    case '55006':
      return make('WAL_PG_SLOT_IN_USE', 'the replication slot is in use by another process; retrying');
    case '53400':
      return make('WAL_PG_SLOTS_FULL', 'PostgreSQL has no free replication slot or WAL sender: raise max_replication_slots / max_wal_senders (restart needed) or drop a stale slot (see `wal-listener status` and pg_replication_slots)');
    case '3D000':
      return make('WAL_PG_DATABASE', `database "${context.database}" does not exist: check database.name`);
    case '28P01':
    case '28000':
      return make('WAL_PG_AUTH', `PostgreSQL refused the login of user "${context.user}": check database.user and database.password (and pg_hba.conf)`);
    case '42501':
      return make('WAL_PG_PRIVILEGE', `user "${context.user}" lacks a privilege: it needs the REPLICATION attribute (ALTER ROLE ${context.user} REPLICATION), and to create the publication, ownership of the tables or superuser`);
    case '42704':
      if (/publication/i.test(text)) return make('WAL_PG_PUBLICATION', 'the publication is missing for WAL written while it existed; it is never re-created silently under a slot that needs it. Recreate it as it was, or drop the slot with `wal-listener slot drop` and back-fill');
      return make('WAL_PG_OBJECT', 'a database object the stream needs is missing');
    case '58P01':
      return make('WAL_PG_SLOT_LOST', 'WAL the slot needs has been removed: the slot is lost; changes since its confirmed position cannot be read. Acknowledge the gap with --recreate-slot, then back-fill');
  }
  if (cls === '08' || sqlstate === '57P01' || sqlstate === '57P02' || sqlstate === '57P03' || sqlstate === '53300' || cls === '40') {
    return make('WAL_PG_CONNECT', 'PostgreSQL closed the connection or is not accepting connections');
  }
  if (cls === '55' && /replication slot|publication/i.test(text)) {
    return make(/slot/i.test(text) ? 'WAL_PG_SLOT_LOST' : 'WAL_PG_PUBLICATION', 'the replication slot or publication cannot be used');
  }
  if (cls === '22') return make('WAL_PG_DATA', 'PostgreSQL cannot decode a value for the stream (e.g. a byte sequence invalid in the database encoding); every later change is stuck behind it. Fix or remove the row, or skip it by advancing the slot past this LSN (pg_replication_slot_advance) and back-fill');
  if (cls === '42' || cls === '28' || cls === '3D' || cls === '3F') return make('WAL_PG_OBJECT', 'a database object or privilege the stream needs is missing');
  // Resource and internal errors (53, 54, 57, 58, XX) may pass: retry, loudly.
  return make('WAL_PG_REPLICATION', 'PostgreSQL reported an error');
}
