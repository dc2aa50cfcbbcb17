/**
 * AMQP 0-9-1 basic.publish frames for a batch, written as bytes straight to the connection's
 * socket: per message a method frame (exchange, routing key), a content header frame (the
 * properties of rabbitmq-message.ts) and body frames of at most `frameMax` bytes.
 *
 * Why not amqplib's `publish()`: per message it builds an options object and a headers object,
 * encodes the method, the properties and the body into three fresh buffers, joins them into a
 * fourth, queues that in the channel's stream and copies it out again into one socket write per
 * turn. On a catch-up that was 65% of the daemon's CPU (profile: the header table encoder alone
 * 17%) and most of its garbage. Here a batch costs one buffer, reused once the socket has taken
 * it, and one corked writev; payloads of 2 KB and more are chunks of their own, not copied, each
 * holding its chunk until the socket wrote it (spare-piece.ts writeHeld).
 *
 * Change events (the hot path) have their properties written here: contentType, the headers `lsn`,
 * `table` and `action` as long strings, deliveryMode 2 and messageId, the bytes amqplib writes for
 * the same options (a unit test compares them with amqplib's encoder). Routed messages (outbox,
 * PgQ: their own properties and typed headers) have their content header encoded by amqplib's own
 * encoder, so they are sent exactly as amqplib would send them.
 *
 * A batch is checked before anything is written: a message amqplib would refuse (an exchange,
 * routing key or shortstr property over 255 bytes, headers over 64 KiB, a property of the wrong
 * type) makes the whole batch unsent, with its index.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { payloadBuffer, type OutboundMessage } from '../pipeline/message.js';
import { exchangeOf, isRouted, publishOptions } from './rabbitmq-message.js';
import { SparePiece, writeHeld } from './spare-piece.js';

/** What is used of the connection's net.Socket / TLSSocket. */
export interface AmqpSocket {
  readonly writableLength: number;
  readonly writable: boolean;
  readonly destroyed: boolean;
  cork(): void;
  uncork(): void;
  write(chunk: Uint8Array, done?: () => void): boolean;
}

/** Outcome of writing a batch: sent, or message `index` cannot be sent (nothing was sent). */
export type AmqpFramesResult = { sent: true } | { sent: false; index: number; reason: string };

const FRAME_METHOD = 1;
const FRAME_HEADER = 2;
const FRAME_BODY = 3;
const FRAME_END = 0xce;
/** Frame type, channel and size, then the frame end. */
const FRAME_OVERHEAD = 8;
/** basic (60) publish (40), as one 32-bit word. */
const BASIC_PUBLISH = (60 << 16) | 40;
/** basic (60), weight 0, as one 32-bit word. */
const BASIC_HEADER = 60 << 16;
/** Property flags of a change event: contentType, headers, deliveryMode, messageId. */
const CHANGE_EVENT_FLAGS = 0x8000 | 0x2000 | 0x1000 | 0x0080;
const CONTENT_TYPE = Buffer.from('application/json', 'latin1');
const HEADER_LSN = Buffer.from('\x03lsnS', 'latin1');
const HEADER_TABLE = Buffer.from('\x05tableS', 'latin1');
const HEADER_ACTION = Buffer.from('\x06actionS', 'latin1');
/** Payloads of at least this many bytes are handed to the socket as they are (see the file header). */
const DIRECT_PAYLOAD_BYTES = 2048;

/** amqplib's own encoders (its package exports do not name the files; they are found beside its entry point). */
interface AmqplibEncoders {
  publishArgs(exchange: string, routingKey: string, options: object): object;
  encodeProperties(channel: number, size: number, fields: object): Buffer;
}

let encoders: AmqplibEncoders | undefined;

function amqplibEncoders(): AmqplibEncoders {
  if (encoders !== undefined) return encoders;
  const require = createRequire(import.meta.url);
  const lib = join(dirname(require.resolve('amqplib')), 'lib');
  const defs = require(join(lib, 'defs.js')) as { encodeProperties?: unknown; BasicProperties?: unknown };
  const args = require(join(lib, 'api_args.js')) as { publish?: unknown };
  if (typeof defs.encodeProperties !== 'function' || typeof defs.BasicProperties !== 'number' || typeof args.publish !== 'function') {
    throw new Error('amqplib has no encodeProperties/BasicProperties in lib/defs.js or publish in lib/api_args.js (an unsupported amqplib version)');
  }
  const encodeProperties = defs.encodeProperties as (id: number, channel: number, size: number, fields: object) => Buffer;
  const basicProperties = defs.BasicProperties;
  encoders = {
    publishArgs: args.publish as AmqplibEncoders['publishArgs'],
    encodeProperties: (channel, size, fields) => encodeProperties(basicProperties, channel, size, fields),
  };
  return encoders;
}

