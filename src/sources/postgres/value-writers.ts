/**
 * The byte path of the value converters (values.ts): for the common shapes of the common types,
 * PostgreSQL's text output goes from the received bytes to JSON bytes without a string. Anything
 * else (unusual shapes, arrays, values to report as problems) goes through the
 * column's string converter, so both paths publish the same JSON; test/unit/value-writers.test.ts
 * checks them against each other.
 */
import type { WriteJson } from '../../pipeline/change.js';
import type { JsonOut } from '../../pipeline/json-out.js';
import type { ScalarKind } from './type-catalog.js';
import type { ToJson } from './values.js';

const enum Ch {
  Space = 0x20,
  Plus = 0x2b,
  Minus = 0x2d,
  Dot = 0x2e,
  Zero = 0x30,
  Nine = 0x39,
  Colon = 0x3a,
  UpperE = 0x45,
  LowerE = 0x65,
  T = 0x54,
  Z = 0x5a,
  Quote = 0x22,
  LowerF = 0x66,
  LowerT = 0x74,
  Newline = 0x0a,
  Return = 0x0d,
  Backslash = 0x5c,
  LowerX = 0x78,
  UpperP = 0x50,
}

const isDigit = (c: number | undefined): boolean => c !== undefined && c >= Ch.Zero && c <= Ch.Nine;

/** -?(0|[1-9][0-9]*) */
function isJsonInteger(buf: Buffer, from: number, to: number): boolean {
  let i = buf[from] === Ch.Minus ? from + 1 : from;
  if (i >= to) return false;
  if (buf[i] === Ch.Zero) return i + 1 === to;
  for (; i < to; i++) if (!isDigit(buf[i])) return false;
  return true;
}

/** The JSON number grammar: -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?, within from–to (no closure: this runs per value). */
function isJsonNumber(buf: Buffer, from: number, to: number): boolean {
  let i = from < to && buf[from] === Ch.Minus ? from + 1 : from;
  if (i >= to) return false;
  if (buf[i] === Ch.Zero) i++;
  else if (isDigit(buf[i])) while (++i < to && isDigit(buf[i]));
  else return false;
  if (i < to && buf[i] === Ch.Dot) {
    if (++i >= to || !isDigit(buf[i])) return false;
    while (++i < to && isDigit(buf[i]));
  }
  if (i < to && (buf[i] === Ch.LowerE || buf[i] === Ch.UpperE)) {
    if (++i < to && (buf[i] === Ch.Plus || buf[i] === Ch.Minus)) i++;
    if (i >= to || !isDigit(buf[i])) return false;
    while (++i < to && isDigit(buf[i]));
  }
  return i === to;
}

const BASE64 = Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/');

/** A hex digit's value (either case, as Buffer.from(…, 'hex') reads them), or -1. */
function hexValue(c: number): number {
  if (c >= Ch.Zero && c <= Ch.Nine) return c - Ch.Zero;
  const lower = c | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x57 : -1;
}

/** The byte spelt by the two hex digits at i. */
const byteAt = (buf: Buffer, i: number): number => (hexValue(buf[i]!) << 4) | hexValue(buf[i + 1]!);

/** The bytes spelt by the hex digits from–to (an even count, all checked) as base64, with padding. */
function writeHexAsBase64(buf: Buffer, from: number, to: number, out: JsonOut): void {
  let i = from;
  for (; i + 6 <= to; i += 6) {
    const n = (byteAt(buf, i) << 16) | (byteAt(buf, i + 2) << 8) | byteAt(buf, i + 4);
    out.byte(BASE64[n >>> 18]!);
    out.byte(BASE64[(n >>> 12) & 63]!);
    out.byte(BASE64[(n >>> 6) & 63]!);
    out.byte(BASE64[n & 63]!);
  }
  if (to - i === 4) {
    const n = (byteAt(buf, i) << 8) | byteAt(buf, i + 2);
    out.byte(BASE64[n >>> 10]!);
    out.byte(BASE64[(n >>> 4) & 63]!);
    out.byte(BASE64[(n << 2) & 63]!);
    out.byte(0x3d);
  } else if (to - i === 2) {
    const n = byteAt(buf, i);
    out.byte(BASE64[n >>> 2]!);
    out.byte(BASE64[(n << 4) & 63]!);
    out.byte(0x3d);
    out.byte(0x3d);
  }
}

/** numeric_out's digits: -?digits[.digits] (NaN and ±Infinity go the string way). */
function isNumericDigits(buf: Buffer, from: number, to: number): boolean {
  let i = buf[from] === Ch.Minus ? from + 1 : from;
  if (i >= to || !isDigit(buf[i])) return false;
  let dots = 0;
  for (; i < to; i++) {
    const c = buf[i]!;
    if (c === Ch.Dot) {
      if (++dots > 1 || i + 1 >= to || !isDigit(buf[i + 1])) return false;
    } else if (!isDigit(c)) return false;
  }
  return true;
}

