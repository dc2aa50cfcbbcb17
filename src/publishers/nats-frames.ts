/**
 * NATS protocol frames for a batch, written as bytes straight into large buffers: per message
 * `HPUB <subject> <reply> <header bytes> <total bytes>\r\n`, the headers (`Nats-Msg-Id`), the
 * payload and `\r\n`. nats-core's `publish()` encodes the protocol line and headers per message
 * with a TextEncoder and joins one buffer per message into the next socket write again
 * (DataBuffer.pack): ≈30% of the daemon's CPU on a NATS catch-up (profile). Here a batch costs a
 * few buffers and one socket write per ~256 KB (and one for the rest of the batch), handed to the client's protocol handler in order
 * with everything else it sends (SUB, PING), so reconnect buffering works as for `publish()`.
 * A batch with large payloads (TOASTed rows: 8 KB events) goes, while connected and nothing else
 * is queued, straight to the socket in one corked writev with its payloads as chunks of their
 * own: they are not copied again, and each holds its chunk until the socket wrote it
 * (spare-piece.ts writeHeld). Everything else is copied.
 */
import { headers as natsHeaders } from '@nats-io/transport-node';
import { payloadBuffer, type OutboundMessage } from '../pipeline/message.js';
import { PIECE_BYTES, SparePiece, writeHeld } from './spare-piece.js';

/** What is used of nats-core's ProtocolHandler (`nc.protocol`, stable across 3.x). */
export interface NatsProtocol {
  sendCommand(cmd: Uint8Array): void;
  /** Writes what is queued to the socket now (when connected; else it stays queued for the reconnect). */
  flushPending(): void;
  outMsgs: number;
  outBytes: number;
  /** What is queued and not yet handed to the socket. */
  outbound?: { size(): number };
  /** The transport's socket (transport-node): how much it still holds; written to directly (see writeDirect). */
  transport?: { socket?: DirectSocket; isClosed?: boolean; done?: boolean };
  connected?: boolean;
  infoReceived?: boolean;
}

/** What is used of the transport's net.Socket / TLSSocket. */
interface DirectSocket {
  writableLength?: number;
  writable?: boolean;
  destroyed?: boolean;
  cork?(): void;
  uncork?(): void;
  write?(chunk: Uint8Array, done?: () => void): boolean;
}

/** Outcome of writing a batch: sent, or message `index` cannot be sent (nothing was sent). */
export type FramesResult = { sent: true } | { sent: false; index: number; reason: string };

const HEADER_START = Buffer.from('NATS/1.0\r\nNats-Msg-Id: ', 'latin1');
const CRLF2 = 0x0d0a0d0a;
/** `HPUB ` + ` ` ×3 + two 10-digit numbers + CRLF, then the trailing CRLF. */
const LINE_OVERHEAD = 5 + 3 + 20 + 2 + 2;
const WHITESPACE = /[\s]/;
/**
 * Payloads of at least this many bytes are not copied into the frame buffer but handed to the
 * socket as they are (one writev with the frame bytes around them), when the socket can be
 * written to directly. Below it a copy is cheaper than a chunk of its own.
 */
const DIRECT_PAYLOAD_BYTES = 2048;

export class NatsFrameWriter {
  /** Subject → its UTF-8 bytes (subjects repeat: one per table). */
  private readonly subjects = new Map<string, Buffer | null>();
  private readonly pieces = new SparePiece();

  constructor(private readonly protocol: NatsProtocol) {}

  /** nats-core's ProtocolHandler of a connection, when it has the shape this writer needs. */
  static protocolOf(nc: unknown): NatsProtocol | null {
    const protocol = (nc as { protocol?: Partial<NatsProtocol> }).protocol;
    const usable = protocol !== undefined && typeof protocol.sendCommand === 'function' && typeof protocol.flushPending === 'function' && typeof protocol.outMsgs === 'number';
    return usable ? (protocol as NatsProtocol) : null;
  }

