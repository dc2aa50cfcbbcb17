/**
 * One streaming session on the replication connection: decodes frames, turns changes into messages,
 * hands them to the dispatcher as they arrive, tracks transactions in the checkpointer, and sends
 * standby status (the confirmed LSN) every heartbeat and whenever the server asks.
 *
 * Backpressure: when the dispatcher's window is full, or a Relation message needs a catalog lookup,
 * the socket is paused and frames already read are kept (copied: pg reuses its read buffer) until
 * processing can go on. Memory stays bounded by the window, never by the size of a transaction.
 */
import type { Logger } from '../observability/logger.js';
import { decodeFrame, ProtocolError, type Lsn, type PgOutputMessage, type RelationMessage } from '../sources/postgres/pgoutput.js';
import type { ReplicationConnection } from '../sources/postgres/replication.js';
import type { Checkpointer, TxnRecord } from './checkpointer.js';
import type { Dispatcher } from './dispatcher.js';
import type { EventBuilder, RelationPlan, TxnContext } from './event-builder.js';

export interface SessionObserver {
  /** A change of `plan` was dropped by the filter. */
  skipped(plan: RelationPlan): void;
  /** The server's WAL end and our confirmed LSN, after each status update. */
  status(serverWalEnd: Lsn, confirmed: Lsn): void;
}

export interface SessionOptions {
  connection: ReplicationConnection;
  builder: EventBuilder;
  dispatcher: Dispatcher;
  checkpointer: Checkpointer;
  logger: Logger;
  heartbeatMs: number;
  /**
   * Called for each Relation message. May return a promise (catalog lookups); its value, when
   * given, is the primary key to use as the message key. Changes wait until it settles.
   */
  prepareRelation(relation: RelationMessage): Promise<readonly string[] | undefined> | undefined;
  observer?: SessionObserver;
}

const NO_OBSERVER: SessionObserver = { skipped() {}, status() {} };

export class ReplicationSession {
  private readonly plans = new Map<number, RelationPlan>();
  private txn: TxnContext | null = null;
  private txnRecord: TxnRecord | null = null;
  private txnFinalLsn: Lsn = 0n;
  /** Frames read while processing waits; null while flowing. */
  private backlog: Buffer[] | null = null;
  private backlogIndex = 0;
  private stopped = false;
  private failure: Error | null = null;
  private failed!: (err: Error) => void;
  /** Rejects when processing hits an error that reconnecting cannot fix by itself. */
  readonly failedPromise = new Promise<never>((_, reject) => {
    this.failed = reject;
  });
  private serverWalEnd: Lsn = 0n;
  private lastReceived: Lsn = 0n;
  private timer: NodeJS.Timeout | null = null;
  private readonly observer: SessionObserver;

  constructor(private readonly options: SessionOptions) {
    this.observer = options.observer ?? NO_OBSERVER;
    this.failedPromise.catch(() => {});
  }

  /** Frame callback for ReplicationConnection.start. */
  readonly onFrame = (chunk: Buffer): void => {
    if (this.stopped) return;
    if (this.backlog !== null) {
      this.backlog.push(Buffer.from(chunk));
      return;
    }
    const wait = this.process(chunk);
    if (wait) this.block(wait);
  };

  startHeartbeat(): void {
    this.timer = setInterval(() => this.sendStatus(), this.options.heartbeatMs);
    this.timer.unref();
  }

  /** Sends the standby status: written = last received, flushed = the checkpointer's confirmed LSN. */
  sendStatus(): void {
    const confirmed = this.options.checkpointer.confirmed;
    const written = this.lastReceived > confirmed ? this.lastReceived : confirmed;
    try {
      this.options.connection.sendStatus(written, confirmed);
    } catch (err) {
      this.options.logger.debug({ err: (err as Error).message }, 'standby status not sent');
    }
    this.observer.status(this.serverWalEnd > confirmed ? this.serverWalEnd : confirmed, confirmed);
  }

