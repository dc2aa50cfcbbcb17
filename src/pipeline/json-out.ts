/**
 * Builds event payloads as bytes, once (STYLE.md: the hot path joins bytes, it does not allocate
 * per field). Messages are written one after another into large chunks; each finished message is a
 * view of its chunk (`subarray`), so a payload costs one small object, not a copy, and the bytes
 * go to the broker client as they are.
 *
 * Chunks are reused when that is known to be safe, and left to the garbage collector otherwise.
 * Every chunk has a PayloadLease counting the messages ended in it. The dispatcher releases a
 * message once it is acknowledged, only for a publisher that reads none of a payload's bytes after
 * that (Publisher.releasesPayloads), or holds the chunk while something still will (a socket that
 * has not written it yet: PayloadLease.hold); the live console has copied it by then. A chunk
 * whose every message was released, and that the writer has left, is written over again. A
 * message that is never acknowledged (refused, dead-lettered, dropped at shutdown) or goes to a
 * publisher that keeps payloads (Kafka, Pub/Sub) keeps its chunk out of reuse for good. Reusing
 * chunks saves the page faults of writing into fresh memory: on 4 KB TOASTed rows to stdout, 20
 * MB of peak RSS and a few percent of the CPU (page faults cost about 6.5 µs each, measured here).
 */

import { isUtf8 } from 'node:buffer';
import { escapeScanner } from './escape-scan.js';
import { DEFAULT_MAX_IN_FLIGHT_BYTES } from './message.js';

const CHUNK_BYTES = 256 * 1024;
/**
 * Released chunks kept for reuse, at most: the dispatcher's window of unacknowledged payloads in
 * chunks, and a few more (9 MiB). Acknowledgements come in bursts that release many chunks at
 * once; with room for only a few, most chunks were new again (a third reused on 4 KB TOASTed
 * rows, against 95% with this). More are left to the garbage collector.
 */
const SPARE_CHUNKS = Math.ceil(DEFAULT_MAX_IN_FLIGHT_BYTES / CHUNK_BYTES) + 4;
/** Up to this many bytes, a JavaScript loop copies faster than a native call. */
const SHORT = 48;
/** Strings at least this long are remembered: written again in the same message, they are copied. */
const REUSE = 256;

const enum Ch {
  Quote = 0x22,
  Backslash = 0x5c,
}

/** `\u00XX` escapes for control characters, as JSON.stringify writes them (short forms where JSON has them). */
const ESCAPES: readonly string[] = Array.from({ length: 0x20 }, (_, c) => {
  switch (c) {
    case 0x08:
      return '\\b';
    case 0x09:
      return '\\t';
    case 0x0a:
      return '\\n';
    case 0x0c:
      return '\\f';
    case 0x0d:
      return '\\r';
    default:
      return `\\u00${c.toString(16).padStart(2, '0')}`;
  }
});

/**
 * The account of one chunk: how many messages were ended in it and how many of those were
 * released. The chunk is reused once every one was released and the writer has moved on (sealed).
 */
export class PayloadLease {
  issued = 0;
  released = 0;
  sealed = false;

  constructor(
    readonly chunk: Buffer,
    private readonly spare: Buffer[] | null,
  ) {}

  /** One message of this chunk will not be read again (called once per message: dispatcher.ts), or a hold ended. */
  release(): void {
    if (++this.released === this.issued && this.sealed) this.recycle();
  }

  /** release(), for a callback (one function per chunk, not per message). */
  readonly releaser = (): void => this.release();

  /**
   * Another reader of a message of this chunk, until it calls release() (a socket that writes the
   * bytes later: nats-frames.ts); without that, the chunk is never reused. Only for a message not
   * yet released (its `lease` still set), so the chunk cannot have been reused already.
   */
  hold(): void {
    this.issued++;
  }

  /** The writer moved on to another chunk. */
  seal(): void {
    this.sealed = true;
    if (this.released === this.issued) this.recycle();
  }

  private recycle(): void {
    const spare = this.spare;
    if (spare !== null && spare.length < SPARE_CHUNKS) spare.push(this.chunk);
  }
}

export class JsonOut {
  /** Released chunks of CHUNK_BYTES, ready to be written over. */
  private readonly spare: Buffer[] = [];
  private chunk: Buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  private chunkLease = new PayloadLease(this.chunk, this.spare);
  private pos = 0;
  private start = 0;
  /** The last long string written in this message: its source range and its JSON's offsets in the message. */
  private lastSrc: Buffer | null = null;
  private lastFrom = 0;
  private lastTo = 0;
  private lastBegin = 0;
  private lastEnd = 0;
  private readonly scanner = escapeScanner();

  /** Starts a message. */
  begin(): void {
    this.start = this.pos;
    this.lastSrc = null;
  }

  /**
   * Ends the message begun last: its bytes. A line break follows them in the chunk when there is
   * room (not part of the message): a line-per-event writer (stdout) can then write runs of
   * consecutive messages as they lie, without copying them.
   */
  end(): Buffer {
    const message = this.chunk.subarray(this.start, this.pos);
    if (this.pos < this.chunk.length) this.chunk[this.pos++] = 0x0a;
    this.chunkLease.issued++;
    return message;
  }

  /** The lease of the chunk the message ended last lies in (read right after `end()`). */
  get lease(): PayloadLease {
    return this.chunkLease;
  }