  /**
   * Writes every message of `batch` with reply subject `reply`, or none when one of them cannot
   * be sent (over `maxPayload`, or a subject NATS refuses): the client would refuse it the same way.
   */
  write(batch: readonly OutboundMessage[], reply: string, maxPayload: number): FramesResult {
    const replyBytes = Buffer.from(reply, 'utf8');
    const n = batch.length;
    const subjects: Buffer[] = new Array(n);
    const payloads: Buffer[] = new Array(n);
    const general: (Uint8Array | null)[] = new Array(n);
    const sizes: number[] = new Array(n);
    let large = 0;
    for (let i = 0; i < n; i++) {
      const message = batch[i]!;
      const subject = this.subject(message.subject);
      if (subject === null) return { sent: false, index: i, reason: `NATS refuses subject ${JSON.stringify(message.subject)}` };
      const payload = payloadBuffer(message);
      const headers = message.headers === null ? null : generalHeaders(message);
      const headerBytes = headers === null ? HEADER_START.length + message.id.length + 4 : headers.length;
      if (headerBytes + payload.length > maxPayload) {
        return { sent: false, index: i, reason: `NATS refuses a message of ${payload.length} bytes (over the server's max_payload of ${maxPayload} bytes)` };
      }
      subjects[i] = subject;
      payloads[i] = payload;
      if (payload.length >= DIRECT_PAYLOAD_BYTES) large++;
      general[i] = headers;
      sizes[i] = LINE_OVERHEAD + subject.length + replyBytes.length + headerBytes + payload.length;
    }
    if (large > 0) {
      const socket = this.directSocket();
      if (socket !== null) {
        this.writeDirect(socket, batch, replyBytes, subjects, payloads, general, sizes);
        return { sent: true };
      }
    }
    let bytes = 0;
    let i = 0;
    while (i < n) {
      // One piece: messages up to PIECE_BYTES (at least one), in one buffer.
      let size = sizes[i]!;
      let end = i + 1;
      while (end < n && size + sizes[end]! <= PIECE_BYTES) size += sizes[end++]!;
      const piece = this.pieces.take(size);
      let pos = 0;
      for (; i < end; i++) pos = writeFrame(piece, pos, subjects[i]!, replyBytes, batch[i]!.id, general[i]!, payloads[i]!);
      bytes += pos;
      // Each piece goes out now, alone: sendCommand only queues into an empty outbound buffer, and
      // a piece queued behind another is joined to it by another copy (DataBuffer.pack).
      this.protocol.sendCommand(piece.subarray(0, pos));
      this.protocol.flushPending();
      this.pieces.giveBack(piece, this.writtenOut());
    }
    this.protocol.outMsgs += n;
    this.protocol.outBytes += bytes;
    return { sent: true };
  }

  /**
   * The transport's socket when frames can go to it directly: connected, nothing queued in the
   * client's outbound buffer (so what the client wrote before is already in the socket, in order).
   * Else null: the frames go through the client's protocol handler, which keeps them for a reconnect.
   */
  private directSocket(): Required<Pick<DirectSocket, 'cork' | 'uncork' | 'write'>> | null {
    const protocol = this.protocol;
    const transport = protocol.transport;
    const socket = transport?.socket;
    if (socket === undefined || protocol.connected !== true || protocol.infoReceived !== true || protocol.outbound?.size() !== 0) return null;
    if (transport!.isClosed !== false || transport!.done !== false || socket.destroyed !== false || socket.writable !== true) return null;
    if (typeof socket.cork !== 'function' || typeof socket.uncork !== 'function' || typeof socket.write !== 'function') return null;
    return socket as Required<Pick<DirectSocket, 'cork' | 'uncork' | 'write'>>;
  }

  /**
   * Writes the batch to the socket in one corked writev: frame bytes in one buffer, payloads of
   * DIRECT_PAYLOAD_BYTES and more as chunks of their own (not copied; the socket holds them until
   * written), the others copied.
   */
  private writeDirect(
    socket: Required<Pick<DirectSocket, 'cork' | 'uncork' | 'write'>>,
    batch: readonly OutboundMessage[],
    replyBytes: Buffer,
    subjects: Buffer[],
    payloads: Buffer[],
    general: (Uint8Array | null)[],
    sizes: number[],
  ): void {
    const n = batch.length;
    let copied = 0;
    let uncopied = 0;
    for (let i = 0; i < n; i++) {
      const size = sizes[i]!;
      const payloadBytes = payloads[i]!.length;
      if (payloadBytes >= DIRECT_PAYLOAD_BYTES) {
        copied += size - payloadBytes;
        uncopied += payloadBytes;
      } else copied += size;
    }
    const piece = this.pieces.take(copied);
    let pos = 0;
    let start = 0;
    socket.cork();
    try {
      for (let i = 0; i < n; i++) {
        const payload = payloads[i]!;
        if (payload.length < DIRECT_PAYLOAD_BYTES) {
          pos = writeFrame(piece, pos, subjects[i]!, replyBytes, batch[i]!.id, general[i]!, payload);
          continue;
        }
        const message = batch[i]!;
        pos = writeHead(piece, pos, subjects[i]!, replyBytes, message.id, general[i]!, payload.length);
        socket.write(piece.subarray(start, pos));
        writeHeld(socket, payload, message.lease);
        start = pos;
        piece[pos++] = 0x0d;
        piece[pos++] = 0x0a;
      }
      if (pos > start) socket.write(piece.subarray(start, pos));
    } finally {
      socket.uncork();
    }
    this.protocol.outMsgs += n;
    this.protocol.outBytes += pos + uncopied;
    this.pieces.giveBack(piece, this.writtenOut());
  }

