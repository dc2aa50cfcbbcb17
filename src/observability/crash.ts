/**
 * Crash paths end like every other fatal error: one `fatal` log line with a code (WAL_INTERNAL)
 * and the stack as a field, never Node's raw stack trace on stderr; then Sentry is flushed
 * (bounded) and the process exits 1. Sentry's own handlers only capture (sentry.ts).
 * Node's process warnings (deprecations, MaxListenersExceededWarning) become warn log lines too:
 * in json log mode every line on stderr is JSON.
 */
import { describeError } from '../errors.js';
import type { Logger } from './logger.js';

/** Longest wait for `flush` before exiting anyway. */
const FLUSH_MS = 2_500;

export function installCrashHandlers(log: Logger, flush: () => Promise<void> = async () => {}): void {
  let crashing = false;
  const crash = (err: unknown, what: string): void => {
    if (crashing) return;
    crashing = true;
    log.fatal({ code: 'WAL_INTERNAL', err: describeError(err), stack: err instanceof Error ? err.stack : undefined }, `${what}; stopping`);
    setTimeout(() => process.exit(1), FLUSH_MS);
    // After this tick, so Sentry's own listener (registered after this one) has captured the error.
    setImmediate(() => void flush().finally(() => process.exit(1)));
  };
  process.on('uncaughtException', (err) => crash(err, 'uncaught exception'));
  // Without this, Node prints warnings as plain text; removing its listener is how to take them over.
  process.removeAllListeners('warning');
  process.on('warning', (warning) => log.warn({ warning: warning.name, err: warning.message }, 'Node.js warning'));
  process.on('unhandledRejection', (reason) => crash(reason, 'unhandled promise rejection'));
}