  /** Stops reading and processing; keeps the heartbeat off. In-flight publishes continue. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.options.connection.pause();
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
      const wait = this.process(chunk);
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

  /** Handles one frame; returns a promise when the next frame must wait for it. */
  private process(chunk: Buffer): Promise<void> | undefined {
    try {
      const frame = decodeFrame(chunk);
      if (frame.kind === 'keepalive') {
        if (frame.walEnd > this.serverWalEnd) this.serverWalEnd = frame.walEnd;
        if (this.txn === null && this.options.dispatcher.inFlight === 0) this.options.checkpointer.confirmIdle(frame.walEnd);
        if (frame.replyRequested) this.sendStatus();
        return undefined;
      }
      if (frame.walStart > this.lastReceived) this.lastReceived = frame.walStart;
      if (frame.walEnd > this.serverWalEnd) this.serverWalEnd = frame.walEnd;
      return this.handle(frame.message);
    } catch (err) {
      this.fail(err);
      return undefined;
    }
  }

  private handle(message: PgOutputMessage): Promise<void> | undefined {
    const { builder, dispatcher } = this.options;
    switch (message.tag) {
      case 'begin':
        if (this.txn !== null) throw new ProtocolError('Begin inside an open transaction');
        this.txn = builder.begin(message);
        this.txnRecord = this.options.checkpointer.begin();
        this.txnFinalLsn = message.finalLsn;
        return undefined;
      case 'commit': {
        const record = this.requireTxnRecord('Commit');
        if (message.commitLsn !== this.txnFinalLsn) {
          throw new ProtocolError(`Commit LSN ${message.commitLsn} differs from the Begin's final LSN ${this.txnFinalLsn}`);
        }
        this.txn = null;
        this.txnRecord = null;
        dispatcher.flush();
        this.options.checkpointer.commit(record, message.endLsn);
        return undefined;
      }
      case 'relation':
        return this.relation(message);
      case 'insert': {
        const plan = this.plan(message.relationId);
        const txn = this.requireTxn();
        const position = txn.position++;
        if (plan.actions?.has('insert')) dispatcher.add(builder.insert(plan, txn, position, message.newTuple), this.txnRecord!);
        else this.observer.skipped(plan);
        break;
      }
      case 'update': {
        const plan = this.plan(message.relationId);
        const txn = this.requireTxn();
        const position = txn.position++;
        if (plan.actions?.has('update')) {
          dispatcher.add(builder.update(plan, txn, position, message.oldKind, message.oldTuple, message.newTuple), this.txnRecord!);
        } else this.observer.skipped(plan);
        break;
      }
      case 'delete': {
        const plan = this.plan(message.relationId);
        const txn = this.requireTxn();
        const position = txn.position++;
        if (plan.actions?.has('delete')) dispatcher.add(builder.delete(plan, txn, position, message.oldKind, message.oldTuple), this.txnRecord!);
        else this.observer.skipped(plan);
        break;
      }
      case 'truncate': {
        const txn = this.requireTxn();
        for (const relationId of message.relationIds) {
          const plan = this.plan(relationId);
          const position = txn.position++;
          if (plan.actions?.has('truncate')) dispatcher.add(builder.truncate(plan, txn, position), this.txnRecord!);
          else this.observer.skipped(plan);
        }
        break;
      }
      case 'type':
      case 'origin':
      case 'message':
        return undefined;
    }
    return dispatcher.full ? dispatcher.whenBelow() : undefined;
  }

  private relation(message: RelationMessage): Promise<void> | undefined {
    const pending = this.options.prepareRelation(message);
    if (pending === undefined) {
      this.plans.set(message.relationId, this.options.builder.plan(message));
      return undefined;
    }
    return pending.then((primaryKey) => {
      this.plans.set(message.relationId, this.options.builder.plan(message, primaryKey));
    });
  }

  private plan(relationId: number): RelationPlan {
    const plan = this.plans.get(relationId);
    if (!plan) throw new ProtocolError(`change for relation ${relationId} before its Relation message`);
    return plan;
  }

  private requireTxn(): TxnContext {
    if (this.txn === null) throw new ProtocolError('row change outside a transaction');
    return this.txn;
  }

  private requireTxnRecord(what: string): TxnRecord {
    if (this.txnRecord === null) throw new ProtocolError(`${what} without Begin`);
    return this.txnRecord;
  }
}

const EMPTY = Buffer.alloc(0);
