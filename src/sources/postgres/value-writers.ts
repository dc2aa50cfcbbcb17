/**
 * The byte path of the value converters (values.ts): for the common shapes of the common types,
 * PostgreSQL's text output goes from the received bytes to JSON bytes without a string. Anything
 * else (unusual shapes, arrays, values to report as problems) goes through the
 * column's string converter, so both paths publish the same JSON; test/unit/values.test.ts
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

/** A hex digit's value (either case, as Buffer.from(…, 'hex') reads them), or -1 (any other byte). */
const HEX = new Int8Array(256).fill(-1);
for (let c = 0; c < 10; c++) HEX[Ch.Zero + c] = c;
for (let c = 0; c < 6; c++) HEX[0x41 + c] = HEX[0x61 + c] = 10 + c;

/**
 * `"<base64>"` of the bytes spelt by the hex digits from–to (an even count), with padding; false,
 * with nothing written, when a byte there is not a hex digit.
 */
function writeHexAsBase64(buf: Buffer, from: number, to: number, out: JsonOut): boolean {
  const dst = out.room(2 + 4 * Math.ceil((to - from) / 6));
  let p = out.cursor;
  dst[p++] = Ch.Quote;
  let i = from;
  for (; i + 6 <= to; i += 6) {
    const a = (HEX[buf[i]!]! << 4) | HEX[buf[i + 1]!]!;
    const b = (HEX[buf[i + 2]!]! << 4) | HEX[buf[i + 3]!]!;
    const c = (HEX[buf[i + 4]!]! << 4) | HEX[buf[i + 5]!]!;
    // A -1 digit makes its byte negative (sign bits are kept by |).
    if ((a | b | c) < 0) return false;
    const n = (a << 16) | (b << 8) | c;
    dst[p] = BASE64[n >>> 18]!;
    dst[p + 1] = BASE64[(n >>> 12) & 63]!;
    dst[p + 2] = BASE64[(n >>> 6) & 63]!;
    dst[p + 3] = BASE64[n & 63]!;
    p += 4;
  }
  if (to - i === 4) {
    const a = (HEX[buf[i]!]! << 4) | HEX[buf[i + 1]!]!;
    const b = (HEX[buf[i + 2]!]! << 4) | HEX[buf[i + 3]!]!;
    if ((a | b) < 0) return false;
    const n = (a << 8) | b;
    dst[p] = BASE64[n >>> 10]!;
    dst[p + 1] = BASE64[(n >>> 4) & 63]!;
    dst[p + 2] = BASE64[(n << 2) & 63]!;
    dst[p + 3] = 0x3d;
    p += 4;
  } else if (to - i === 2) {
    const n = (HEX[buf[i]!]! << 4) | HEX[buf[i + 1]!]!;
    if (n < 0) return false;
    dst[p] = BASE64[n >>> 2]!;
    dst[p + 1] = BASE64[(n << 4) & 63]!;
    dst[p + 2] = 0x3d;
    dst[p + 3] = 0x3d;
    p += 4;
  }
  dst[p++] = Ch.Quote;
  out.advance(p - out.cursor);
  return true;
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

/**
 * `"YYYY-MM-DDTHH:MM:SS.ffffff` then `suffix` (`"` or `Z"`: 1 or 2 bytes) from "YYYY-MM-DD
 * HH:MM:SS[.f…]" ending at `end`; false, with nothing written, when not that shape.
 */
function writeDateTime(buf: Buffer, from: number, end: number, out: JsonOut, zulu: boolean): boolean {
  const n = end - from;
  if (n < 19 || n > 26 || !isPlainDateTime(buf, from)) return false;
  if (n !== 19 && (n < 21 || buf[from + 19] !== Ch.Dot)) return false;
  // Quote, 26 characters, Z and quote.
  const dst = out.room(29);
  let p = out.cursor;
  dst[p++] = Ch.Quote;
  for (let i = from; i < end; i++) dst[p++] = buf[i]!;
  dst[p - n + 10] = Ch.T;
  if (n === 19) dst[p++] = Ch.Dot;
  for (let k = n === 19 ? 20 : n; k < 26; k++) dst[p++] = Ch.Zero;
  if (zulu) dst[p++] = Ch.Z;
  dst[p++] = Ch.Quote;
  out.advance(p - out.cursor);
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
        if (!isDigit(buf[to - 1]) || !writeDateTime(buf, from, to, out, false)) fallback(buf, from, to, out);
      };
    case 'timestamptz':
      // TimeZone UTC: "…+00" at the end.
      return (buf, from, to, out) => {
        if (buf[to - 3] !== Ch.Plus || buf[to - 2] !== Ch.Zero || buf[to - 1] !== Ch.Zero || !writeDateTime(buf, from, to - 3, out, true)) fallback(buf, from, to, out);
      };
    case 'bytea':
      // bytea_output hex: "\x" and two hex digits per byte, as base64.
      return (buf, from, to, out) => {
        if ((to - from) % 2 !== 0 || to - from < 2 || buf[from] !== Ch.Backslash || buf[from + 1] !== Ch.LowerX || !writeHexAsBase64(buf, from + 2, to, out)) fallback(buf, from, to, out);
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
