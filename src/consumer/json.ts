/**
 * JSON parsing that keeps every integer exact. wal-listener writes int8 values with all their
 * digits; `JSON.parse` rounds those beyond 2^53. Integers outside Number's safe range become
 * `bigint`; everything else is what `JSON.parse` gives.
 */
import { randomBytes } from 'node:crypto';

/**
 * An integer token of 16 or more digits in value position. 2^53 has 16 digits, so text without
 * one has no unsafe integer and takes the fast path (`JSON.parse`). A match inside a string only
 * costs the slow path, never a wrong value. (Measured on a 400-byte event: this test costs about a
 * third of JSON.parse, less than a charCodeAt loop.)
 */
const LONG_INTEGER = /(?:^|[:,[])\s*-?\d{16,}\s*(?:[,}\]]|$)/;

/**
 * The slow path puts each unsafe integer in a string starting with this, lets JSON.parse do the
 * rest (about twice as fast as a parser in JS), then turns those strings into bigints. The random
 * part keeps a real string from ever looking like one.
 */
const MARKER = `\u0000wal-listener-${randomBytes(8).toString('hex')}:`;
const MARKER_IN_JSON = JSON.stringify(MARKER).slice(1, -1);

/** `JSON.parse`, except that integers outside ±(2^53−1) are returned as `bigint`. Throws SyntaxError. */
export function parseJson(text: string): unknown {
  if (!LONG_INTEGER.test(text)) return JSON.parse(text);
  const marked = markUnsafeIntegers(text);
  return marked === text ? JSON.parse(text) : revive(JSON.parse(marked));
}

const enum Char {
  Quote = 0x22,
  Plus = 0x2b,
  Minus = 0x2d,
  Dot = 0x2e,
  Zero = 0x30,
  Nine = 0x39,
  UpperE = 0x45,
  Backslash = 0x5c,
  LowerE = 0x65,
}

const isDigit = (c: number): boolean => c >= Char.Zero && c <= Char.Nine;

/** The text with every integer token outside strings that Number cannot hold exactly replaced by `"<MARKER><digits>"`. */
function markUnsafeIntegers(text: string): string {
  const n = text.length;
  let out = '';
  let copied = 0;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === Char.Quote) {
      for (i++; i < n; i++) {
        const d = text.charCodeAt(i);
        if (d === Char.Backslash) i++;
        else if (d === Char.Quote) break;
      }
      continue;
    }
    if (c !== Char.Minus && !isDigit(c)) continue;
    let end = c === Char.Minus ? i + 1 : i;
    while (isDigit(text.charCodeAt(end))) end++;
    const next = text.charCodeAt(end);
    if (end - i >= 16 && next !== Char.Dot && next !== Char.LowerE && next !== Char.UpperE) {
      const token = text.slice(i, end);
      if (!Number.isSafeInteger(Number(token))) {
        out += `${text.slice(copied, i)}"${MARKER_IN_JSON}${token}"`;
        copied = end;
      }
    }
    // The rest of the token (fraction, exponent) is not an integer of its own.
    for (let d = text.charCodeAt(end); isDigit(d) || d === Char.Dot || d === Char.LowerE || d === Char.UpperE || d === Char.Plus || d === Char.Minus; d = text.charCodeAt(++end));
    i = end - 1;
  }
  return copied === 0 ? text : out + text.slice(copied);
}

/** Marked strings → bigint, in place. */
function revive(value: unknown): unknown {
  if (typeof value === 'string') return value.startsWith(MARKER) ? BigInt(value.slice(MARKER.length)) : value;
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = revive(value[i]);
    return value;
  }
  const object = value as Record<string, unknown>;
  for (const key in object) {
    const before = object[key];
    const after = revive(before);
    if (after === before) continue;
    // A plain assignment of "__proto__" would set the prototype; JSON.parse made an own property.
    if (key === '__proto__') Object.defineProperty(object, key, { value: after, enumerable: true, writable: true, configurable: true });
    else object[key] = after;
  }
  return object;
}
