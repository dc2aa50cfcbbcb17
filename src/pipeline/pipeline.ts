/**
 * The pipeline's entry: the ChangeSink a source session writes into. Per change: filter → route →
 * encode → dispatch; per transaction: id prefix and event tail once, then the checkpointer. The
 * confirmed position goes back to the source as soon as it moved, at most once a second
 * (DESIGN.md "The delivery rule": a crash re-sends at most about a second of traffic).
 * One Pipeline per source session; the dispatcher outlives sessions.
 */
import type { ChangeSink, RoutedMessage, Row, TableDescriptor, TableHandle, TransactionHandle, TransactionInfo } from './change.js';
import { Checkpointer, type TxnRecord } from './checkpointer.js';
import type { Delivery, Dispatcher } from './dispatcher.js';
import type { EventAction, EventEncoder, EventTail } from './encoder.js';
import { JsonOut } from './json-out.js';
import { eventId } from './event-id.js';
import type { TableFilter } from './filter.js';
import type { OutboundMessage } from './message.js';
import type { PipelineObserver } from './observer.js';
import type { SubjectRouter } from './router.js';
import { OWN_SCHEMA, planTable, type TablePlan } from './table-plan.js';

export interface PipelineOptions<P> {
  filter: TableFilter;
  router: SubjectRouter;
  encoder: EventEncoder;
  messageKeyFrom: string;
  /** A subject's problem for the broker, or null (default: every subject is fine). */
  checkSubject?(subject: string): string | null;
  dispatcher: Dispatcher;
  /** The position the source starts from (already confirmed). */
  start?: P;
  /** Orders positions, so an idle confirmation never goes backwards. */
  compare?: (a: P, b: P) => number;
  /** Confirms a position to the source (SourceSession.confirm). */
  confirm(position: P): void;
  observer?: PipelineObserver;
  /** Minimum ms between two confirmations while positions move (default 1000). */
  confirmEveryMs?: number;
}

/** A transaction: the ids and tail of its events, and its checkpointer record. */
class Transaction<P> implements TransactionHandle, TxnRecord<P>, Delivery {
  pending = 0;
  end: P | undefined = undefined;
  committed = false;
  acknowledged: (() => void) | undefined = undefined;
  /** Position of the next change in the transaction. */
  next = 0;

  /** Commit time in ms since the epoch (delivery latency). */
  readonly committedAt: number;

  constructor(
    readonly info: TransactionInfo,
    readonly tail: EventTail,
    private readonly pipeline: Pipeline<P>,
  ) {
    this.committedAt = info.commitTimeMs ?? Date.parse(info.commitTime);
  }

  ack(count: number): void {
    this.pipeline.acked(this, count);
  }
}

export class Pipeline<P> implements ChangeSink<P> {
  private readonly checkpointer: Checkpointer<P>;
  private readonly dispatcher: Dispatcher;
  private readonly encoder: EventEncoder;
  private readonly observer: PipelineObserver;
  private readonly confirmEveryMs: number;
  private readonly out = new JsonOut();
  private lastConfirm = 0;
  private confirmTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly subjects = new Map<string, string | null>();

  constructor(private readonly options: PipelineOptions<P>) {
    this.checkpointer = new Checkpointer<P>(options.start, options.compare);
    this.dispatcher = options.dispatcher;
    this.encoder = options.encoder;
    this.observer = options.observer ?? {};
    this.confirmEveryMs = options.confirmEveryMs ?? 1000;
  }

  /** The newest position every change before which was acknowledged. */
  get confirmed(): P | undefined {
    return this.checkpointer.confirmed;
  }

  /** Transactions begun and not yet confirmed. */
  get open(): number {
    return this.checkpointer.open;
  }

  get full(): boolean {
    return this.dispatcher.full;
  }

  ready(): Promise<void> {
    return this.dispatcher.whenBelow();
  }

  table(descriptor: TableDescriptor): TableHandle {
    const { filter, router, messageKeyFrom, encoder, checkSubject = () => null } = this.options;
    return planTable(descriptor, { filter, router, messageKeyFrom, pick: encoder.pick, pickWriter: encoder.pickWriter, checkSubject });
  }

  begin(info: TransactionInfo): TransactionHandle {
    return this.checkpointer.begin(new Transaction<P>(info, this.encoder.tail(info), this));
  }

  insert(txn: TransactionHandle, table: TableHandle, row: Row): void {
    this.change(txn as Transaction<P>, table as TablePlan, 'INSERT', 'insert', row, null, false, row);
  }

  update(txn: TransactionHandle, table: TableHandle, row: Row, old: Row | null, oldKeyOnly: boolean): void {
    this.change(txn as Transaction<P>, table as TablePlan, 'UPDATE', 'update', row, old, oldKeyOnly, row);
  }

