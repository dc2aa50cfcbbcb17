/**
 * Errors of the consumer SDK. Each has a `name`, a stable `code` (listed in docs/consumer.md, kept
 * in step by test/unit/consumer-errors-doc.test.ts) and, where there is one, the `cause`.
 */

export const CONSUMER_ERROR_CODES = {
  WAL_CONSUMER_CONFIG: 'createConsumer() options or a handler registration are wrong.',
  WAL_CONSUMER_CONNECT: 'The broker cannot be reached or refused the connection.',
  WAL_CONSUMER_SETUP: 'A broker object is missing or set up incompatibly (stream, queue, subscription).',
  WAL_CONSUMER_DECODE: 'A message is not a wal-listener event, or a value does not fit its column type.',
  WAL_CONSUMER_HANDLER: 'A handler failed on every attempt and no dead-letter destination is configured.',
  WAL_CONSUMER_DEAD_LETTER: 'A message could not be handed to the dead-letter destination.',
  WAL_CONSUMER_CONNECTION_LOST: 'The broker connection was lost; the consumer reconnects with backoff.',
} as const;

export type ConsumerErrorCode = keyof typeof CONSUMER_ERROR_CODES;

/** Base class of every error the consumer reports on purpose. */
export class ConsumerError extends Error {
  override name = 'ConsumerError';
  readonly code: ConsumerErrorCode;

  constructor(code: ConsumerErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Wrong options or registrations: thrown by createConsumer(), on() and start(). */
export class ConsumerConfigError extends ConsumerError {
  override name = 'ConsumerConfigError';

  constructor(message: string) {
    super('WAL_CONSUMER_CONFIG', message);
  }
}

/** The broker is unreachable or refused us (start() rejects with it), or the connection was lost. */
export class BrokerConnectionError extends ConsumerError {
  override name = 'BrokerConnectionError';
}

/** A stream, queue or subscription is missing or incompatible with what the consumer needs. */
export class BrokerSetupError extends ConsumerError {
  override name = 'BrokerSetupError';

  constructor(message: string, options?: { cause?: unknown }) {
    super('WAL_CONSUMER_SETUP', message, options);
  }
}

/** A message that cannot be decoded: not an event, or a value that does not fit its column type. */
export class EventDecodeError extends ConsumerError {
  override name = 'EventDecodeError';

  constructor(message: string, options?: { cause?: unknown }) {
    super('WAL_CONSUMER_DECODE', message, options);
  }
}

/** Where a failed message came from, for logs and dead-letter records. */
export interface FailedMessage {
  readonly id: string;
  readonly table: string;
  readonly lsn: string;
  readonly attempts: number;
}

/**
 * A handler threw on every one of `attempts` tries. Rejects `consumer.closed` when there is no
 * dead-letter destination; reported to `onError` when the message was dead-lettered instead.
 * `cause` is the handler's last error.
 */
export class HandlerFailedError extends ConsumerError {
  override name = 'HandlerFailedError';
  readonly failed: FailedMessage;

  constructor(failed: FailedMessage, cause: unknown) {
    super('WAL_CONSUMER_HANDLER', `handler for ${failed.table} failed ${failed.attempts === 1 ? 'once' : `${failed.attempts} times`} on event ${failed.id} (lsn ${failed.lsn}): ${describe(cause)}`, { cause });
    this.failed = failed;
  }
}

/** Handing a message to the dead-letter destination failed; the consumer stops (nothing is lost: the message is not acknowledged). */
export class DeadLetterError extends ConsumerError {
  override name = 'DeadLetterError';

  constructor(message: string, options?: { cause?: unknown }) {
    super('WAL_CONSUMER_DEAD_LETTER', message, options);
  }
}

export function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
