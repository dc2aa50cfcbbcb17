/**
 * pgoutput decoder (logical replication protocol, version 1): Buffer in, messages out.
 * Pure: no I/O, no timers. Text values are decoded to strings right away because the Buffer
 * belongs to the connection's parser and is reused once the callback returns.
 * Protocol: https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html
 */
import { WalListenerError } from '../../errors.js';
import { RAW_NULL, RAW_UNCHANGED, type RawRow } from '../../pipeline/change.js';

export type Lsn = bigint;

/**
 * One value per column of the relation, in column order, as byte ranges of the message (the
 * pipeline's RawRow: RAW_NULL, RAW_UNCHANGED for a TOASTed value that did not change and was not
 * sent). Text values are not decoded here: the pipeline writes most of them to JSON straight from
 * these bytes. The buffer is the connection's; a tuple is valid until the next read.
 */
export type Tuple = RawRow;

export interface RelationColumn {
  /** Part of the replica identity (the key, or every column with REPLICA IDENTITY FULL). */
  readonly isKey: boolean;
  readonly name: string;
  readonly typeOid: number;
  readonly typeMod: number;
}

export interface BeginMessage { readonly tag: 'begin'; readonly finalLsn: Lsn; readonly commitTimeMicros: bigint; readonly xid: number }
export interface CommitMessage { readonly tag: 'commit'; readonly flags: number; readonly commitLsn: Lsn; readonly endLsn: Lsn; readonly commitTimeMicros: bigint }
export interface OriginMessage { readonly tag: 'origin'; readonly originLsn: Lsn; readonly name: string }
export interface RelationMessage {
  readonly tag: 'relation';
  readonly relationId: number;
  /** Schema name; pgoutput sends '' for pg_catalog, reported here as 'pg_catalog'. */
  readonly schema: string;
  readonly name: string;
  /** d = default (primary key), n = nothing, f = full, i = index. */
  readonly replicaIdentity: 'd' | 'n' | 'f' | 'i';
  readonly columns: readonly RelationColumn[];
}
export interface TypeMessage { readonly tag: 'type'; readonly typeOid: number; readonly schema: string; readonly name: string }
export interface InsertMessage { readonly tag: 'insert'; readonly relationId: number; readonly newTuple: Tuple }
export interface UpdateMessage {
  readonly tag: 'update';
  readonly relationId: number;
  /** 'K' old key, 'O' old full row (REPLICA IDENTITY FULL), or null when not sent. */
  readonly oldKind: 'K' | 'O' | null;
  readonly oldTuple: Tuple | null;
  readonly newTuple: Tuple;
}
export interface DeleteMessage { readonly tag: 'delete'; readonly relationId: number; readonly oldKind: 'K' | 'O'; readonly oldTuple: Tuple }
export interface TruncateMessage { readonly tag: 'truncate'; readonly cascade: boolean; readonly restartIdentity: boolean; readonly relationIds: readonly number[] }
export interface LogicalMessageBody { readonly transactional: boolean; readonly lsn: Lsn; readonly prefix: string; readonly content: Buffer }
export interface LogicalMessage extends LogicalMessageBody { readonly tag: 'message' }

export type PgOutputMessage =
  | BeginMessage
  | CommitMessage
  | OriginMessage
  | RelationMessage
  | TypeMessage
  | InsertMessage
  | UpdateMessage
  | DeleteMessage
  | TruncateMessage
  | LogicalMessage;

/** A CopyData payload of the replication stream: XLogData ('w') or a primary keepalive ('k'). */
export type ReplicationFrame =
  | { readonly kind: 'xlog'; readonly walStart: Lsn; readonly walEnd: Lsn; readonly message: PgOutputMessage }
  | { readonly kind: 'keepalive'; readonly walEnd: Lsn; readonly replyRequested: boolean };

export class ProtocolError extends WalListenerError {
  override name = 'ProtocolError';
  constructor(message: string) {
    super('WAL_PG_PROTOCOL', message);
  }
}