  delete(txn: TransactionHandle, table: TableHandle, old: Row, oldKeyOnly: boolean): void {
    this.change(txn as Transaction<P>, table as TablePlan, 'DELETE', 'delete', null, old, oldKeyOnly, old);
  }

  truncate(txn: TransactionHandle, table: TableHandle): void {
    this.change(txn as Transaction<P>, table as TablePlan, 'TRUNCATE', 'truncate', null, null, false, null);
  }

  snapshot(txn: TransactionHandle, table: TableHandle, row: Row, id?: string): void {
    // Snapshot rows follow the insert filter: a table whose inserts are not published is not read either.
    this.change(txn as Transaction<P>, table as TablePlan, 'SNAPSHOT', 'insert', row, null, false, row, id);
  }

  message(txn: TransactionHandle, message: RoutedMessage): void {
    const t = txn as Transaction<P>;
    const position = t.next++;
    const outbound: OutboundMessage = {
      id: message.id ?? eventId(t.info.idPrefix, position),
      subject: message.subject,
      key: message.key,
      payload: message.payload,
      lsn: t.info.position,
      schema: message.schema,
      table: message.table,
      action: 'MESSAGE',
      committedAt: t.committedAt,
      keyHeader: message.keyHeader === true,
      tombstone: message.tombstone === true,
      headers: message.headers ?? null,
      properties: message.properties ?? null,
      exchange: message.exchange ?? null,
    };
    t.pending++;
    this.dispatcher.add(outbound, t, message.refusal ?? this.subjectProblem(message.subject));
  }

  skip(txn: TransactionHandle): void {
    (txn as Transaction<P>).next++;
  }

  commit(txn: TransactionHandle, end: P, acknowledged?: () => void): void {
    // No flush here: a batch collects everything handed over in one turn of the event loop, across
    // transactions (single-row transactions would otherwise cost a publish each).
    this.checkpointer.commit(txn as Transaction<P>, end, acknowledged);
    this.moved();
  }

  idle(position: P): void {
    if (this.dispatcher.pending !== 0) return;
    if (this.checkpointer.confirmIdle(position)) this.moved();
  }

  /** Called by a transaction when `count` of its messages were acknowledged. */
  acked(txn: Transaction<P>, count: number): void {
    this.checkpointer.ack(txn, count);
    this.moved();
  }

  /** Sends the confirmed position now if it moved (shutdown, reconnect); stops the timer. */
  flushConfirm(): void {
    clearTimeout(this.confirmTimer);
    this.confirmTimer = undefined;
    this.confirmNow();
  }

  /** No confirmations after this (the session is gone). */
  close(): void {
    this.flushConfirm();
    this.closed = true;
  }

  private change(txn: Transaction<P>, plan: TablePlan, action: EventAction, filterAction: 'insert' | 'update' | 'delete' | 'truncate', row: Row | null, old: Row | null, oldKeyOnly: boolean, keyRow: Row | null, givenId?: string): void {
    const position = txn.next++;
    if (plan.actions === null || !plan.actions.has(filterAction)) {
      if (plan.actions !== null || plan.schema !== OWN_SCHEMA) this.observer.skipped?.(plan);
      return;
    }
    const id = givenId ?? eventId(txn.info.idPrefix, position);
    const out = this.out;
    out.begin();
    this.encoder.event(out, plan, id, txn.tail, action, row, old, oldKeyOnly);
    const message: OutboundMessage = {
      id,
      subject: plan.subject,
      key: this.encoder.key(plan, keyRow, action),
      payload: out.end(),
      lease: out.lease,
      lsn: txn.info.position,
      schema: plan.schema,
      table: plan.table,
      action,
      committedAt: txn.committedAt,
      headers: null,
      properties: null,
      exchange: null,
    };
    txn.pending++;
    this.dispatcher.add(message, txn, plan.refusal);
  }

  /** checkSubject for routed subjects (taken from rows: unbounded in principle), remembered for the last few thousand. */
  private subjectProblem(subject: string): string | null {
    const check = this.options.checkSubject;
    if (check === undefined) return null;
    let problem = this.subjects.get(subject);
    if (problem === undefined) {
      if (this.subjects.size >= 4096) this.subjects.clear();
      this.subjects.set(subject, (problem = check(subject)));
    }
    return problem;
  }

  private moved(): void {
    if (this.confirmTimer !== undefined || this.closed) return;
    const wait = this.lastConfirm + this.confirmEveryMs - Date.now();
    if (wait <= 0) this.confirmNow();
    else {
      this.confirmTimer = setTimeout(() => {
        this.confirmTimer = undefined;
        this.confirmNow();
      }, wait);
      this.confirmTimer.unref();
    }
  }

  private confirmNow(): void {
    if (this.closed || !this.checkpointer.takeMoved()) return;
    const confirmed = this.checkpointer.confirmed;
    if (confirmed === undefined) return;
    this.lastConfirm = Date.now();
    this.options.confirm(confirmed);
  }
}
