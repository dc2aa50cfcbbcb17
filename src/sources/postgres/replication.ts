/**
 * The replication connection: a `pg` client opened with `replication: 'database'`, switched into
 * CopyBoth mode by START_REPLICATION. Frames go to a callback as byte ranges of the bytes read
 * (decoding is pgoutput.ts's job); standby status updates go back on the same socket.
 *
 * The stream's CopyData messages (three per single-row transaction) are cut from the socket's
 * bytes here (CopyDataFramer) and handed over in place, instead of going through pg's message
 * parser and its events (a message object, a Buffer and an event per frame). Every other message
 * (CopyBothResponse, CopyDone, CommandComplete, ErrorResponse, notices, ...) still goes to pg,
 * whole and in order, so pg runs the command as before.
 * Protocol: https://www.postgresql.org/docs/current/protocol-replication.html
 */
import { Socket } from 'node:net';
import type pg from 'pg';
import type { DatabaseConfig } from '../../config/schema.js';
import { WalListenerError } from '../../errors.js';
import { connectClient, REPLICATION_SESSION_OPTIONS } from './connection-options.js';
import type { PgNotice } from './errors.js';
import { formatLsn, type Lsn } from './pgoutput.js';

export interface SystemIdentity {
  systemId: string;
  timeline: number;
  /** Current WAL flush location of the server. */
  xlogPos: string;
  dbName: string;
}

interface CopyDataMessage {
  chunk: Buffer;
}

/** Internals of pg's Connection that the framer hooks (stable across pg 8.x). */
interface HookableConnection {
  attachListeners?(stream: NodeJS.ReadableStream): void;
}

/** Internals of pg's Client that the replication stream uses (stable across pg 8.x). */
interface RawConnection {
  on(event: 'copyData', listener: (message: CopyDataMessage) => void): void;
  once(event: 'replicationStart', listener: () => void): void;
  removeAllListeners(event: string): void;
  sendCopyFromChunk(chunk: Buffer): void;
  stream: NodeJS.ReadableStream & { pause(): void; resume(): void; destroy(): void; writable?: boolean };
}

const PG_EPOCH_MS = 946_684_800_000n;

/** Standby status update ('r'): write, flush and apply positions, the clock, and whether to reply. */
export function standbyStatus(written: Lsn, flushed: Lsn, replyRequested = false): Buffer {
  const buf = Buffer.allocUnsafe(34);
  buf[0] = 0x72; // r
  buf.writeBigUInt64BE(written, 1);
  buf.writeBigUInt64BE(flushed, 9);
  buf.writeBigUInt64BE(flushed, 17);
  buf.writeBigInt64BE((BigInt(Date.now()) - PG_EPOCH_MS) * 1000n, 25);
  buf[33] = replyRequested ? 1 : 0;
  return buf;
}

/**
 * Cuts the backend's messages out of the socket's bytes (1 type byte, a 4-byte length that counts
 * itself, the body). While `onCopyData` is set, CopyData bodies go to it as ranges of the bytes
 * read; every other message goes to `toPg` (pg's own 'data' listener), whole messages only and
 * in order, so pg's parser never holds part of a message (and, while streaming, sees no
 * CopyData). Installed before the socket has delivered a byte, so the first byte it sees starts
 * a message.
 */
export class CopyDataFramer {
  /** Where CopyData bodies go (bytes `start`–`end` of `bytes`); null: to pg, like every other message. */
  onCopyData: ((bytes: Buffer, start: number, end: number) => void) | null = null;
  /** The first bytes (fewer than the 5 of a header) of the next message. */
  private head: Buffer | null = null;
  /** A message longer than the bytes read so far: its buffer, filled up to `filled`. */
  private partial: Buffer | null = null;
  private filled = 0;
  /** A message length below 4: not this protocol; everything goes to pg from then on (it reports the error). */
  private broken = false;

  /** `toPg`: pg's parser (its 'data' listener). */
  constructor(private readonly toPg: (bytes: Buffer) => void) {}

