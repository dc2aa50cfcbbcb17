/**
 * Reads the PubAcks of the publisher's reply subscription straight off the connection's bytes.
 * nats-core parses every incoming `MSG` byte by byte through a state machine, splits its
 * arguments into subarrays, builds an event, a MsgImpl and decodes its subject with a
 * TextDecoder, all to hand the publisher a ~30-byte `{"stream":…,"seq":N}` (profile of 30k
 * single-row transactions: ≈14% of the daemon's busy time in nats-core). Here the connection's
 * `parser` is wrapped: a complete `MSG <inbox>.<batch> <sid> <size>` frame (nats-server writes two
 * spaces before the size: an empty reply) of the reply
 * subscription goes to `onAck(batch, bytes, start, end)` directly; every other frame (HMSG such as a 503
 * status, PING, INFO, -ERR, other subscriptions' messages) is handed, whole and in order, to the
 * client's own parser; a frame split across reads is kept until it is complete. When the client's
 * internals are not as expected nothing is installed and the subscription's callback gets every ack.
 */

/** What is used of nats-core's ProtocolHandler: its parser (replaced on every reconnect) and counters. */
interface ParserHost {
  parser: { parse(buf: Uint8Array): void };
  inMsgs?: number;
  inBytes?: number;
}

const CR = 0x0d;
const NL = 0x0a;
const SPACE = 0x20;

/** An ack of batch `batch`: its payload is buf[start..end) (valid during the call only). */
export type AckHandler = (batch: number, buf: Uint8Array, start: number, end: number) => void;

export class NatsAckReader {
  /** The client's current parser (a new one after every reconnect). */
  private inner: { parse(buf: Uint8Array): void };
  /** Reads of a frame not yet complete, and the bytes the frame needs (-1: its line is not complete). */
  private carry: Buffer[] = [];
  private carryBytes = 0;
  private need = -1;
  private active = true;
  /** Acks delivered by this reader (not through the client's parser): for tests and debugging. */
  direct = 0;
  /** Set after the rest of a read went to the client's parser unframed: it reads everything from then on. */
  private delegating = false;
  private readonly prefix: Buffer;

  private constructor(
    private readonly host: ParserHost,
    private readonly sid: number,
    inbox: string,
    private readonly subscription: { received?: number },
    private readonly onAck: AckHandler,
  ) {
    this.inner = host.parser;
    this.prefix = Buffer.from(`${inbox}.`, 'latin1');
  }

  /**
   * Wraps the parser of nats-core connection `nc` for subscription `sub` on `<inbox>.*`; null
   * (nothing changed) when the connection or subscription is not shaped as expected.
   */
  static install(nc: unknown, sub: unknown, inbox: string, onAck: AckHandler): NatsAckReader | null {
    const host = (nc as { protocol?: unknown }).protocol as Partial<ParserHost> | undefined;
    const sid = (sub as { sid?: unknown }).sid;
    if (host === undefined || host === null || typeof sid !== 'number' || !Number.isSafeInteger(sid) || sid <= 0) return null;
    const descriptor = Object.getOwnPropertyDescriptor(host, 'parser');
    if (descriptor === undefined || !('value' in descriptor) || !descriptor.writable || !descriptor.configurable) return null;
    const parser = descriptor.value as { parse?: unknown } | undefined;
    if (parser === undefined || parser === null || typeof parser.parse !== 'function') return null;
    if (!/^[A-Za-z0-9_.-]+$/.test(inbox)) return null;
    const reader = new NatsAckReader(host as ParserHost, sid, inbox, sub as { received?: number }, onAck);
    const wrapper = { parse: (buf: Uint8Array) => reader.parse(buf) };
    Object.defineProperty(host, 'parser', {
      configurable: true,
      enumerable: descriptor.enumerable ?? true,
      get: () => (reader.active ? wrapper : reader.inner),
      set: (next: { parse(buf: Uint8Array): void }) => {
        // resetOutbound() (a reconnect): a fresh parser, and the bytes of the old connection are gone.
        reader.inner = next;
        reader.delegating = false;
        reader.dropCarry();
      },
    });
    return reader;
  }

  /** Restores the client's parser as a plain property; what is carried goes to it. */
  uninstall(): void {
    if (!this.active) return;
    this.active = false;
    const pending = this.carry;
    this.dropCarry();
    Object.defineProperty(this.host, 'parser', { configurable: true, enumerable: true, writable: true, value: this.inner });
    for (const buf of pending) this.inner.parse(buf);
  }

  private dropCarry(): void {
    this.carry = [];
    this.carryBytes = 0;
    this.need = -1;
  }

