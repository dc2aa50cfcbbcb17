/**
 * Deterministic event ids: a UUID (version 8, RFC 9562 custom layout) made of
 *   - the transaction's source position (64 bits: PostgreSQL's commit LSN; other sources build
 *     a 64-bit number from theirs),
 *   - a 26-bit hash of the source (PostgreSQL system identifier + database name),
 *   - the change's position within its transaction (32 bits, counting every change, filtered or not).
 * The same change redelivered after a restart gets the same id, so brokers drop the duplicate;
 * two databases publishing into one stream never collide on LSNs alone.
 * The LSN and source part is built once per transaction; each change only appends its position.
 */
import { createHash } from 'node:crypto';

/** FNV-1a (32-bit) of the source identity, reduced to 26 bits. */
export function sourceHash(systemId: string, database: string): number {
  let h = 0x811c9dc5;
  const text = `${systemId}/${database}`;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h & 0x3ffffff;
}

/** Char code of the hex digit of a value's lowest four bits. */
const HEX = (value: number): number => {
  const d = value & 0xf;
  return d < 10 ? 48 + d : 87 + d;
};

/** Everything of the id but the last 8 hex digits: "llllllll-llll-8lll-Vlss-ssss". */
export function eventIdPrefix(position: bigint, source: number): string {
  return eventIdPrefixHalves(Number((position >> 32n) & 0xffffffffn), Number(position & 0xffffffffn), source);
}

/**
 * eventIdPrefix of a position given as its two 32-bit halves (a PostgreSQL LSN read without a
 * BigInt): one string built at once, as it is built for every transaction.
 */
export function eventIdPrefixHalves(hi: number, lo: number, source: number): string {
  const variant = 0x8 | ((lo >>> 2) & 0x3); // 10xx: the RFC 9562 variant, then two LSN bits
  const mixed = ((lo & 0x3) << 10) | (source >>> 16); // two LSN bits + ten source bits
  return String.fromCharCode(
    HEX(hi >>> 28), HEX(hi >>> 24), HEX(hi >>> 20), HEX(hi >>> 16), HEX(hi >>> 12), HEX(hi >>> 8), HEX(hi >>> 4), HEX(hi), 0x2d,
    HEX(lo >>> 28), HEX(lo >>> 24), HEX(lo >>> 20), HEX(lo >>> 16), 0x2d,
    0x38, HEX(lo >>> 12), HEX(lo >>> 8), HEX(lo >>> 4), 0x2d,
    HEX(variant), HEX(mixed >>> 8), HEX(mixed >>> 4), HEX(mixed), 0x2d,
    HEX(source >>> 12), HEX(source >>> 8), HEX(source >>> 4), HEX(source),
  );
}

export function eventId(prefix: string, position: number): string {
  const p = position >>> 0;
  return prefix + String.fromCharCode(HEX(p >>> 28), HEX(p >>> 24), HEX(p >>> 20), HEX(p >>> 16), HEX(p >>> 12), HEX(p >>> 8), HEX(p >>> 4), HEX(p));
}

/**
 * An id made from a text (a UUID version 8 of its SHA-1): for events that have no place in a
 * source transaction, such as snapshot rows (`<source>/<snapshot>/<key>`), so that the same row
 * read again after a restart carries the same id.
 */
export function hashedEventId(text: string): string {
  const h = createHash('sha1').update(text).digest('hex');
  const variant = (0x8 | (parseInt(h[16]!, 16) & 0x3)).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
