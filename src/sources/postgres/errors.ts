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
  detail?: unknown;
  /** CONTEXT: for the walsender, which slot and callback, and the associated LSN. */
  where?: unknown;
}

/** A notice (warning) from the server, as pg reports it. */
export interface PgNotice {
  message?: string | undefined;
  detail?: string | undefined;
  where?: string | undefined;
}

/** The recovery from a gap in the stream: acknowledge it, then re-read. */
export const RECREATE_SLOT =
  'run once with --recreate-slot (wal-listener run -c <config> --recreate-slot: a new slot from now, with the lost LSN range logged and recorded in wal_listener.state), ' +
  'then re-read the affected tables with wal-listener backfill -c <config> <schema.table>';

/**
 * PostgreSQL 18 does not stop on a publication missing at a point of the WAL (15–17 do, 42704):
 * it skips those changes with a warning. Only the warning tells, so it stops the stream.
 */
export function skippedPublication(notice: PgNotice): WalListenerError | null {
  const name = /skipped loading publication "(.*)"/.exec(notice.message ?? '')?.[1];
  if (name === undefined) return null;
  return new WalListenerError(
    'WAL_PG_PUBLICATION',
    `PostgreSQL skipped changes written while publication "${name}" did not exist (it was dropped and re-created under the slot)` +
      `${notice.where ? ` (${notice.where})` : ''}: they cannot be published. Recover: ${RECREATE_SLOT}`,
  );
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
  /** listener.slotName, for remedies. */
  slot?: string;
  /** When a transaction was being streamed: its commit LSN, and the first LSN after it (to skip it). */
  transaction?: { commitLsn: string; after: string };
}

/** The error as a WalListenerError with the code that decides its fate. */
export function classifyPgError(err: unknown, context: PgErrorContext): WalListenerError {
  if (err instanceof WalListenerError) return err;
  const { code, message, detail, where } = (err ?? {}) as PgErrorLike;
  const sqlstate = typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
  const text = typeof message === 'string' ? message : describeError(err);
  const said = [text, typeof detail === 'string' ? detail : '', typeof where === 'string' ? where : ''].filter(Boolean).join('; ');
  const at = context.lsn ? ` after LSN ${context.lsn}` : '';
  const make = (errorCode: ErrorCode, explanation: string): WalListenerError =>
    new WalListenerError(errorCode, `${explanation} (${context.doing}${at}; PostgreSQL said: ${said}${sqlstate ? ` [SQLSTATE ${sqlstate}]` : ''})`, { cause: err });

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
      return make('WAL_PG_PRIVILEGE', privilegeRemedy(`${text} ${typeof detail === 'string' ? detail : ''}`, context));
    case '42704':
      if (/publication/i.test(text)) {
        return make('WAL_PG_PUBLICATION', `the publication did not exist at this point of the WAL (dropped, or created after the slot): changes written then cannot be decoded, and it is never re-created silently under a slot that needs it. Recover: ${RECREATE_SLOT}`);
      }
      if (/replication slot/i.test(text)) return make('WAL_PG_SLOT_LOST', `the replication slot was dropped while in use: changes after its last confirmed position cannot be read. Recover: ${RECREATE_SLOT}`);
      return make('WAL_PG_OBJECT', 'a database object the stream needs is missing');
    case '58P01':
      return make('WAL_PG_SLOT_LOST', `WAL the slot needs has been removed: the slot is lost; changes since its confirmed position cannot be read. Recover: ${RECREATE_SLOT}`);
  }
  if (cls === '08' || sqlstate === '57P01' || sqlstate === '57P02' || sqlstate === '57P03' || sqlstate === '53300' || cls === '40') {
    return make('WAL_PG_CONNECT', 'PostgreSQL closed the connection or is not accepting connections');
  }
  if (cls === '55' && /wal_level/i.test(text)) return make('WAL_PG_WAL_LEVEL', 'logical replication needs wal_level=logical (ALTER SYSTEM SET wal_level = logical, then restart PostgreSQL)');
  if (cls === '55' && /replication slot/i.test(text)) return make('WAL_PG_SLOT_LOST', `the replication slot was invalidated by PostgreSQL: changes after its confirmed position cannot be read. Recover: ${RECREATE_SLOT}`);
  if (cls === '55' && /publication/i.test(text)) return make('WAL_PG_PUBLICATION', 'the publication cannot be used');
  if (cls === '22') {
    const txn = context.transaction;
    return make(
      'WAL_PG_DATA',
      "PostgreSQL cannot turn a change into the stream's encoding (UTF8), e.g. bytes that are not UTF-8 in a SQL_ASCII database; every later change is stuck behind it, " +
        `and the WAL cannot be corrected. Skip ${txn ? `the transaction that commits at LSN ${txn.commitLsn}` : 'that transaction'} with the daemon stopped: ` +
        `SELECT pg_replication_slot_advance('${context.slot ?? '<slot>'}', '${txn?.after ?? '<an LSN after its commit>'}') (its other changes are skipped too), ` +
        'then fix the value in the table and re-read the table with wal-listener backfill',
    );
  }
  if (cls === '42' || cls === '28' || cls === '3D' || cls === '3F') return make('WAL_PG_OBJECT', 'a database object or privilege the stream needs is missing');
  // Resource and internal errors (53, 54, 57, 58, XX) may pass: retry, loudly.
  return make('WAL_PG_REPLICATION', 'PostgreSQL reported an error');
}

/** What to grant, from what PostgreSQL refused and what was being done. */
function privilegeRemedy(said: string, context: PgErrorContext): string {
  const user = context.user;
  if (/publication/i.test(context.doing) || /publication/i.test(said)) {
    return (
      `user "${user}" may not create the publication (FOR ALL TABLES and FOR TABLES IN SCHEMA need a superuser; FOR TABLE needs CREATE on the database and ownership of the tables): ` +
      'create it yourself with the statement `wal-listener check` shows, or grant what is missing'
    );
  }
  if (/wal_listener|schema/i.test(context.doing) || /schema/i.test(said)) {
    return `user "${user}" may not create schema wal_listener, where the daemon records its slot and dead letters: GRANT CREATE ON DATABASE "${context.database}" TO "${user}", or CREATE SCHEMA wal_listener AUTHORIZATION "${user}"`;
  }
  if (/replication|WAL sender/i.test(said)) {
    return `user "${user}" lacks the REPLICATION attribute needed to create and read replication slots: ALTER ROLE "${user}" REPLICATION (on Amazon RDS: GRANT rds_replication TO "${user}")`;
  }
  return `user "${user}" lacks a privilege the daemon needs (the REPLICATION attribute, creating the publication, or schema wal_listener)`;
}