/** Decodes one CopyData payload of a START_REPLICATION stream. */
export function decodeFrame(buf: Buffer): ReplicationFrame {
  const kind = buf[0];
  if (kind === 0x77 /* w */) {
    if (buf.length < 25) throw new ProtocolError(`XLogData frame too short (${buf.length} bytes)`);
    return { kind: 'xlog', walStart: buf.readBigUInt64BE(1), walEnd: buf.readBigUInt64BE(9), message: decodeMessage(buf, 25) };
  }
  if (kind === 0x6b /* k */) {
    if (buf.length < 18) throw new ProtocolError(`keepalive frame too short (${buf.length} bytes)`);
    return { kind: 'keepalive', walEnd: buf.readBigUInt64BE(1), replyRequested: buf[17] === 1 };
  }
  throw new ProtocolError(`unknown replication frame type 0x${(kind ?? 0).toString(16)}`);
}

/**
 * Decodes a logical message (pgoutput 'M', from pg_logical_emit_message; START_REPLICATION with
 * `messages 'true'`) whose tag byte is at `offset`. The content is copied: it outlives `buf`.
 */
export function decodeLogicalMessage(buf: Buffer, offset = 0): LogicalMessageBody {
  const reader = new Reader(buf, offset);
  reader.expect(0x4d /* M */, 'logical message');
  return reader.logicalMessage();
}

/**
 * Decodes the pgoutput message that starts at `offset` and runs to `end` (the end of `buf`):
 * tuples' byte ranges are positions in `buf`.
 */
export function decodeMessage(buf: Buffer, offset = 0, end = buf.length): PgOutputMessage {
  return new Reader(buf, offset, end).message();
}

class Reader {
  constructor(
    private readonly buf: Buffer,
    private pos: number,
    /** Where the message ends in `buf`. */
    private readonly limit = buf.length,
  ) {}

  message(): PgOutputMessage {
    const tag = this.uint8();
    switch (tag) {
      case 0x42 /* B */:
        return { tag: 'begin', finalLsn: this.uint64(), commitTimeMicros: this.int64(), xid: this.uint32() };
      case 0x43 /* C */:
        return { tag: 'commit', flags: this.uint8(), commitLsn: this.uint64(), endLsn: this.uint64(), commitTimeMicros: this.int64() };
      case 0x4f /* O */:
        return { tag: 'origin', originLsn: this.uint64(), name: this.cstring() };
      case 0x52 /* R */:
        return this.relation();
      case 0x59 /* Y */:
        return { tag: 'type', typeOid: this.uint32(), schema: this.cstring() || 'pg_catalog', name: this.cstring() };
      case 0x49 /* I */: {
        const relationId = this.uint32();
        this.expect(0x4e /* N */, 'insert');
        return { tag: 'insert', relationId, newTuple: this.tuple() };
      }
      case 0x55 /* U */:
        return this.update();
      case 0x44 /* D */: {
        const relationId = this.uint32();
        const kind = this.uint8();
        if (kind !== 0x4b && kind !== 0x4f) throw new ProtocolError(`delete: expected K or O, got 0x${kind.toString(16)}`);
        return { tag: 'delete', relationId, oldKind: kind === 0x4b ? 'K' : 'O', oldTuple: this.tuple() };
      }
      case 0x54 /* T */: {
        const count = this.uint32();
        const options = this.uint8();
        const relationIds: number[] = new Array(count);
        for (let i = 0; i < count; i++) relationIds[i] = this.uint32();
        return { tag: 'truncate', cascade: (options & 1) !== 0, restartIdentity: (options & 2) !== 0, relationIds };
      }
      case 0x4d /* M */:
        return { tag: 'message', ...this.logicalMessage() };
      default:
        throw new ProtocolError(`unknown pgoutput message type ${JSON.stringify(String.fromCharCode(tag))} (0x${tag.toString(16)})`);
    }
  }

  /** The body of a logical message ('M', after the tag): flags, LSN, prefix, content. */
  logicalMessage(): LogicalMessageBody {
    const flags = this.uint8();
    const lsn = this.uint64();
    const prefix = this.cstring();
    const length = this.uint32();
    const content = Buffer.from(this.bytes(length));
    return { transactional: (flags & 1) !== 0, lsn, prefix, content };
  }