  /** Bytes read from the socket. */
  push(chunk: Buffer): void {
    if (this.broken) {
      this.toPg(chunk);
      return;
    }
    let pos = 0;
    if (this.head !== null) {
      const need = 5 - this.head.length;
      if (chunk.length < need) {
        this.head = Buffer.concat([this.head, chunk]);
        return;
      }
      const header = Buffer.concat([this.head, chunk.subarray(0, need)]);
      this.head = null;
      const length = header.readUInt32BE(1);
      if (length < 4) {
        this.broken = true;
        this.toPg(header);
        if (chunk.length > need) this.toPg(chunk.subarray(need));
        return;
      }
      this.partial = Buffer.allocUnsafe(1 + length);
      this.filled = header.copy(this.partial, 0);
      pos = need;
    }
    if (this.partial !== null) {
      // The rest of a message begun in earlier reads: gathered in a buffer of its size (one copy,
      // however many reads it takes).
      const partial = this.partial;
      const n = Math.min(partial.length - this.filled, chunk.length - pos);
      this.filled += chunk.copy(partial, this.filled, pos, pos + n);
      pos += n;
      if (this.filled < partial.length) return;
      this.partial = null;
      const onCopyData = this.onCopyData;
      if (partial[0] === 0x64 /* d */ && onCopyData !== null) onCopyData(partial, 5, partial.length);
      else this.toPg(partial);
    }
    const end = chunk.length;
    /** Start of the messages not yet handed to pg. */
    let pgFrom = pos;
    while (end - pos >= 5) {
      const length = chunk.readUInt32BE(pos + 1);
      if (length < 4) {
        this.broken = true;
        this.toPg(chunk.subarray(pgFrom));
        return;
      }
      const next = pos + 1 + length;
      if (next > end) break;
      const onCopyData = this.onCopyData;
      if (chunk[pos] === 0x64 /* d */ && onCopyData !== null) {
        if (pgFrom < pos) this.toPg(chunk.subarray(pgFrom, pos));
        onCopyData(chunk, pos + 5, next);
        pgFrom = next;
      }
      pos = next;
    }
    if (pgFrom < pos) this.toPg(chunk.subarray(pgFrom, pos));
    if (pos === end) return;
    if (end - pos < 5) {
      this.head = Buffer.from(chunk.subarray(pos));
      return;
    }
    const partial = Buffer.allocUnsafe(1 + chunk.readUInt32BE(pos + 1));
    this.filled = chunk.copy(partial, 0, pos, end);
    this.partial = partial;
  }
}

/**
 * Sets up a CopyDataFramer between the socket and pg's parser of a client not yet connected (pg
 * attaches its parser in Connection.attachListeners, to the socket or, with TLS, to the TLS
 * stream, before either has delivered a byte). Returns a function that gives the framer once the
 * client is connected, or null when pg's internals were not as expected: then pg parses
 * everything, as without the framer.
 */
function installFramer(client: pg.Client, reads: ReusedReads | null): () => CopyDataFramer | null {
  const connection = (client as unknown as { connection?: HookableConnection }).connection;
  const attach = connection?.attachListeners;
  if (connection === undefined || typeof attach !== 'function') return () => null;
  let framer: CopyDataFramer | null = null;
  connection.attachListeners = function (this: HookableConnection, stream: NodeJS.ReadableStream) {
    attach.call(this, stream);
    const listeners = stream.listeners('data');
    if (framer !== null || listeners.length !== 1) return;
    const pgListener = listeners[0] as (bytes: Buffer) => void;
    // Bytes read into the reused buffer are overwritten by the next read: pg gets its own copy.
    const installed = new CopyDataFramer(reads ? (bytes) => pgListener(Buffer.from(bytes)) : pgListener);
    stream.removeListener('data', pgListener);
    // With reused reads no 'data' comes (ReusedReads hands each read over); the listener keeps the
    // stream flowing, so its 'end' still reaches pg.
    stream.on('data', (chunk: Buffer) => installed.push(chunk));
    reads?.deliverTo(installed);
    framer = installed;
  };
  return () => framer;
}

/** Bytes per read of the replication socket (Node's own reads take up to 64 KiB too). */
const READ_BYTES = 64 * 1024;

/**
 * The replication socket reads into one buffer, reused for every read (net.Socket's `onread`),
 * instead of a new 64 KiB buffer per read: on a catch-up of large rows that was most of the
 * memory allocated and freed per row. This holds because nothing keeps a reference to the bytes
 * of a read after it was handled (pgoutput.ts: "a tuple is valid until the next read"): the framer
 * copies what it keeps across reads and what it gives pg, the session copies frames it cannot
 * handle yet (its backlog), and values are written into the events' own buffers or copied.
 * With `sslMode: disable` (the default) only: over TLS the socket's bytes are not the messages,
 * and Node reads them (with `prefer`, a server without TLS gets a plain connection read that way too).
 */
class ReusedReads {
  private readonly buffer = Buffer.allocUnsafe(READ_BYTES);
  private made: Socket | null = null;
  /** The framer, once pg attached its listener; null until then, and for good when pg was not as expected. */
  private target: CopyDataFramer | null = null;

  /** The socket for pg (its `stream` option); pg attaches its listener before the first read. */
  socket(): Socket {
    // `onread` is a net.Socket constructor option (Node ≥ 12.2) that @types/node leaves out.
    const options = { onread: { buffer: this.buffer, callback: (n: number) => this.read(n) } };
    return (this.made = new Socket(options as ConstructorParameters<typeof Socket>[0]));
  }

  deliverTo(framer: CopyDataFramer | null): void {
    this.target = framer;
  }

  private read(n: number): void {
    const bytes = this.buffer.subarray(0, n);
    // Without a framer, pg's own 'data' listener reads, from a copy (its parser keeps what it has not parsed).
    if (this.target !== null) this.target.push(bytes);
    else this.made?.emit('data', Buffer.from(bytes));
  }
}

export class ReplicationConnection {
  private ended = false;

