/**
 * Error catalogue. Every error the daemon reports on purpose is a WalListenerError with a stable
 * `code` that users can look up in docs/errors.md (a unit test keeps the two in step). Whether an
 * error stops the daemon is a property of its code (`fatal`), decided here once, not by lists of
 * codes and message patterns where it is caught.
 */

interface CodeInfo {
  /** true: the daemon stops (exit 1, or 2 for ConfigError); false: logged and retried. */
  readonly fatal: boolean;
  readonly text: string;
}

export const ERROR_CODES = {
  WAL_USAGE: { fatal: true, text: 'The command line is wrong (unknown flag, missing value).' },
  WAL_CONFIG_NOT_FOUND: { fatal: true, text: 'The config file does not exist or cannot be read.' },
  WAL_CONFIG_PARSE: { fatal: true, text: 'The config file is not valid YAML.' },
  WAL_CONFIG_INVALID: { fatal: true, text: 'A config key is unknown, has the wrong type, or a required key is missing.' },
  WAL_PG_CONNECT: { fatal: false, text: 'PostgreSQL cannot be reached or refused the connection; retried with backoff.' },
  WAL_PG_TLS: { fatal: false, text: 'The TLS settings (database.sslMode, enableTLS, sslRootCert) cannot work with this server: it has no TLS, its certificate fails verification, or it requires TLS.' },
  WAL_PG_WAL_LEVEL: { fatal: true, text: 'PostgreSQL runs with wal_level other than logical.' },
  WAL_PG_SLOT_IN_USE: { fatal: false, text: 'The replication slot is active in another process; retried with backoff.' },
  WAL_PG_SLOT_MISMATCH: { fatal: true, text: 'The replication slot exists with another plugin, type or database.' },
  WAL_PG_SLOTS_FULL: { fatal: true, text: 'PostgreSQL has no free replication slot or WAL sender (max_replication_slots, max_wal_senders).' },
  WAL_PG_DATABASE: { fatal: true, text: 'The configured database does not exist.' },
  WAL_PG_AUTH: { fatal: true, text: 'PostgreSQL refused the login (user, password, pg_hba.conf).' },
  WAL_PG_PRIVILEGE: { fatal: true, text: 'The database user lacks a privilege the daemon needs (REPLICATION, creating the publication).' },
  WAL_PG_PUBLICATION: { fatal: true, text: 'The publication the slot needs is missing or unusable.' },
  WAL_PG_FAILOVER_SLOT: { fatal: true, text: 'listener.failoverSlot: true needs PostgreSQL 17 or later (failover slots).' },
  WAL_PG_SLOT_LOST: { fatal: true, text: 'The replication slot is gone or invalidated; changes since its last confirmed position cannot be read.' },
  WAL_PG_DATA: { fatal: true, text: 'PostgreSQL cannot decode a change for the stream (a data error such as an invalid byte sequence).' },
  WAL_PG_OBJECT: { fatal: true, text: 'A database object or privilege the stream needs is missing.' },
  WAL_PG_REPLICATION: { fatal: false, text: 'The replication stream failed or ended; reconnected.' },
  WAL_PG_PROTOCOL: { fatal: true, text: 'A pgoutput message could not be decoded.' },
  WAL_MYSQL_CONNECT: { fatal: false, text: 'MySQL/MariaDB cannot be reached or the binlog connection was lost; reconnected from the confirmed position.' },
  WAL_MYSQL_BINLOG: { fatal: true, text: 'The MySQL/MariaDB binlog is not readable as rows (log_bin off, binlog_format not ROW, binlog_row_image not FULL, an unsupported binlog option, or mysql.serverId equal to the server\'s).' },
  WAL_MYSQL_GRANTS: { fatal: true, text: 'The MySQL user lacks REPLICATION SLAVE, REPLICATION CLIENT (BINLOG MONITOR) or SELECT.' },
  WAL_MYSQL_POSITION_LOST: { fatal: true, text: 'The stored binlog position names a binlog file the server no longer has (purged).' },
  WAL_MYSQL_POSITION_STORE: { fatal: true, text: 'The binlog position could not be read or written (mysql.positionStore).' },
  WAL_MYSQL_PROTOCOL: { fatal: true, text: 'A binlog event could not be decoded.' },
  WAL_PUBLISH_RETRYABLE: { fatal: false, text: 'The broker did not acknowledge a publish (down, timeout, connection lost); retried in order.' },
  WAL_PUBLISH_REJECTED: { fatal: true, text: 'The broker will never accept a message (e.g. too large); with onReject: stop the daemon stops.' },
  WAL_PUBLISH_CONFIG: { fatal: true, text: 'The broker setup is wrong (bad address, refused login, missing topic, JetStream off); the daemon stops.' },
  WAL_DEAD_LETTER: { fatal: false, text: 'A rejected message could not be stored in wal_listener.dead_letters; retried.' },
  WAL_OUTBOX_TABLE: { fatal: true, text: 'A table named in listener.outbox does not exist, lacks a named column, or a column has a type the outbox cannot read.' },
  WAL_PGQ_NOT_INSTALLED: { fatal: true, text: 'PgQ is not installed in the database (CREATE EXTENSION pgq).' },
  WAL_PGQ_QUEUE_MISSING: { fatal: true, text: "The configured PgQ queue does not exist (SELECT pgq.create_queue('…'))." },
  WAL_PGQ_READ: { fatal: false, text: 'Reading the PgQ queue failed (connection lost, server restarting); reconnected, and PgQ hands the unfinished batch out again.' },
  WAL_PGQ_SQL: { fatal: true, text: 'A PgQ call failed with an error retrying cannot fix (privilege, missing object, unknown consumer).' },
  WAL_STDOUT_CLOSED: { fatal: true, text: 'The reader of standard output went away (EPIPE, e.g. `| head -1`); the daemon stops as on SIGTERM and exits 0.' },
  WAL_INTERNAL: { fatal: true, text: 'An unexpected error (a bug): an uncaught exception or an unhandled promise rejection.' },
  WAL_SNAPSHOT_TABLE: { fatal: true, text: 'A table named for a snapshot or backfill cannot be read in key order: it does not exist, has no primary key (or a replica identity USING INDEX), or is not in the publication.' },
  WAL_SHUTDOWN_TIMEOUT: { fatal: false, text: 'In-flight messages were not acknowledged within the shutdown grace period.' },
} as const satisfies Record<string, CodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class WalListenerError extends Error {
  override name = 'WalListenerError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  /** Whether the daemon stops on this error (the code decides; see ERROR_CODES). */
  get fatal(): boolean {
    return ERROR_CODES[this.code].fatal;
  }
}

/** Configuration or usage problem: exit code 2, reported before anything connects. */
export class ConfigError extends WalListenerError {
  override name = 'ConfigError';
}

/** A publish that failed. `retryable` false means the broker will never accept a message of the batch. */
export class PublishError extends WalListenerError {
  override name = 'PublishError';
  readonly retryable: boolean;
  /** Index in the batch of the message the broker refused (not retryable only), when known. */
  readonly rejected: number | undefined;

  constructor(message: string, retryable: boolean, options?: { cause?: unknown; rejected?: number }) {
    super(retryable ? 'WAL_PUBLISH_RETRYABLE' : 'WAL_PUBLISH_REJECTED', message, options);
    this.retryable = retryable;
    this.rejected = options?.rejected;
  }
}

/** Whether an error stops the daemon: a WalListenerError's code decides; anything else is unexpected, hence fatal. */
export function isFatal(err: unknown): boolean {
  return err instanceof WalListenerError ? err.fatal : true;
}

/** Message of an unknown thrown value, for logs. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