  private relation(): RelationMessage {
    const relationId = this.uint32();
    const schema = this.cstring() || 'pg_catalog';
    const name = this.cstring();
    const identity = String.fromCharCode(this.uint8());
    if (identity !== 'd' && identity !== 'n' && identity !== 'f' && identity !== 'i') {
      throw new ProtocolError(`relation ${schema}.${name}: unknown replica identity ${JSON.stringify(identity)}`);
    }
    const count = this.uint16();
    const columns: RelationColumn[] = new Array(count);
    for (let i = 0; i < count; i++) {
      columns[i] = { isKey: (this.uint8() & 1) !== 0, name: this.cstring(), typeOid: this.uint32(), typeMod: this.int32() };
    }
    return { tag: 'relation', relationId, schema, name, replicaIdentity: identity, columns };
  }

  private update(): UpdateMessage {
    const relationId = this.uint32();
    let kind = this.uint8();
    let oldKind: 'K' | 'O' | null = null;
    let oldTuple: Tuple | null = null;
    if (kind === 0x4b /* K */ || kind === 0x4f /* O */) {
      oldKind = kind === 0x4b ? 'K' : 'O';
      oldTuple = this.tuple();
      kind = this.uint8();
    }
    if (kind !== 0x4e /* N */) throw new ProtocolError(`update: expected N, got 0x${kind.toString(16)}`);
    return { tag: 'update', relationId, oldKind, oldTuple, newTuple: this.tuple() };
  }

  private tuple(): Tuple {
    const count = this.uint16();
    const spans: number[] = new Array(count * 2);
    const buf = this.buf;
    for (let i = 0; i < count; i++) {
      const kind = this.uint8();
      if (kind === 0x74 /* t */) {
        const length = this.uint32();
        const end = this.pos + length;
        if (end > this.limit) throw new ProtocolError('tuple value runs past the end of the message');
        spans[2 * i] = this.pos;
        spans[2 * i + 1] = end;
        this.pos = end;
      } else if (kind === 0x6e /* n */) {
        spans[2 * i] = RAW_NULL;
        spans[2 * i + 1] = RAW_NULL;
      } else if (kind === 0x75 /* u */) {
        spans[2 * i] = RAW_UNCHANGED;
        spans[2 * i + 1] = RAW_UNCHANGED;
      } else if (kind === 0x62 /* b */) {
        throw new ProtocolError('binary tuple values are not requested and cannot be decoded');
      } else {
        throw new ProtocolError(`unknown tuple value kind 0x${kind.toString(16)}`);
      }
    }
    return { buf, spans };
  }

  expect(byte: number, what: string): void {
    const got = this.uint8();
    if (got !== byte) throw new ProtocolError(`${what}: expected ${String.fromCharCode(byte)}, got 0x${got.toString(16)}`);
  }

  private need(n: number): void {
    if (this.pos + n > this.limit) throw new ProtocolError(`message truncated at byte ${this.pos} (needs ${n} more)`);
  }

