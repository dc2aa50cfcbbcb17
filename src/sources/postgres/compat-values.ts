/**
 * Value shapes of ihippik/wal-listener v2.11 (`publisher.eventFormat: compat`), for consumers
 * written against it. That project converts only bool, int2/4/8, text, varchar, uuid, jsonb,
 * timestamp and timestamptz; every other type reaches JSON as its PostgreSQL text. So, where
 * compat differs from the native format (values.ts):
 *
 * | type                    | compat                                                  |
 * |-------------------------|---------------------------------------------------------|
 * | float4, float8, oid     | the text as a string: "1.5", "NaN", "16384"             |
 * | json                    | the text as a string (jsonb stays the value)            |
 * | bytea                   | the hex text as a string: "\\xdeadbeef"                 |
 * | arrays                  | the array text as a string: "{1,2,NULL}"                |
 * | interval                | PostgreSQL's default (IntervalStyle postgres) text: "1 year 2 mons 3 days 04:05:06.5" |
 * | timestamp, timestamptz  | RFC 3339 in UTC, trailing fraction zeros trimmed: "2024-02-29T08:15:56.1234Z" |
 *
 * A value compat cannot shape (an infinite or BC timestamp, which Go turns into its zero time) is
 * published as its PostgreSQL text and counted as a problem, never as a zero value.
 */
import type { ConvertProblem, ToJson } from './values.js';

export const OID = { bytea: 17, oid: 26, json: 114, float4: 700, float8: 701, timestamp: 1114, timestamptz: 1184, interval: 1186 } as const;

const quote: ToJson = (text) => JSON.stringify(text);

/**
 * The compat converter for a column whose type resolves to `baseOid` (domains followed), or
 * undefined when compat keeps the native converter. `array`: the type is an array.
 */
export function compatConverter(baseOid: number, array: boolean, onProblem: ConvertProblem): ToJson | undefined {
  if (array) return quote;
  switch (baseOid) {
    case OID.float4:
    case OID.float8:
    case OID.oid:
    case OID.json:
    case OID.bytea:
      return quote;
    case OID.interval:
      return (text) => JSON.stringify(postgresInterval(text) ?? problem(onProblem, baseOid, text));
    case OID.timestamp:
    case OID.timestamptz:
      return (text) => JSON.stringify(goTime(text) ?? problem(onProblem, baseOid, text));
  }
  return undefined;
}

function problem(onProblem: ConvertProblem, oid: number, text: string): string {
  onProblem(oid, text);
  return text;
}

/**
 * Go's time.Time JSON (RFC 3339, nanosecond precision, trailing zeros trimmed) of a timestamp or
 * timestamptz printed with DateStyle ISO and TimeZone UTC: "2024-02-29 08:15:56.1234[+00]".
 * Undefined for infinity, BC dates and years past 9999, which Go cannot parse.
 */
export function goTime(text: string): string | undefined {
  const m = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?(?:\+00(?::00)?)?$/.exec(text);
  if (!m) return undefined;
  const fraction = (m[3] ?? '').replace(/0+$/, '');
  return `${m[1]}T${m[2]}${fraction ? `.${fraction}` : ''}Z`;
}

/**
 * An interval printed with IntervalStyle iso_8601 (how the replication session reads values:
 * "P1Y2M-3DT4H5M6.5S", "PT0S", "PT-1.5S") reprinted as IntervalStyle postgres, PostgreSQL's default
 * and what ihippik/wal-listener publishes: "1 year 2 mons -3 days +04:05:06.5".
 */
export function postgresInterval(iso: string): string | undefined {
  if (iso === 'infinity' || iso === '-infinity') return iso;
  const m = /^P(?:(-?\d+)Y)?(?:(-?\d+)M)?(?:(-?\d+)D)?(?:T(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?\d+(?:\.\d+)?)S)?)?$/.exec(iso);
  if (!m || iso === 'P' || iso.endsWith('T')) return undefined;
  const int = (s: string | undefined): number => (s === undefined ? 0 : Number(s));
  // PostgreSQL keeps months, days and microseconds; years and months share the sign of the months.
  const months = int(m[1]) * 12 + int(m[2]);
  const days = int(m[3]);
  const micros = BigInt(int(m[4])) * 3_600_000_000n + BigInt(int(m[5])) * 60_000_000n + secondsToMicros(m[6] ?? '0');
  const parts: string[] = [];
  let before = false;
  const datePart = (value: number, unit: string): void => {
    if (value === 0) return;
    parts.push(`${before && value > 0 ? '+' : ''}${value} ${unit}${value === 1 ? '' : 's'}`);
    before = value < 0;
  };
  datePart(Math.trunc(months / 12), 'year');
  datePart(months % 12, 'mon');
  datePart(days, 'day');
  if (parts.length === 0 || micros !== 0n) {
    const minus = micros < 0n;
    const abs = minus ? -micros : micros;
    const hours = abs / 3_600_000_000n;
    const minutes = (abs / 60_000_000n) % 60n;
    const seconds = (abs / 1_000_000n) % 60n;
    const fraction = (abs % 1_000_000n).toString().padStart(6, '0').replace(/0+$/, '');
    const sign = minus ? '-' : before ? '+' : '';
    parts.push(`${sign}${pad2(hours)}:${pad2(minutes)}:${pad2(seconds)}${fraction ? `.${fraction}` : ''}`);
  }
  return parts.join(' ');
}

function pad2(n: bigint): string {
  return n.toString().padStart(2, '0');
}

/** "-6.5" → -6500000n, exactly (no floating point). */
function secondsToMicros(text: string): bigint {
  const negative = text.startsWith('-');
  const [whole = '0', fraction = ''] = (negative ? text.slice(1) : text).split('.');
  const micros = BigInt(whole) * 1_000_000n + BigInt((fraction + '000000').slice(0, 6));
  return negative ? -micros : micros;
}
