/**
 * Ids of PgQ events, all derived from the event itself so that a re-delivered event (PgQ hands an
 * unfinished batch out again) carries the same ones:
 *
 * - the message id (the brokers' dedup id, DESIGN.md "The event"): a UUID (version 8, RFC 9562
 *   custom layout) `QQQQQQQQ-QQQQ-8EEE-8EEE-EEEEEEEEEEEE` made of 48 bits of a hash of the queue's
 *   identity (cluster system identifier, database, queue name) and the 72-bit zero-padded `ev_id`.
 *   The layout is reversible (`eventIdOf`), so a dead letter names its event, and simple enough to
 *   build in SQL (`messageIdSql`), so audit rows carry the same id;
 * - the `sequence` header (mikkoo: a UUIDv7 made at publish time, "fuzzy distributed ordering"): a
 *   UUIDv7 whose time is `ev_time` (milliseconds, and the sub-millisecond part scaled into rand_a as
 *   RFC 9562 §6.2 method 3 allows) and whose random bits are the `ev_id`, so it sorts by event time,
 *   then by event id, and is stable.
 */

const MASK_48 = (1n << 48n) - 1n;
const MASK_62 = (1n << 62n) - 1n;

/** FNV-1a (64-bit) of the queue's identity, reduced to 48 bits, as 12 hex digits. */
export function queueHash(systemId: string, database: string, queue: string): string {
  let h = 0xcbf29ce484222325n;
  for (const byte of Buffer.from(`${systemId}/${database}/${queue}`)) {
    h ^= BigInt(byte);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return (h & MASK_48).toString(16).padStart(12, '0');
}

/** The part of every message id of the queue before the event's digits: "QQQQQQQQ-QQQQ-8". */
export function messageIdPrefix(hash: string): string {
  return `${hash.slice(0, 8)}-${hash.slice(8, 12)}-8`;
}

/** Hex digits of a non-negative int8 in decimal text; Number when exact (the common case, 10× faster than BigInt). */
function hexOf(decimal: string, digits: number): string {
  const n = Number(decimal);
  return (Number.isSafeInteger(n) ? n.toString(16) : BigInt(decimal).toString(16)).padStart(digits, '0');
}

/** The message id of event `evId` (decimal digits, as PostgreSQL sends int8). */
export function messageId(prefix: string, evId: string): string {
  const e = hexOf(evId, 18);
  return `${prefix}${e.slice(0, 3)}-8${e.slice(3, 6)}-${e.slice(6)}`;
}

const MESSAGE_ID = /^([0-9a-f]{8}-[0-9a-f]{4}-8)([0-9a-f]{3})-8([0-9a-f]{3})-([0-9a-f]{12})$/;

/** The `ev_id` (decimal digits) of a message id of the queue whose ids start with `prefix`; undefined for any other id. */
export function eventIdOf(prefix: string, id: string): string | undefined {
  const match = MESSAGE_ID.exec(id);
  if (!match || match[1] !== prefix) return undefined;
  return BigInt(`0x${match[2]}${match[3]}${match[4]}`).toString();
}

/**
 * SQL for the message id of the event whose `ev_id` is `evId` (an SQL expression), with the prefix
 * as the parameter `prefixParam` ("$1"): the same text as `messageId`.
 */
export function messageIdSql(prefixParam: string, evId: string): string {
  const e = `lpad(to_hex(${evId}), 18, '0')`;
  return `(${prefixParam} || substr(${e}, 1, 3) || '-8' || substr(${e}, 4, 3) || '-' || substr(${e}, 7, 12))`;
}

/**
 * The `sequence` header: a UUIDv7 from the event time (`timePart`, see sequenceTimePart) and the
 * event id as rand_b (62 bits, behind the variant bits "10").
 */
export function sequenceId(timePart: string, evId: string): string {
  const n = Number(evId);
  // An id below 2^53 leaves the top bits of rand_b zero: variant nibble 8, then 15 hex digits.
  const lo = Number.isSafeInteger(n) ? `8${n.toString(16).padStart(15, '0')}` : ((0x2n << 62n) | (BigInt(evId) & MASK_62)).toString(16);
  return `${timePart}${lo.slice(0, 4)}-${lo.slice(4)}`;
}

/** The time half of a sequence id, "tttttttt-tttt-7sss-": unix_ts_ms, version 7, 12 bits of the sub-millisecond part. */
export function sequenceTimePart(epochMicros: bigint): string {
  const ms = (epochMicros / 1000n) & MASK_48;
  const subMs = ((epochMicros % 1000n) * 4096n) / 1000n; // RFC 9562 §6.2 method 3
  const hex = ((ms << 16n) | (0x7n << 12n) | subMs).toString(16).padStart(16, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-`;
}