/** A message's frames up to its body: the method frame and the content header frame. */
interface Head {
  exchange: Buffer;
  routingKey: Buffer;
  /** A routed message's content header frame (amqplib's); null for a change event (written here). */
  header: Buffer | null;
  /** A change event's message id, `<schema>.<table>`, LSN and action (see Text). */
  id: Text | null;
  table: Text | null;
  lsn: Text | null;
  action: Text | null;
  /** Bytes of a change event's properties after the flags (0 for a routed message). */
  properties: number;
}

/** Text to write: an ASCII string as it is (its length is its byte count), any other as its UTF-8 bytes. */
type Text = string | Buffer;

function textOf(value: string): Text {
  for (let i = 0; i < value.length; i++) if (value.charCodeAt(i) > 0x7f) return Buffer.from(value, 'utf8');
  return value;
}

export class AmqpFrameWriter {
  /** Exchange names and routing keys as bytes: they repeat (a routing key per table). */
  private readonly names = new Map<string, Buffer>();
  /** The last table and LSN written (a batch is mostly one transaction, often one table). */
  private lastSchema = '';
  private lastTable = '';
  private lastTableText: Text | null = null;
  private lastLsn = '';
  private lastLsnText: Text = '';
  private readonly pieces = new SparePiece();
  /** Loaded when the writer is made, so that an amqplib without them fails the connect, not a message. */
  private readonly encoders = amqplibEncoders();

  /**
   * @param channel the channel number
   * @param frameMax the negotiated frame size limit (body frames carry at most frameMax - 8 bytes)
   */
  constructor(
    private readonly socket: AmqpSocket,
    private readonly channel: number,
    private readonly frameMax: number,
    private readonly topic: string,
  ) {}

  /** Writes every message of `batch`, in order, or none when one of them cannot be sent. */
  write(batch: readonly OutboundMessage[]): AmqpFramesResult {
    const n = batch.length;
    const heads: Head[] = new Array(n);
    const payloads: Buffer[] = new Array(n);
    let copied = 0;
    for (let i = 0; i < n; i++) {
      const message = batch[i]!;
      const payload = payloadBuffer(message);
      const head = this.head(message, payload.length);
      if (typeof head === 'string') return { sent: false, index: i, reason: head };
      heads[i] = head;
      payloads[i] = payload;
      copied += this.headBytes(head) + this.bodyFrames(payload.length) * FRAME_OVERHEAD + (payload.length < DIRECT_PAYLOAD_BYTES ? payload.length : 0);
    }
    const piece = this.pieces.take(copied);
    const socket = this.socket;
    const maxBody = this.frameMax - FRAME_OVERHEAD;
    let pos = 0;
    let start = 0;
    socket.cork();
    try {
      for (let i = 0; i < n; i++) {
        const payload = payloads[i]!;
        pos = this.writeHead(piece, pos, heads[i]!, payload.length);
        const direct = payload.length >= DIRECT_PAYLOAD_BYTES;
        const lease = direct ? batch[i]!.lease : undefined;
        for (let from = 0; from < payload.length; from += maxBody) {
          const to = Math.min(from + maxBody, payload.length);
          piece[pos] = FRAME_BODY;
          piece.writeUInt16BE(this.channel, pos + 1);
          piece.writeUInt32BE(to - from, pos + 3);
          pos += 7;
          if (direct) {
            socket.write(piece.subarray(start, pos));
            writeHeld(socket, payload.subarray(from, to), lease);
            start = pos;
          } else pos += payload.copy(piece, pos, from, to);
          piece[pos++] = FRAME_END;
        }
      }
      if (pos > start) socket.write(piece.subarray(start, pos));
    } finally {
      socket.uncork();
    }
    this.pieces.giveBack(piece, socket.writableLength === 0);
    return { sent: true };
  }

  /** A message's exchange, routing key and properties as bytes, or why amqplib would refuse it. */
  private head(message: OutboundMessage, size: number): Head | string {
    const exchangeName = exchangeOf(message, this.topic);
    const exchange = this.shortstr(exchangeName);
    if (exchange === null) return `the exchange name ${JSON.stringify(exchangeName)} is longer than 255 bytes`;
    const routingKey = this.shortstr(message.subject);
    if (routingKey === null) return `the routing key ${JSON.stringify(message.subject)} is longer than 255 bytes`;
    if (isRouted(message)) {
      try {
        const { publishArgs, encodeProperties } = this.encoders;
        const header = encodeProperties(this.channel, size, publishArgs(exchangeName, message.subject, publishOptions(message)));
        return { exchange, routingKey, header, id: null, table: null, lsn: null, action: null, properties: 0 };
      } catch (err) {
        return err instanceof Error ? err.message : String(err);
      }
    }
    const id = textOf(message.id);
    if (id.length > 255) return `the message id is longer than 255 bytes`;
    if (this.lastTableText === null || message.schema !== this.lastSchema || message.table !== this.lastTable) {
      this.lastSchema = message.schema;
      this.lastTable = message.table;
      this.lastTableText = textOf(`${message.schema}.${message.table}`);
    }
    if (message.lsn !== this.lastLsn) {
      this.lastLsn = message.lsn;
      this.lastLsnText = textOf(message.lsn);
    }
    const table = this.lastTableText;
    const lsn = this.lastLsnText;
    const action = textOf(message.action);
    const headers = 4 + HEADER_LSN.length + 4 + lsn.length + HEADER_TABLE.length + 4 + table.length + HEADER_ACTION.length + 4 + action.length;
    const properties = 1 + CONTENT_TYPE.length + headers + 1 + 1 + id.length;
    return { exchange, routingKey, header: null, id, table, lsn, action, properties };
  }