  private constructor(
    private readonly client: pg.Client,
    /** Null when pg's parser reads the stream (its internals were not as expected). */
    private readonly framer: CopyDataFramer | null,
    /** Whether the socket reads into one reused buffer (ReusedReads). */
    readonly reusedReadBuffer: boolean,
  ) {}

  static async open(db: DatabaseConfig): Promise<ReplicationConnection> {
    let framer: () => CopyDataFramer | null = () => null;
    const reads = db.sslMode === 'disable' ? new ReusedReads() : null;
    const extra = { replication: 'database', options: REPLICATION_SESSION_OPTIONS, ...(reads ? { stream: () => reads.socket() } : {}) };
    const client = await connectClient(db, extra as Partial<pg.ClientConfig>, (created) => {
      framer = installFramer(created, reads);
    });
    const installed = framer();
    const connection = new ReplicationConnection(client, installed, reads !== null && installed !== null);
    // An error after the stream ended (or during it) is reported through the stream's promise;
    // without a listener pg would throw it as an unhandled 'error' event.
    client.on('error', () => {});
    return connection;
  }

  private get raw(): RawConnection {
    return (this.client as unknown as { connection: RawConnection }).connection;
  }

  async identifySystem(): Promise<SystemIdentity> {
    const result = await this.client.query('IDENTIFY_SYSTEM');
    const row = result.rows[0] as { systemid: string; timeline: number; xlogpos: string; dbname: string };
    return { systemId: String(row.systemid), timeline: Number(row.timeline), xlogPos: row.xlogpos, dbName: row.dbname };
  }

  /** Makes an existing slot a failover slot (PostgreSQL 17+; the slot must not be in use). */
  async enableFailover(slot: string): Promise<void> {
    await this.client.query(`ALTER_REPLICATION_SLOT "${slot}" ( FAILOVER true )`);
  }

  /**
   * Starts streaming. Resolves with `stream` once the server switched to CopyBoth; `stream.ended`
   * settles when the server ends the stream or the connection fails.
   */
  async start(slot: string, publication: string, startLsn: Lsn, onFrame: (bytes: Buffer, start: number, end: number) => void, options: { messages?: boolean } = {}): Promise<{ ended: Promise<void> }> {
    const raw = this.raw;
    const escapedPublication = publication.replace(/'/g, "''").replace(/"/g, '""');
    // messages 'true' (PostgreSQL 14+): logical messages, among them the snapshot watermarks.
    const sql =
      `START_REPLICATION SLOT "${slot}" LOGICAL ${formatLsn(startLsn)} ` +
      `(proto_version '1', publication_names '"${escapedPublication}"'${options.messages ? ", messages 'true'" : ''})`;
    if (this.framer !== null) this.framer.onCopyData = onFrame;
    else raw.on('copyData', (message) => onFrame(message.chunk, 0, message.chunk.length));
    const started = new Promise<void>((resolve) => raw.once('replicationStart', resolve));
    const ended = this.client.query(sql).then(
      () => {
        this.ended = true;
      },
      (err: unknown) => {
        this.ended = true;
        throw err;
      },
    );
    // Whichever comes first: streaming started, or the command failed (slot in use, bad publication, ...).
    await Promise.race([started, ended.then(() => {
      throw new WalListenerError('WAL_PG_REPLICATION', 'START_REPLICATION ended before streaming started');
    })]);
    return { ended };
  }

  /**
   * Creates the logical slot with an exported snapshot (the initial snapshot reads in it). The
   * snapshot stays valid until the next command on this connection: import it first.
   */
  async createSlotWithSnapshot(slot: string, failover = false): Promise<{ consistentPoint: string; snapshotName: string }> {
    const result = await this.client.query(`CREATE_REPLICATION_SLOT "${slot}" LOGICAL pgoutput (SNAPSHOT 'export'${failover ? ', FAILOVER true' : ''})`);
    const row = result.rows[0] as { consistent_point: string; snapshot_name: string };
    return { consistentPoint: row.consistent_point, snapshotName: row.snapshot_name };
  }

  /** Notices (warnings) the server sends on the connection while streaming. */
  onNotice(listener: (notice: PgNotice) => void): void {
    this.client.on('notice', listener);
  }

  sendStatus(written: Lsn, flushed: Lsn): void {
    if (this.ended) return;
    this.raw.sendCopyFromChunk(standbyStatus(written, flushed));
  }

  /** Stops reading from the socket (backpressure); status updates can still be sent. */
  pause(): void {
    this.raw.stream.pause();
  }

  resume(): void {
    this.raw.stream.resume();
  }

  async close(): Promise<void> {
    this.ended = true;
    if (this.framer !== null) this.framer.onCopyData = null;
    this.raw.removeAllListeners('copyData');
    this.raw.stream.resume();
    // Ending a client in CopyBoth mode: pg sends Terminate and closes the socket.
    await Promise.race([this.client.end().catch(() => {}), new Promise((r) => setTimeout(r, 2000))]);
    this.raw.stream.destroy();
  }
}