  /** True when nothing is queued and the socket holds nothing: the last piece was copied to the kernel. */
  private writtenOut(): boolean {
    const queued = this.protocol.outbound?.size();
    const held = this.protocol.transport?.socket?.writableLength;
    return queued === 0 && held === 0;
  }

  private subject(subject: string): Buffer | null {
    let bytes = this.subjects.get(subject);
    if (bytes === undefined) {
      bytes = subject.length === 0 || WHITESPACE.test(subject) ? null : Buffer.from(subject, 'utf8');
      if (this.subjects.size >= 10_000) this.subjects.clear();
      this.subjects.set(subject, bytes);
    }
    return bytes;
  }
}

/** A routed message's headers (Nats-Msg-Id, `key`, its own), encoded by nats-core. */
function generalHeaders(message: OutboundMessage): Uint8Array {
  const h = natsHeaders();
  h.set('Nats-Msg-Id', message.id);
  if (message.keyHeader && message.key) h.set('key', message.key);
  for (const [name, value] of Object.entries(message.headers ?? {})) h.append(name, value);
  // MsgHdrsImpl (what headers() returns) encodes itself; the interface does not declare it.
  return (h as unknown as { encode(): Uint8Array }).encode();
}

function writeFrame(buf: Buffer, pos: number, subject: Buffer, reply: Buffer, id: string, headers: Uint8Array | null, payload: Buffer): number {
  pos = writeHead(buf, pos, subject, reply, id, headers, payload.length);
  buf.set(payload, pos);
  pos += payload.length;
  buf[pos++] = 0x0d;
  buf[pos++] = 0x0a;
  return pos;
}

/** A frame up to its payload: the HPUB line and the headers. */
function writeHead(buf: Buffer, pos: number, subject: Buffer, reply: Buffer, id: string, headers: Uint8Array | null, payloadBytes: number): number {
  const headerBytes = headers === null ? HEADER_START.length + id.length + 4 : headers.length;
  buf[pos++] = 0x48; // H
  buf[pos++] = 0x50; // P
  buf[pos++] = 0x55; // U
  buf[pos++] = 0x42; // B
  buf[pos++] = 0x20;
  pos += subject.copy(buf, pos);
  buf[pos++] = 0x20;
  pos += reply.copy(buf, pos);
  buf[pos++] = 0x20;
  pos = writeDecimal(buf, pos, headerBytes);
  buf[pos++] = 0x20;
  pos = writeDecimal(buf, pos, headerBytes + payloadBytes);
  buf[pos++] = 0x0d;
  buf[pos++] = 0x0a;
  if (headers === null) {
    pos += HEADER_START.copy(buf, pos);
    // Event ids are ASCII (UUIDs).
    for (let k = 0; k < id.length; k++) buf[pos++] = id.charCodeAt(k);
    buf.writeUInt32BE(CRLF2, pos);
    pos += 4;
  } else {
    buf.set(headers, pos);
    pos += headers.length;
  }
  return pos;
}

function writeDecimal(buf: Buffer, pos: number, value: number): number {
  if (value < 10) {
    buf[pos] = 0x30 + value;
    return pos + 1;
  }
  let digits = 0;
  for (let v = value; v > 0; v = Math.floor(v / 10)) digits++;
  let end = pos + digits;
  for (let v = value; v > 0; v = Math.floor(v / 10)) buf[--end] = 0x30 + (v % 10);
  return pos + digits;
}
