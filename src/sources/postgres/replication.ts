/**
 * The replication connection: a `pg` client opened with `replication: 'database'`, switched into
 * CopyBoth mode by START_REPLICATION. Frames go to a callback as raw Buffers (decoding is
 * pgoutput.ts's job); standby status updates go back on the same socket.
 * Protocol: https://www.postgresql.org/docs/current/protocol-replication.html
 */
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

export class ReplicationConnection {
  private ended = false;

  private constructor(private readonly client: pg.Client) {}

  static async open(db: DatabaseConfig): Promise<ReplicationConnection> {
    const client = await connectClient(db, { replication: 'database', options: REPLICATION_SESSION_OPTIONS } as Partial<pg.ClientConfig>);
    const connection = new ReplicationConnection(client);
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
  async start(slot: string, publication: string, startLsn: Lsn, onFrame: (frame: Buffer) => void, options: { messages?: boolean } = {}): Promise<{ ended: Promise<void> }> {
    const raw = this.raw;
    const escapedPublication = publication.replace(/'/g, "''").replace(/"/g, '""');
    // messages 'true' (PostgreSQL 14+): logical messages, among them the snapshot watermarks.
    const sql =
      `START_REPLICATION SLOT "${slot}" LOGICAL ${formatLsn(startLsn)} ` +
      `(proto_version '1', publication_names '"${escapedPublication}"'${options.messages ? ", messages 'true'" : ''})`;
    raw.on('copyData', (message) => onFrame(message.chunk));
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
    this.raw.removeAllListeners('copyData');
    this.raw.stream.resume();
    // Ending a client in CopyBoth mode: pg sends Terminate and closes the socket.
    await Promise.race([this.client.end().catch(() => {}), new Promise((r) => setTimeout(r, 2000))]);
    this.raw.stream.destroy();
  }
}