  /**
   * Text known to be ASCII (JSON punctuation, ids, numbers). Short text is copied by a loop:
   * Buffer.write's per-call cost was most of the time for the few bytes written here (profile).
   */
  ascii(text: string): void {
    const n = text.length;
    this.ensure(n);
    if (n > SHORT) {
      this.pos += this.chunk.write(text, this.pos, 'latin1');
      return;
    }
    const chunk = this.chunk;
    let pos = this.pos;
    for (let i = 0; i < n; i++) chunk[pos++] = text.charCodeAt(i);
    this.pos = pos;
  }

  /** Any text, as UTF-8 (already-JSON fragments from converters). */
  utf8(text: string): void {
    this.ensure(text.length * 3);
    this.pos += this.chunk.write(text, this.pos, 'utf8');
  }

  /**
   * For writers that write many single bytes (base64, timestamps): makes room for `n` bytes and
   * returns the buffer to write them into, from `cursor`; `advance(k)` then takes the k bytes
   * written. Bytes written without an advance are not part of the message (a writer that finds an
   * unexpected shape half-way simply does not advance).
   */
  room(n: number): Buffer {
    this.ensure(n);
    return this.chunk;
  }

  get cursor(): number {
    return this.pos;
  }

  advance(k: number): void {
    this.pos += k;
  }

  byte(c: number): void {
    this.ensure(1);
    this.chunk[this.pos++] = c;
  }

  /** Bytes copied as they are (JSON that needs no change, prepared Buffers); short runs by a loop (see ascii). */
  bytes(src: Buffer, from = 0, to = src.length): void {
    const n = to - from;
    this.ensure(n);
    if (n > SHORT) {
      this.pos += src.copy(this.chunk, this.pos, from, to);
      return;
    }
    const chunk = this.chunk;
    let pos = this.pos;
    for (let i = from; i < to; i++) chunk[pos++] = src[i]!;
    this.pos = pos;
  }

  /**
   * UTF-8 bytes as a JSON string: quotes, backslashes and control characters escaped as
   * JSON.stringify escapes them; runs of other bytes copied in one go.
   */
  jsonString(src: Buffer, from: number, to: number): void {
    const long = to - from >= REUSE;
    if (long && src === this.lastSrc && from === this.lastFrom && to === this.lastTo) {
      // The same value again (a TOAST value in both `data` and `dataOld`): copy its JSON.
      const n = this.lastEnd - this.lastBegin;
      this.ensure(n);
      this.pos += this.chunk.copy(this.chunk, this.pos, this.start + this.lastBegin, this.start + this.lastEnd);
      return;
    }
    this.ensure(to - from + 2);
    // Where this value starts, relative to the message (which keeps its offsets if it moves chunk).
    const begin = this.pos - this.start;
    this.chunk[this.pos++] = Ch.Quote;
    let run = from;
    let high = 0;
    if (long) {
      // Long text: bytes to escape found in bulk (escape-scan.ts), UTF-8 checked once, natively.
      const scanner = this.scanner;
      scanner.reset(src, from, to);
      for (let i = scanner.next(from); i < to; i = scanner.next(i + 1)) {
        if (i > run) this.bytes(src, run, i);
        const c = src[i]!;
        this.ascii(c === Ch.Quote ? '\\"' : c === Ch.Backslash ? '\\\\' : ESCAPES[c]!);
        run = i + 1;
      }
      high = 0x80;
    } else {
      for (let i = from; i < to; i++) {
        const c = src[i]!;
        high |= c;
        if (c >= 0x20 && c !== Ch.Quote && c !== Ch.Backslash) continue;
        if (i > run) this.bytes(src, run, i);
        this.ascii(c === Ch.Quote ? '\\"' : c === Ch.Backslash ? '\\\\' : ESCAPES[c]!);
        run = i + 1;
      }
    }
    if (to > run) this.bytes(src, run, to);
    this.byte(Ch.Quote);
    if (high >= 0x80 && !isUtf8(src.subarray(from, to))) {
      // Not UTF-8 (a SQL_ASCII database can send any bytes): as JSON.stringify of the decoded text,
      // invalid sequences replaced, so the event stays valid JSON.
      this.pos = this.start + begin;
      this.utf8(JSON.stringify(src.toString('utf8', from, to)));
    }
    if (long) {
      this.lastSrc = src;
      this.lastFrom = from;
      this.lastTo = to;
      this.lastBegin = begin;
      this.lastEnd = this.pos - this.start;
    }
  }

  /** Room for `n` more bytes; a message that outgrows its chunk moves, whole, to a new one. */
  private ensure(n: number): void {
    if (this.pos + n <= this.chunk.length) return;
    const partial = this.pos - this.start;
    const size = Math.max(CHUNK_BYTES, (partial + n) * 2);
    // Only chunks of the usual size are reused; a larger one (a message over 128 KiB) is not kept.
    const next = (size === CHUNK_BYTES ? this.spare.pop() : undefined) ?? Buffer.allocUnsafe(size);
    this.chunk.copy(next, 0, this.start, this.pos);
    this.chunkLease.seal();
    this.chunk = next;
    this.chunkLease = new PayloadLease(next, size === CHUNK_BYTES ? this.spare : null);
    this.start = 0;
    this.pos = partial;
  }
}