  /** Bytes of the method and content header frames. */
  private headBytes(head: Head): number {
    const method = FRAME_OVERHEAD + 9 + head.exchange.length + head.routingKey.length;
    if (head.header !== null) return method + head.header.length;
    return method + FRAME_OVERHEAD + 14 + head.properties;
  }

  private bodyFrames(bytes: number): number {
    return Math.ceil(bytes / (this.frameMax - FRAME_OVERHEAD));
  }

  /** Writes the method frame and the content header frame of a message. */
  private writeHead(buf: Buffer, pos: number, head: Head, size: number): number {
    const channel = this.channel;
    buf[pos] = FRAME_METHOD;
    buf.writeUInt16BE(channel, pos + 1);
    buf.writeUInt32BE(9 + head.exchange.length + head.routingKey.length, pos + 3);
    buf.writeUInt32BE(BASIC_PUBLISH, pos + 7);
    buf[pos + 11] = 0; // ticket (reserved), 16 bits
    buf[pos + 12] = 0;
    pos = writeShortstr(buf, pos + 13, head.exchange);
    pos = writeShortstr(buf, pos, head.routingKey);
    buf[pos++] = 0; // mandatory, immediate: no
    buf[pos++] = FRAME_END;
    if (head.header !== null) return pos + head.header.copy(buf, pos);
    buf[pos] = FRAME_HEADER;
    buf.writeUInt16BE(channel, pos + 1);
    buf.writeUInt32BE(14 + head.properties, pos + 3);
    buf.writeUInt32BE(BASIC_HEADER, pos + 7);
    // Body size, 64 bits: payloads are far below 2^32.
    buf.writeUInt32BE(Math.floor(size / 0x1_0000_0000), pos + 11);
    buf.writeUInt32BE(size >>> 0, pos + 15);
    buf.writeUInt16BE(CHANGE_EVENT_FLAGS, pos + 19);
    pos = writeShortstr(buf, pos + 21, CONTENT_TYPE);
    const tableAt = pos;
    pos += 4;
    pos = writeEntry(buf, pos, HEADER_LSN, head.lsn!);
    pos = writeEntry(buf, pos, HEADER_TABLE, head.table!);
    pos = writeEntry(buf, pos, HEADER_ACTION, head.action!);
    buf.writeUInt32BE(pos - tableAt - 4, tableAt);
    buf[pos++] = 2; // deliveryMode: persistent
    pos = writeShortstr(buf, pos, head.id!);
    buf[pos++] = FRAME_END;
    return pos;
  }

  /** A name as bytes, or null when it does not fit a shortstr. */
  private shortstr(name: string): Buffer | null {
    const bytes = this.name(name);
    return bytes.length > 255 ? null : bytes;
  }

  private name(name: string): Buffer {
    let bytes = this.names.get(name);
    if (bytes === undefined) {
      bytes = Buffer.from(name, 'utf8');
      if (this.names.size >= 10_000) this.names.clear();
      this.names.set(name, bytes);
    }
    return bytes;
  }
}

function writeShortstr(buf: Buffer, pos: number, text: Text): number {
  buf[pos++] = text.length;
  return writeText(buf, pos, text);
}

/** A header table entry: its name and type ('S', long string) as prepared bytes, then the value. */
function writeEntry(buf: Buffer, pos: number, nameAndType: Buffer, value: Text): number {
  pos = writeText(buf, pos, nameAndType);
  buf.writeUInt32BE(value.length, pos);
  return writeText(buf, pos + 4, value);
}

/** Up to this many bytes, a loop copies faster than a native call (as in JsonOut). */
const SHORT = 48;

function writeText(buf: Buffer, pos: number, text: Text): number {
  const n = text.length;
  if (typeof text === 'string') {
    for (let i = 0; i < n; i++) buf[pos++] = text.charCodeAt(i);
    return pos;
  }
  if (n > SHORT) return pos + text.copy(buf, pos);
  for (let i = 0; i < n; i++) buf[pos++] = text[i]!;
  return pos;
}
