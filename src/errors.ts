/**
 * Error catalogue. Every error the daemon reports on purpose is a WalListenerError with a stable
 * `code` that users can look up in docs/errors.md (a unit test keeps the two in step).
 */

export const ERROR_CODES = {
  WAL_USAGE: 'The command line is wrong (unknown flag, missing value).',
  WAL_CONFIG_NOT_FOUND: 'The config file does not exist or cannot be read.',
  WAL_CONFIG_PARSE: 'The config file is not valid YAML.',
  WAL_CONFIG_INVALID: 'A config key is unknown, has the wrong type, or a required key is missing.',
  WAL_PG_CONNECT: 'PostgreSQL cannot be reached or refused the connection; retried with backoff.',
  WAL_PG_TLS: "The TLS settings (database.sslMode, enableTLS, sslRootCert) cannot work with this server: it has no TLS, its certificate fails verification, or it requires TLS.",
  WAL_PG_WAL_LEVEL: 'PostgreSQL runs with wal_level other than logical.',
  WAL_PG_SLOT_IN_USE: 'The replication slot is active in another process; retried with backoff.',
  WAL_PG_REPLICATION: 'The replication stream failed or sent something unexpected; reconnected.',
  WAL_PG_PROTOCOL: 'A pgoutput message could not be decoded.',
  WAL_PUBLISH_RETRYABLE: 'The broker did not acknowledge a publish (down, timeout); retried in order.',
  WAL_PUBLISH_REJECTED: 'The broker will never accept a message (e.g. too large); the daemon stops.',
  WAL_PUBLISH_CONFIG: 'The broker setup is wrong (missing topic, stream subjects conflict); the daemon stops.',
  WAL_SHUTDOWN_TIMEOUT: 'In-flight messages were not acknowledged within the shutdown grace period.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class WalListenerError extends Error {
  override name = 'WalListenerError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Configuration or usage problem: exit code 2, reported before anything connects. */
export class ConfigError extends WalListenerError {
  override name = 'ConfigError';
}

/** A publish that failed. `retryable` false means the broker will never accept it. */
export class PublishError extends WalListenerError {
  override name = 'PublishError';
  readonly retryable: boolean;

  constructor(message: string, retryable: boolean, options?: { cause?: unknown }) {
    super(retryable ? 'WAL_PUBLISH_RETRYABLE' : 'WAL_PUBLISH_REJECTED', message, options);
    this.retryable = retryable;
  }
}

/** Message of an unknown thrown value, for logs. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
