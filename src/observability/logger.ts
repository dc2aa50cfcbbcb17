/** pino logger: JSON lines by default, or human-readable text (`logger.fmt: text`). */
import { pino, type Logger } from 'pino';
import type { Config } from '../config/schema.js';

export type { Logger };

/** Config paths whose values are secrets; pino replaces them wherever they are logged. */
const REDACT = ['password', '*.password', '*.*.password', 'sentryDSN', '*.sentryDSN', 'connectionString', '*.connectionString'];

/**
 * Credentials inside URLs in a text (`nats://user:pw@host`, `amqp://user:pw@host`) → `user:***@`.
 * For messages that name a broker address; the logger applies it to every line as well.
 */
export function redactUrlCredentials(text: string): string {
  return text.includes('@') ? text.replace(/([a-z][a-z0-9+.-]*:\/\/[^\s:@/"'\\]*):[^\s@/"'\\]+@/gi, '$1:***@') : text;
}

/** Shorter secrets are not searched for in whole lines (they would match inside ordinary words). */
const MIN_SCRUBBED = 6;

/** Words the daemon writes in its own log fields (source and publisher kinds). */
const OWN_WORDS = new Set(['postgres', 'mysql', 'pgq', 'nats', 'kafka', 'rabbitmq', 'google_pubsub', 'stdout', 'publisher']);

/**
 * A function that removes the given secrets (as written, and as escaped inside a JSON string) and
 * URL credentials from a text: applied to every log line, probe answer and command output, so a
 * password in a library's error message never leaves the process either.
 */
export function textScrubber(secrets: readonly string[]): (text: string) => string {
  const forms = new Set<string>();
  for (const secret of secrets) {
    // A very short password, or one of the daemon's own words (the Go example's `password:
    // postgres`), would blank out parts of every line (`"source":"postgres"`, keys); such values
    // are left to the `password` field redaction and the URL credential rule above.
    if (secret.length < MIN_SCRUBBED || OWN_WORDS.has(secret)) continue;
    forms.add(secret);
    forms.add(JSON.stringify(secret).slice(1, -1));
  }
  const list = [...forms].sort((a, b) => b.length - a.length);
  return (text) => {
    let out = text;
    for (const secret of list) if (out.includes(secret)) out = out.split(secret).join('[redacted]');
    return redactUrlCredentials(out);
  };
}

/** `secrets`: values to remove from every line (observability/index.ts configSecrets), besides URL credentials. */
export function createLogger(options: Pick<Config['logger'], 'level' | 'fmt'>, destination: NodeJS.WritableStream = process.stderr, secrets: readonly string[] = []): Logger {
  const base = { level: options.level, base: { app: 'wal-listener' }, redact: { paths: REDACT, censor: '[redacted]' }, hooks: { streamWrite: textScrubber(secrets) } };
  if (options.fmt === 'text') {
    return pino({ ...base, formatters: { level: (label) => ({ level: label }) } }, textStream(destination));
  }
  return pino({ ...base, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } }, pino.destination({ dest: fdOf(destination), sync: true }));
}

function fdOf(stream: NodeJS.WritableStream): number {
  return (stream as unknown as { fd?: number }).fd ?? 2;
}

/** One readable line per record: `2024-02-29T08:15:56.123Z INFO message key=value ...`. */
function textStream(out: NodeJS.WritableStream): NodeJS.WritableStream & { write(line: string): boolean } {
  const SKIP = new Set(['level', 'time', 'msg', 'app']);
  return {
    write(line: string): boolean {
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return out.write(line);
      }
      const time = new Date(Number(record.time)).toISOString();
      const fields = Object.entries(record)
        .filter(([k]) => !SKIP.has(k))
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ');
      return out.write(`${time} ${String(record.level).toUpperCase()} ${String(record.msg ?? '')}${fields ? ` ${fields}` : ''}\n`);
    },
  } as unknown as NodeJS.WritableStream & { write(line: string): boolean };
}
