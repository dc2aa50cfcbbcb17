/**
 * One streaming session on the replication connection: decodes frames, describes relations,
 * hands changes to the sink in WAL order, and sends standby status: the flush LSN the pipeline
 * confirmed, as soon as it is confirmed, every heartbeat, and whenever the server asks.
 *
 * Backpressure: when the sink's window is full, or a Relation message needs a catalog lookup,
 * the socket is paused and frames already read are kept (copied: pg reuses its read buffer) until
 * processing can go on. Memory stays bounded by the window, never by the size of a transaction.
 */
import type { Logger } from '../../observability/logger.js';
import type { ChangeSink, TableHandle, TransactionHandle } from '../../pipeline/change.js';
import { eventIdPrefixHalves } from '../../pipeline/event-id.js';
import type { PipelineObserver } from '../../pipeline/observer.js';
import type { SourceSession } from '../source.js';
import { classifyPgError, skippedPublication, type PgErrorContext } from './errors.js';
import { WATERMARK_PREFIX } from './backfiller.js';
import { decodeFrame, decodeMessage, formatLsn, formatLsnHalves, formatPgMicros, formatPgTimestamp, pgMicrosAt, pgTimestampMs, ProtocolError, type LogicalMessage, type Lsn, type PgOutputMessage, type Tuple } from './pgoutput.js';
import { MESSAGE_PREFIX, routeLogicalMessage } from './logical-messages.js';
import type { OutboxRoutes } from './outbox.js';
import type { Relations } from './relations.js';
import type { ReplicationConnection } from './replication.js';

/**
 * Sees the stream on behalf of a snapshot (backfiller.ts): each transaction's start, row changes
 * while a backfill runs, logical messages (the watermarks), and each commit.
 */
export interface StreamWatch {
  /** True while row changes must be shown to `change` (a backfill runs). */
  readonly watching: boolean;
  /** A transaction starts in the stream (every one; the server sends committed transactions only). */
  begun(xid: number): void;
  /** A row change of transaction `xid` (row and old both null: the table was truncated). */
  change(xid: number, relationId: number, row: Tuple | null, old: Tuple | null): void;
  /** A logical message; a returned promise holds the stream until it settles (snapshot rows being handed over). */
  message(txn: TransactionHandle | null, message: LogicalMessage): Promise<void> | undefined;
  /** The transaction is being committed: a callback for when it is acknowledged, if the watch needs one. */
  committing(): (() => void) | undefined;
  /** The session closes: stop, and store what was acknowledged. */
  close(): Promise<void>;
}

export interface PostgresSessionOptions {
  connection: ReplicationConnection;
  sink: ChangeSink<Lsn>;
  relations: Relations;
  logger: Logger;
  heartbeatMs: number;
  /** Source hash for event ids (event-id.ts). */
  source: number;
  /** The slot's confirmed position when the session started. */
  startLsn: Lsn;
  errorContext: PgErrorContext;
  observer?: PipelineObserver;
  /** listener.outbox: inserted rows of these relations are messages; their other changes publish nothing. */
  outbox?: OutboxRoutes;
  /** Keeps the confirmed position in wal_listener.state (confirm-recorder.ts). */
  recorder?: { confirmed(lsn: Lsn): void; close(): Promise<void> };
  /** Snapshot watermarks (backfiller.ts). */
  watch?: StreamWatch;
}

export class PostgresSession implements SourceSession<Lsn> {
  readonly ended: Promise<void>;
  private readonly sink: ChangeSink<Lsn>;
  private txn: TransactionHandle | null = null;
  /** The open transaction's final (commit) LSN, as its 32-bit halves. */
  private txnFinalHi = 0;
  private txnFinalLo = 0;
  private txnXid = 0;
  /** Frames read while processing waits; null while flowing. */
  private backlog: Buffer[] | null = null;
  private backlogIndex = 0;
  private stopped = false;
  private failure: Error | null = null;
  private failed!: (err: Error) => void;
  /**
   * The server's WAL end and the last XLogData start seen, as 32-bit halves: every frame carries
   * both, and comparing halves costs no BigInt (they are read as LSNs only for a status update).
   */
  private walEndHi = 0;
  private walEndLo = 0;
  private receivedHi = 0;
  private receivedLo = 0;
  /** WAL end of the last keepalive outside a transaction: confirmed at the next heartbeat if nothing is in flight. */
  private idleWalEnd: Lsn = 0n;
  private confirmedLsn: Lsn;
  /** End of the last transaction handed to the sink. */
  private lastCommitEnd: Lsn;
  private timer: NodeJS.Timeout | null = null;
  private readonly observer: PipelineObserver;