  private parse(chunk: Uint8Array): void {
    if (this.delegating) return this.inner.parse(chunk);
    let buf: Uint8Array = chunk;
    if (this.carryBytes > 0) {
      this.carry.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      this.carryBytes += chunk.length;
      if (this.need > 0 && this.carryBytes < this.need) return;
      buf = Buffer.concat(this.carry, this.carryBytes);
      this.dropCarry();
    }
    const n = buf.length;
    let p = 0;
    while (p < n) {
      const nl = buf.indexOf(NL, p);
      if (nl < 0) return this.keep(buf, p, -1);
      const op = buf[p]! | 0x20; // lower case
      if (op === 0x6d /* m */) {
        const end = this.msg(buf, p, nl);
        if (end < 0) return this.handOff(buf, p); // not a MSG line: the client's parser says what is wrong
        if (end > n) return this.keep(buf, p, end - p);
        p = end;
      } else if (op === 0x68 /* h */) {
        // HMSG <subject> <sid> [reply] <header bytes> <total bytes>: the last argument is the size.
        const size = lastNumber(buf, p, nl);
        if (size < 0) return this.handOff(buf, p);
        const end = nl + 1 + size + 2;
        if (end > n) return this.keep(buf, p, end - p);
        this.inner.parse(buf.subarray(p, end));
        p = end;
      } else if (op === 0x70 /* p */ || op === 0x69 /* i */ || buf[p] === 0x2b /* + */ || buf[p] === 0x2d /* - */) {
        this.inner.parse(buf.subarray(p, nl + 1)); // PING, PONG, INFO, +OK, -ERR: one line
        p = nl + 1;
      } else {
        return this.handOff(buf, p);
      }
    }
  }

  /** Something this reader does not frame: the client's parser reads from here on (until a reconnect). */
  private handOff(buf: Uint8Array, p: number): void {
    this.delegating = true;
    this.inner.parse(buf.subarray(p));
  }

  /** Keeps buf[p..] until `need` bytes (or, with -1, a complete line) are there. */
  private keep(buf: Uint8Array, p: number, need: number): void {
    const rest = buf.subarray(p);
    this.carry = [Buffer.from(rest.buffer, rest.byteOffset, rest.byteLength)];
    this.carryBytes = rest.length;
    this.need = need;
  }

  /**
   * A MSG frame at p (line ends at nl): delivers it when it is a complete ack of the reply
   * subscription, else hands it to the client's parser when complete. Returns where the frame
   * ends (possibly beyond the buffer: not complete yet), or -1 when the line is no MSG line.
   */
  private msg(buf: Uint8Array, p: number, nl: number): number {
    const size = lastNumber(buf, p, nl);
    if (size < 0) return -1;
    const start = nl + 1;
    const end = start + size + 2;
    if (end > buf.length) return end;
    const batch = this.ack(buf, p, nl);
    if (batch < 0 || buf[end - 2] !== CR || buf[end - 1] !== NL) {
      this.inner.parse(buf.subarray(p, end));
      return end;
    }
    const host = this.host;
    if (typeof host.inMsgs === 'number') host.inMsgs++;
    if (typeof host.inBytes === 'number') host.inBytes += size;
    if (typeof this.subscription.received === 'number') this.subscription.received++;
    this.direct++;
    this.onAck(batch, buf, start, start + size);
    return end;
  }

  /** The batch number of `MSG <inbox>.<batch> <sid> <size>\r` at p when sid is the reply subscription's; else -1. */
  private ack(buf: Uint8Array, p: number, nl: number): number {
    if (buf[p + 1]! !== 0x53 || buf[p + 2]! !== 0x47 || buf[p + 3]! !== SPACE) return -1; // "MSG "
    let i = p + 4;
    const prefix = this.prefix;
    const plen = prefix.length;
    if (i + plen >= nl) return -1;
    for (let k = 0; k < plen; k++) if (buf[i + k] !== prefix[k]) return -1;
    i += plen;
    let batch = 0;
    const digitsFrom = i;
    for (let b = buf[i]!; b >= 0x30 && b <= 0x39; b = buf[++i]!) batch = batch * 10 + (b - 0x30);
    if (i === digitsFrom || i - digitsFrom > 15 || buf[i] !== SPACE) return -1;
    i++;
    let sid = 0;
    const sidFrom = i;
    for (let b = buf[i]!; b >= 0x30 && b <= 0x39; b = buf[++i]!) sid = sid * 10 + (b - 0x30);
    if (i === sidFrom || sid !== this.sid || buf[i] !== SPACE) return -1;
    // Then only the size (no reply subject; nats-server writes its empty place as a second space) and CR.
    while (buf[++i] === SPACE);
    const sizeFrom = i;
    for (let b = buf[i]!; b >= 0x30 && b <= 0x39; b = buf[++i]!);
    return i > sizeFrom && buf[i] === CR && i + 1 === nl ? batch : -1;
  }
}

/** The decimal number that ends the line p..nl (before an optional CR), after a space; -1 if none. */
function lastNumber(buf: Uint8Array, p: number, nl: number): number {
  let i = nl - 1;
  if (i >= p && buf[i] === CR) i--;
  let value = 0;
  let scale = 1;
  const last = i;
  for (; i > p; i--) {
    const b = buf[i]!;
    if (b < 0x30 || b > 0x39) break;
    value += (b - 0x30) * scale;
    scale *= 10;
  }
  if (i === last || last - i > 9 || (buf[i] !== SPACE && buf[i] !== 0x09)) return -1;
  return value;
}