/** "YYYY-MM-DD HH:MM:SS" separators at their places (4-digit years; digits are PostgreSQL's). */
function isPlainDateTime(buf: Buffer, from: number): boolean {
  return buf[from + 4] === Ch.Minus && buf[from + 7] === Ch.Minus && buf[from + 10] === Ch.Space && buf[from + 13] === Ch.Colon && buf[from + 16] === Ch.Colon;
}

const ZEROS = Buffer.from('000000');

/** `"YYYY-MM-DDTHH:MM:SS.ffffff` from "YYYY-MM-DD HH:MM:SS[.f…]" ending at `end`; false when not that shape. */
function writeDateTime(buf: Buffer, from: number, end: number, out: JsonOut): boolean {
  const n = end - from;
  if (n < 19 || n > 26 || !isPlainDateTime(buf, from)) return false;
  if (n !== 19 && (n < 21 || buf[from + 19] !== Ch.Dot)) return false;
  out.byte(Ch.Quote);
  out.bytes(buf, from, from + 10);
  out.byte(Ch.T);
  out.bytes(buf, from + 11, end);
  if (n === 19) out.byte(Ch.Dot);
  out.bytes(ZEROS, 0, n === 19 ? 6 : 26 - n);
  return true;
}

/**
 * The byte writer for a column of this scalar kind, falling back to `text` (the column's string
 * converter) for any other shape; undefined for kinds without a byte path.
 */
export function writerFor(kind: ScalarKind, text: ToJson): WriteJson | undefined {
  const fallback = (buf: Buffer, from: number, to: number, out: JsonOut): void => out.utf8(text(buf.toString('utf8', from, to)));
  switch (kind) {
    case 'int':
      return (buf, from, to, out) => (isJsonInteger(buf, from, to) ? out.bytes(buf, from, to) : fallback(buf, from, to, out));
    case 'float':
      return (buf, from, to, out) => (isJsonNumber(buf, from, to) ? out.bytes(buf, from, to) : fallback(buf, from, to, out));
    case 'numeric':
      return (buf, from, to, out) => {
        if (!isNumericDigits(buf, from, to)) return fallback(buf, from, to, out);
        out.byte(Ch.Quote);
        out.bytes(buf, from, to);
        out.byte(Ch.Quote);
      };
    case 'bool':
      return (buf, from, to, out) => {
        if (to - from === 1 && buf[from] === Ch.LowerT) out.ascii('true');
        else if (to - from === 1 && buf[from] === Ch.LowerF) out.ascii('false');
        else fallback(buf, from, to, out);
      };
    case 'json':
      // Line breaks become spaces (values.ts says why): rare, so they take the string way.
      return (buf, from, to, out) => {
        for (let i = from; i < to; i++) {
          const c = buf[i];
          if (c === Ch.Newline || c === Ch.Return) return fallback(buf, from, to, out);
        }
        out.bytes(buf, from, to);
      };
    case 'text':
      return (buf, from, to, out) => out.jsonString(buf, from, to);
    case 'date':
      return (buf, from, to, out) => {
        if (to - from !== 10 || buf[from + 4] !== Ch.Minus || buf[from + 7] !== Ch.Minus) return fallback(buf, from, to, out);
        out.byte(Ch.Quote);
        out.bytes(buf, from, to);
        out.byte(Ch.Quote);
      };
    case 'timestamp':
      return (buf, from, to, out) => {
        if (!isDigit(buf[to - 1]) || !writeDateTime(buf, from, to, out)) return fallback(buf, from, to, out);
        out.byte(Ch.Quote);
      };
    case 'timestamptz':
      // TimeZone UTC: "…+00" at the end.
      return (buf, from, to, out) => {
        if (buf[to - 3] !== Ch.Plus || buf[to - 2] !== Ch.Zero || buf[to - 1] !== Ch.Zero || !writeDateTime(buf, from, to - 3, out)) return fallback(buf, from, to, out);
        out.byte(Ch.Z);
        out.byte(Ch.Quote);
      };
    case 'bytea':
      // bytea_output hex: "\x" and two hex digits per byte, as base64.
      return (buf, from, to, out) => {
        if ((to - from) % 2 !== 0 || to - from < 2 || buf[from] !== Ch.Backslash || buf[from + 1] !== Ch.LowerX) return fallback(buf, from, to, out);
        for (let i = from + 2; i < to; i++) if (hexValue(buf[i]!) < 0) return fallback(buf, from, to, out);
        out.byte(Ch.Quote);
        writeHexAsBase64(buf, from + 2, to, out);
        out.byte(Ch.Quote);
      };
    case 'interval':
      // IntervalStyle iso_8601: "P…" of digits, letters, '.', '-': a JSON string as it is.
      return (buf, from, to, out) => {
        if (buf[from] !== Ch.UpperP) return fallback(buf, from, to, out);
        for (let i = from + 1; i < to; i++) {
          const c = buf[i]!;
          if (!((c >= Ch.Zero && c <= Ch.Nine) || (c >= 0x41 && c <= 0x5a) || c === Ch.Dot || c === Ch.Minus)) return fallback(buf, from, to, out);
        }
        out.byte(Ch.Quote);
        out.bytes(buf, from, to);
        out.byte(Ch.Quote);
      };
  }
}