  private streamEnded!: (stream: Promise<void>) => void;

  /** Created before START_REPLICATION (frames may arrive with its answer); `watch` gets the stream. */
  constructor(private readonly options: PostgresSessionOptions) {
    this.sink = options.sink;
    this.confirmedLsn = options.startLsn;
    this.lastCommitEnd = options.startLsn;
    this.observer = options.observer ?? {};
    const failedPromise = new Promise<never>((_, reject) => {
      this.failed = reject;
    });
    const stream = new Promise<void>((resolve) => {
      this.streamEnded = (ended) => resolve(ended);
    });
    this.ended = Promise.race([stream, failedPromise]).catch((err: unknown) => {
      const finalLsn = lsnOf(this.txnFinalHi, this.txnFinalLo);
      const transaction = this.txn === null ? undefined : { commitLsn: formatLsn(finalLsn), after: formatLsn(finalLsn + 1n) };
      throw classifyPgError(err, { ...options.errorContext, lsn: formatLsn(this.lastReceived), ...(transaction ? { transaction } : {}) });
    });
    this.ended.catch(() => {});
    // PostgreSQL 18 skips changes written while the publication did not exist, with only a warning.
    options.connection.onNotice((notice) => {
      const skipped = skippedPublication(notice);
      if (skipped) this.fail(skipped);
    });
  }

  /**
   * Before START_REPLICATION: frames are kept, not processed, until `release`'s task is done (the
   * initial snapshot is published before the first streamed change).
   */
  hold(): void {
    this.backlog = [];
    this.backlogIndex = 0;
  }

  /** After START_REPLICATION: stops reading, runs `task`, then processes the frames kept and reads on. */
  release(task: Promise<void>): void {
    this.options.connection.pause();
    task.then(this.drainBacklog, (err: unknown) => this.fail(err));
  }

  /** The stream started: `ended` follows it from now on, and the heartbeat runs. */
  watch(streamEnded: Promise<void>): void {
    this.streamEnded(streamEnded);
    this.timer = setInterval(() => this.heartbeat(), this.options.heartbeatMs);
    this.timer.unref();
  }

  /**
   * Every heartbeat: an idle position (a keepalive's WAL end while no transaction is open) is
   * offered to the pipeline, which confirms it when nothing is in flight; then the status goes out.
   * Idle positions wait for the heartbeat: a keepalive can point into a transaction the server is
   * still writing, and there is no hurry to confirm WAL that holds nothing for us.
   */
  private heartbeat(): void {
    if (this.txn === null && this.idleWalEnd > this.confirmedLsn) this.sink.idle(this.idleWalEnd);
    this.sendStatus();
  }

  /** Frame callback for ReplicationConnection.start: the frame is bytes `start`–`end` of `chunk`. */
  readonly onFrame = (chunk: Buffer, start = 0, end = chunk.length): void => {
    if (this.stopped) return;
    if (this.backlog !== null) {
      this.backlog.push(Buffer.from(chunk.subarray(start, end)));
      return;
    }
    const wait = this.process(chunk, start, end);
    if (wait) this.block(wait);
  };

  confirm(position: Lsn): void {
    if (position <= this.confirmedLsn) return;
    this.confirmedLsn = position;
    this.sendStatus();
    // Recorded: the end of the last transaction confirmed, never an idle position beyond it. Idle
    // positions move with WAL nobody publishes (the daemon's own record among it): recording them
    // would write every few seconds forever.
    this.options.recorder?.confirmed(position < this.lastCommitEnd ? position : this.lastCommitEnd);
  }

  /** Sends the standby status: written = last received, flushed = the confirmed LSN. */
  sendStatus(): void {
    const confirmed = this.confirmedLsn;
    const lastReceived = this.lastReceived;
    const written = lastReceived > confirmed ? lastReceived : confirmed;
    try {
      this.options.connection.sendStatus(written, confirmed);
    } catch (err) {
      this.options.logger.debug({ err: (err as Error).message }, 'standby status not sent');
    }
    const serverWalEnd = lsnOf(this.walEndHi, this.walEndLo);
    this.observer.lag?.(serverWalEnd > confirmed ? Number(serverWalEnd - confirmed) : 0);
    this.observer.confirmed?.(Number(confirmed));
  }

