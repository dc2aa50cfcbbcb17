/**
 * Sentry, only when `monitoring.sentryDSN` is set (@sentry/node is loaded only then).
 * Sends error and fatal log records (through Sentry's pino integration, which reads the already
 * redacted JSON line) and uncaught exceptions / unhandled rejections (crash.ts then exits 1).
 * Events carry `release: wal-listener@<version>` and the tag `version`. Every string in an event is
 * scrubbed of the configured secrets before it leaves the process; no tracing, no OpenTelemetry.
 */
import { ConfigError } from '../errors.js';

export interface SentryHandle {
  /** Waits (bounded) until queued events are sent. */
  flush(timeoutMs: number): Promise<void>;
}

export interface SentryOptions {
  dsn: string;
  version: string;
  /** Values that must never leave the process (passwords, the DSN's keys). */
  secrets: readonly string[];
}

/** Throws ConfigError (without echoing the DSN) when it is not a DSN. */
export function checkDsn(dsn: string): void {
  let url: URL | undefined;
  try {
    url = new URL(dsn);
  } catch {
    url = undefined;
  }
  if (!url || !/^https?:$/.test(url.protocol) || url.username === '' || !/\/\d+$/.test(url.pathname)) {
    throw new ConfigError('WAL_CONFIG_INVALID', 'monitoring.sentryDSN: expected a Sentry DSN such as https://<key>@<host>/<project id>');
  }
}

/** The parts of a DSN that are credentials. */
export function dsnSecrets(dsn: string): string[] {
  try {
    const url = new URL(dsn);
    return [dsn, decodeURIComponent(url.username), decodeURIComponent(url.password)].filter((s) => s !== '');
  } catch {
    return dsn ? [dsn] : [];
  }
}

export async function initSentry(options: SentryOptions): Promise<SentryHandle> {
  checkDsn(options.dsn);
  const Sentry = await import('@sentry/node');
  const scrub = secretScrubber(options.secrets);
  Sentry.initWithoutDefaultIntegrations({
    dsn: options.dsn,
    release: `wal-listener@${options.version}`,
    initialScope: { tags: { version: options.version, app: 'wal-listener' } },
    dataCollection: { userInfo: false },
    sendClientReports: false,
    integrations: [
      Sentry.functionToStringIntegration(),
      Sentry.linkedErrorsIntegration(),
      Sentry.dedupeIntegration(),
      Sentry.nodeContextIntegration(),
      // Capture only: crash.ts logs one fatal JSON line, flushes Sentry and exits 1 (Sentry's own
      // exit would print the raw stack on stderr first).
      Sentry.onUncaughtExceptionIntegration(),
      Sentry.onUnhandledRejectionIntegration({ mode: 'none' }),
      Sentry.pinoIntegration({ log: { levels: [] }, error: { levels: ['error', 'fatal'] } }),
    ],
    beforeSend: (event) => scrub(withoutSyntheticStacks(fatalRejections(event))),
    beforeBreadcrumb: (breadcrumb) => scrub(breadcrumb),
  });
  return {
    async flush(timeoutMs) {
      await Sentry.flush(timeoutMs);
    },
  };
}

/** Mode 'none' reports a rejection at level error; the daemon exits on it (crash.ts): fatal. */
function fatalRejections<E extends { level?: string; extra?: Record<string, unknown> }>(event: E): E {
  if (event.extra?.unhandledPromiseRejection === true) event.level = 'fatal';
  return event;
}

/**
 * A log record without an Error object becomes a "synthetic" exception whose stack shows only the
 * logging and Sentry internals; drop that stack so the event shows the message and the log fields.
 */
function withoutSyntheticStacks<E extends { exception?: { values?: { mechanism?: { synthetic?: boolean }; stacktrace?: unknown }[] } }>(event: E): E {
  for (const value of event.exception?.values ?? []) {
    if (value.mechanism?.synthetic) delete value.stacktrace;
  }
  return event;
}

/** Returns a function that replaces every occurrence of a secret in every string of a value (in place for objects). */
export function secretScrubber(secrets: readonly string[]): <T>(value: T) => T {
  const list = [...new Set(secrets.filter((s) => s.length > 0))].sort((a, b) => b.length - a.length);
  if (list.length === 0) return (value) => value;
  const scrubString = (text: string): string => {
    let out = text;
    for (const secret of list) if (out.includes(secret)) out = out.split(secret).join('[redacted]');
    return out;
  };
  const walk = (value: unknown, seen: Set<object>): unknown => {
    if (typeof value === 'string') return scrubString(value);
    if (typeof value !== 'object' || value === null || seen.has(value)) return value;
    seen.add(value);
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) value[i] = walk(value[i], seen);
      return value;
    }
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      const clean = scrubString(key);
      const v = walk(record[key], seen);
      if (clean !== key) delete record[key];
      record[clean] = v;
    }
    return value;
  };
  return <T>(value: T): T => walk(value, new Set()) as T;
}
