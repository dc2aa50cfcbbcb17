/**
 * `ev_time` as PostgreSQL writes a timestamptz in ISO DateStyle ("2024-02-29 08:15:56.123456+00"),
 * read without losing microseconds (a JS Date keeps milliseconds only): the three forms the mikkoo
 * mapping needs.
 */
import { sequenceTimePart } from './ids.js';

export interface EventTime {
  /** Microseconds since the Unix epoch (for the `sequence` header). */
  readonly epochMicros: bigint;
  /** Whole seconds since the epoch: the AMQP `timestamp` property (mikkoo: int(ev_time)). */
  readonly epochSeconds: number;
  /** The `timestamp` header, as mikkoo writes it (Python's isoformat in UTC): "2024-02-29T08:15:56.123456+00:00". */
  readonly iso: string;
  /** RFC 3339 in UTC with microseconds, as the pipeline's commitTime: "2024-02-29T08:15:56.123456Z". */
  readonly rfc3339: string;
  /** The time half of the `sequence` header (ids.ts sequenceTimePart). */
  readonly sequencePart: string;
}

const TIMESTAMPTZ = /^(\d{4,})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?([+-])(\d\d)(?::?(\d\d))?(?::?(\d\d))?$/;

const pad = (n: number, digits = 2): string => String(n).padStart(digits, '0');

/** Parses a timestamptz in ISO DateStyle; undefined for anything else (infinity, BC dates). */
export function parseEventTime(text: string): EventTime | undefined {
  const m = TIMESTAMPTZ.exec(text);
  if (!m) return undefined;
  const offsetSeconds = (m[8] === '-' ? -1 : 1) * (Number(m[9]) * 3600 + Number(m[10] ?? 0) * 60 + Number(m[11] ?? 0));
  const localMs = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  const seconds = (localMs / 1000) - offsetSeconds;
  const micros = Number((m[7] ?? '').padEnd(6, '0'));
  const utc = new Date(seconds * 1000);
  const date = `${pad(utc.getUTCFullYear(), 4)}-${pad(utc.getUTCMonth() + 1)}-${pad(utc.getUTCDate())}`;
  const time = `${pad(utc.getUTCHours())}:${pad(utc.getUTCMinutes())}:${pad(utc.getUTCSeconds())}`;
  // Python's isoformat leaves the fraction out when it is zero.
  const fraction = micros === 0 ? '' : `.${pad(micros, 6)}`;
  const epochMicros = BigInt(seconds) * 1_000_000n + BigInt(micros);
  return {
    epochMicros,
    sequencePart: sequenceTimePart(epochMicros),
    epochSeconds: seconds,
    iso: `${date}T${time}${fraction}+00:00`,
    rfc3339: `${date}T${time}.${pad(micros, 6)}Z`,
  };
}