  private get lastReceived(): Lsn {
    return lsnOf(this.receivedHi, this.receivedLo);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.options.connection.pause();
  }

  async close(): Promise<void> {
    this.stop();
    this.sendStatus();
    await this.options.connection.close();
    await this.options.watch?.close();
    await this.options.recorder?.close();
  }

  private block(wait: Promise<void>): void {
    if (this.backlog === null) {
      this.backlog = [];
      this.backlogIndex = 0;
      this.options.connection.pause();
    }
    wait.then(this.drainBacklog, (err: unknown) => this.fail(err));
  }

  private readonly drainBacklog = (): void => {
    const backlog = this.backlog;
    if (backlog === null || this.stopped) return;
    while (this.backlogIndex < backlog.length) {
      const chunk = backlog[this.backlogIndex]!;
      backlog[this.backlogIndex++] = EMPTY;
      const wait = this.process(chunk, 0, chunk.length);
      if (wait) {
        wait.then(this.drainBacklog, (err: unknown) => this.fail(err));
        return;
      }
    }
    this.backlog = null;
    this.backlogIndex = 0;
    this.options.connection.resume();
  };

  private fail(err: unknown): void {
    if (this.failure) return;
    this.failure = err instanceof Error ? err : new Error(String(err));
    this.stop();
    this.failed(this.failure);
  }

  /**
   * Handles one frame, bytes `start`–`end` of `chunk` (read in place: no Buffer per frame);
   * returns a promise when the next frame must wait for it.
   */
  private process(chunk: Buffer, start: number, end: number): Promise<void> | undefined {
    try {
      if (chunk[start] !== 0x77 /* w */ || end - start < 25) {
        const frame = decodeFrame(chunk.subarray(start, end)); // a keepalive (a short or unknown frame throws)
        if (frame.kind !== 'keepalive') throw new ProtocolError(`unexpected ${frame.kind} frame`);
        this.sawWalEnd(Number(frame.walEnd >> 32n), Number(frame.walEnd & 0xffffffffn));
        if (this.txn === null) this.idleWalEnd = frame.walEnd;
        if (frame.replyRequested) this.sendStatus();
        return undefined;
      }
      // XLogData: 'w', WAL start, WAL end, send time, then one pgoutput message. Read here rather
      // than by decodeFrame: the halves of the two positions need no BigInt, and Begin and Commit
      // (two of a single-row transaction's three frames) are read in place.
      this.sawWalEnd(chunk.readUInt32BE(start + 9), chunk.readUInt32BE(start + 13));
      const startHi = chunk.readUInt32BE(start + 1);
      const startLo = chunk.readUInt32BE(start + 5);
      if (startHi > this.receivedHi || (startHi === this.receivedHi && startLo > this.receivedLo)) {
        this.receivedHi = startHi;
        this.receivedLo = startLo;
      }
      const tag = chunk[start + 25];
      const length = end - start;
      if (tag === 0x42 /* B */ && length >= 46) {
        // Begin: final LSN (26), commit time (34), xid (42).
        const micros = pgMicrosAt(chunk, start + 34);
        const exact = !Number.isNaN(micros);
        const commitTime = exact ? formatPgMicros(micros) : formatPgTimestamp(chunk.readBigInt64BE(start + 34));
        this.begin(chunk.readUInt32BE(start + 26), chunk.readUInt32BE(start + 30), commitTime, pgTimestampMs(exact ? micros : chunk.readBigInt64BE(start + 34)), chunk.readUInt32BE(start + 42));
        return undefined;
      }
      if (tag === 0x43 /* C */ && length >= 51) {
        // Commit: flags (26), commit LSN (27), end LSN (35), commit time (43).
        this.commit(chunk.readUInt32BE(start + 27), chunk.readUInt32BE(start + 31), chunk.readBigUInt64BE(start + 35));
        return undefined;
      }
      return this.handle(decodeMessage(chunk, start + 25, end));
    } catch (err) {
      this.fail(err);
      return undefined;
    }
  }

  /** A frame's WAL end (the server's position), as halves. */
  private sawWalEnd(hi: number, lo: number): void {
    if (hi > this.walEndHi || (hi === this.walEndHi && lo > this.walEndLo)) {
      this.walEndHi = hi;
      this.walEndLo = lo;
    }
  }