  private uint8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }

  private uint16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  private uint32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  private int32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  private uint64(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  private int64(): bigint {
    this.need(8);
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  private bytes(n: number): Buffer {
    this.need(n);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  private cstring(): string {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0 || end >= this.limit) throw new ProtocolError('string without terminator');
    const v = this.buf.toString('utf8', this.pos, end);
    this.pos = end + 1;
    return v;
  }
}

/** "0/1A2B3C4" */
export function formatLsn(lsn: Lsn): string {
  return formatLsnHalves(Number(lsn >> 32n), Number(lsn & 0xffffffffn));
}

/** Upper-case hex of a byte: padded to two digits, and without leading zero. */
const HEX2: readonly string[] = Array.from({ length: 256 }, (_, b) => b.toString(16).toUpperCase().padStart(2, '0'));
const HEX2_TRIMMED: readonly string[] = Array.from({ length: 256 }, (_, b) => b.toString(16).toUpperCase());
/** The high half formatted last, with its slash (the high half changes every 4 GiB of WAL). */
let cachedLsnHi = -1;
let cachedLsnHiText = '';

/**
 * formatLsn of an LSN given as its two 32-bit halves (read from the wire without a BigInt): the
 * per-transaction path formats one for every transaction.
 */
export function formatLsnHalves(hi: number, lo: number): string {
  if (hi !== cachedLsnHi) {
    cachedLsnHiText = `${hi.toString(16).toUpperCase()}/`;
    cachedLsnHi = hi;
  }
  const b3 = lo >>> 24;
  const b2 = (lo >>> 16) & 0xff;
  const b1 = (lo >>> 8) & 0xff;
  const b0 = lo & 0xff;
  const low =
    b3 !== 0 ? HEX2_TRIMMED[b3]! + HEX2[b2]! + HEX2[b1]! + HEX2[b0]!
    : b2 !== 0 ? HEX2_TRIMMED[b2]! + HEX2[b1]! + HEX2[b0]!
    : b1 !== 0 ? HEX2_TRIMMED[b1]! + HEX2[b0]!
    : HEX2_TRIMMED[b0]!;
  return cachedLsnHiText + low;
}

export function parseLsn(text: string): Lsn {
  const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text);
  if (!match) throw new Error(`not an LSN: ${JSON.stringify(text)}`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

const PG_EPOCH_MICROS = 946_684_800_000_000n; // 2000-01-01T00:00:00Z in Unix microseconds

/** Largest seconds since the Unix epoch whose ISO text has a 4-digit year (9999-12-31T23:59:59). */
const LAST_4_DIGIT_SECOND = 253_402_300_799;
/** The last second formatted and its `YYYY-MM-DDTHH:MM:SS.` (commit times of a backlog share seconds). */
let cachedSecond = -1;
let cachedPrefix = '';

/** RFC 3339 in UTC with microseconds, from a PostgreSQL timestamp (microseconds since 2000-01-01). */
export function formatPgTimestamp(micros: bigint): string {
  const fast = formatPgMicrosFast(Number(micros));
  return fast ?? formatPgTimestampExact(micros);
}

/**
 * The same from the microseconds as a number, as pgMicrosAt reads them (no BigInt on the
 * per-transaction path); `micros` must be exact (a safe integer).
 */
export function formatPgMicros(micros: number): string {
  return formatPgMicrosFast(micros) ?? formatPgTimestampExact(BigInt(micros));
}

/**
 * A PostgreSQL timestamp (int64 microseconds since 2000-01-01) at `offset` of `buf`, as a number;
 * NaN when it is not a safe integer (then read it as a BigInt).
 */
export function pgMicrosAt(buf: Buffer, offset: number): number {
  const micros = buf.readInt32BE(offset) * 4_294_967_296 + buf.readUInt32BE(offset + 4);
  return Number.isSafeInteger(micros) ? micros : NaN;
}

/** Digits of the fraction: six digits and the Z, one string (no padStart, no template). */
function fractionText(f: number): string {
  return String.fromCharCode(
    48 + Math.floor(f / 100_000),
    48 + (Math.floor(f / 10_000) % 10),
    48 + (Math.floor(f / 1000) % 10),
    48 + (Math.floor(f / 100) % 10),
    48 + (Math.floor(f / 10) % 10),
    48 + (f % 10),
    0x5a /* Z */,
  );
}

/** The cached path: a 4-digit year, exact in a double (< 2^53 µs); undefined otherwise. */
function formatPgMicrosFast(micros: number): string | undefined {
  const unix = micros + 946_684_800_000_000;
  const second = Math.floor(unix / 1_000_000);
  if (second >= 0 && second <= LAST_4_DIGIT_SECOND && Number.isSafeInteger(unix)) {
    // One Date per second instead of per call.
    if (second !== cachedSecond) {
      cachedPrefix = new Date(second * 1000).toISOString().slice(0, 20);
      cachedSecond = second;
    }
    return cachedPrefix + fractionText(unix - second * 1_000_000);
  }
  return undefined;
}

function formatPgTimestampExact(micros: bigint): string {
  const unixMicros = micros + PG_EPOCH_MICROS;
  const ms = unixMicros / 1000n;
  let fraction = unixMicros % 1000n;
  if (fraction < 0n) fraction += 1000n;
  const iso = new Date(Number(unixMicros < 0n && fraction !== 0n ? ms - 1n : ms)).toISOString(); // 2024-02-29T08:15:56.123Z
  return `${iso.slice(0, -1)}${fraction.toString().padStart(3, '0')}Z`;
}

/** A PostgreSQL timestamp (microseconds since 2000-01-01, a BigInt or pgMicrosAt's number) in ms since the Unix epoch. */
export function pgTimestampMs(micros: bigint | number): number {
  return Number(micros) / 1000 + 946_684_800_000;
}
