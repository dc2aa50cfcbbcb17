/**
 * A LeaderLockSession over any SQL connection (the PostgreSQL and MySQL leader locks): the ping
 * deadline, the loss notice and the bounded close are the same; each source supplies its queries.
 */
import { WalListenerError, type ErrorCode } from '../errors.js';
import type { LeaderLockSession } from './source.js';

export interface LockConnection {
  /** Takes the lock if free; true when held. */
  tryLock(): Promise<boolean>;
  /** One cheap round trip (SELECT 1). */
  roundTrip(): Promise<unknown>;
  /** Calls back once when the connection ends or fails. */
  onLost(callback: (err: Error) => void): void;
  /** A clean end of the session. */
  end(): Promise<unknown>;
  /** Drops the socket at once. */
  destroy(): void;
}

/** How long a clean close may take before the socket is dropped. */
const CLOSE_WAIT_MS = 1_000;

export function lockSession(connection: LockConnection, code: ErrorCode): LeaderLockSession {
  const lost = new Promise<Error>((resolve) => connection.onLost(resolve));
  return {
    lost,
    tryLock: () => connection.tryLock(),
    async ping(timeoutMs) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          reject(new WalListenerError(code, `the leader lock connection did not answer within ${timeoutMs} ms`));
          connection.destroy();
        }, timeoutMs);
      });
      try {
        await Promise.race([connection.roundTrip(), timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
    async close() {
      await Promise.race([connection.end().catch(() => {}), new Promise((resolve) => setTimeout(resolve, CLOSE_WAIT_MS).unref())]);
      connection.destroy();
    },
  };
}