  private begin(finalHi: number, finalLo: number, commitTime: string, commitTimeMs: number, xid: number): void {
    if (this.txn !== null) throw new ProtocolError('Begin inside an open transaction');
    this.txn = this.sink.begin({
      idPrefix: eventIdPrefixHalves(finalHi, finalLo, this.options.source),
      commitTime,
      commitTimeMs,
      position: formatLsnHalves(finalHi, finalLo),
      xid,
    });
    this.txnFinalHi = finalHi;
    this.txnFinalLo = finalLo;
    this.txnXid = xid;
    this.options.watch?.begun(xid);
  }

  private commit(commitHi: number, commitLo: number, endLsn: Lsn): void {
    const txn = this.requireTxn();
    if (commitHi !== this.txnFinalHi || commitLo !== this.txnFinalLo) {
      throw new ProtocolError(`Commit LSN ${formatLsnHalves(commitHi, commitLo)} differs from the Begin's final LSN ${formatLsnHalves(this.txnFinalHi, this.txnFinalLo)}`);
    }
    this.txn = null;
    this.lastCommitEnd = endLsn;
    this.sink.commit(txn, endLsn, this.options.watch?.committing());
  }

  private handle(message: PgOutputMessage): Promise<void> | undefined {
    const sink = this.sink;
    switch (message.tag) {
      case 'begin':
        this.begin(Number(message.finalLsn >> 32n), Number(message.finalLsn & 0xffffffffn), formatPgTimestamp(message.commitTimeMicros), pgTimestampMs(message.commitTimeMicros), message.xid);
        return undefined;
      case 'commit':
        this.commit(Number(message.commitLsn >> 32n), Number(message.commitLsn & 0xffffffffn), message.endLsn);
        return undefined;
      case 'relation':
        this.options.outbox?.relation(message);
        return this.options.relations.relation(message);
      case 'insert': {
        const route = this.options.outbox?.get(message.relationId);
        if (route) sink.message(this.requireTxn(), route(message.newTuple));
        else {
          sink.insert(this.requireTxn(), this.table(message.relationId), message.newTuple);
          if (this.options.watch?.watching) this.options.watch.change(this.txnXid, message.relationId, message.newTuple, null);
        }
        break;
      }
      case 'update':
        if (this.options.outbox?.get(message.relationId)) sink.skip(this.requireTxn());
        else {
          sink.update(this.requireTxn(), this.table(message.relationId), message.newTuple, message.oldTuple, message.oldKind === 'K');
          if (this.options.watch?.watching) this.options.watch.change(this.txnXid, message.relationId, message.newTuple, message.oldTuple);
        }
        break;
      case 'delete':
        if (this.options.outbox?.get(message.relationId)) sink.skip(this.requireTxn());
        else {
          sink.delete(this.requireTxn(), this.table(message.relationId), message.oldTuple, message.oldKind === 'K');
          if (this.options.watch?.watching) this.options.watch.change(this.txnXid, message.relationId, null, message.oldTuple);
        }
        break;
      case 'truncate': {
        const txn = this.requireTxn();
        for (const relationId of message.relationIds) {
          if (this.options.outbox?.get(relationId)) sink.skip(txn);
          else {
            sink.truncate(txn, this.table(relationId));
            if (this.options.watch?.watching) this.options.watch.change(this.txnXid, relationId, null, null);
          }
        }
        break;
      }
      case 'message':
        // Only transactional messages come inside a transaction, and only those are routed. Backfill
        // watermarks go to the watch (a returned promise holds the stream while it hands rows over).
        if (!message.transactional || this.txn === null) this.observer.logicalMessageSkipped?.('nontransactional');
        else if (message.prefix === MESSAGE_PREFIX) sink.message(this.txn, routeLogicalMessage(message.content));
        else if (message.prefix === WATERMARK_PREFIX) return this.options.watch?.message(this.txn, message);
        else {
          this.observer.logicalMessageSkipped?.('prefix');
          sink.skip(this.txn);
        }
        break;
      case 'type':
      case 'origin':
        return undefined;
    }
    return sink.full ? sink.ready() : undefined;
  }

  private table(relationId: number): TableHandle {
    const handle = this.options.relations.get(relationId);
    if (!handle) throw new ProtocolError(`change for relation ${relationId} before its Relation message`);
    return handle;
  }

  private requireTxn(): TransactionHandle {
    if (this.txn === null) throw new ProtocolError('row change outside a transaction');
    return this.txn;
  }
}

const EMPTY = Buffer.alloc(0);
const lsnOf = (hi: number, lo: number): Lsn => (BigInt(hi) << 32n) | BigInt(lo);

