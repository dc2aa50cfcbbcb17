/**
 * A ChangeSink that records what a source hands over and plays the pipeline's part towards the
 * source, without a broker: it acknowledges messages (at once, or when the test says so), turns
 * messages a test marks as refused into dead letters through the source's DeadLetterStore, keeps
 * an in-flight window (`full`/`ready()`), and confirms to the attached session the end of the newest
 * transaction that is committed and acknowledged with every one before it (DESIGN.md "The delivery
 * rule"). For testing sources directly, before or without the real pipeline.
 */
import type { ChangeSink, Row, RoutedMessage, TableDescriptor, TableHandle, TransactionHandle, TransactionInfo } from '../../src/pipeline/change.js';
import type { DeadLetterStore } from '../../src/pipeline/dead-letters.js';
import type { OutboundMessage } from '../../src/pipeline/message.js';

export interface RecordedTransaction<P> extends TransactionHandle {
  readonly messages: RoutedMessage[];
  /** Calls other than message(): table changes a source of row changes sends. */
  readonly changes: { kind: string; table?: string }[];
  end: P | undefined;
  /** Messages not yet acknowledged. */
  pending: number;
}

export interface RecordingSinkOptions {
  /** In-flight window: `full` once this many messages are unacknowledged. */
  readonly window?: number;
  /** Acknowledge every message as it arrives (a fast broker); false: only ack() / ackAll() do. */
  readonly autoAck?: boolean;
  /** Where refused messages go; required when `refuse` is given. */
  readonly deadLetters?: DeadLetterStore;
  /** The broker's reason to refuse a message for good, or undefined to accept it. */
  readonly refuse?: (message: RoutedMessage) => string | undefined;
  /** Hold confirmations back (the test confirms with confirmNow()). */
  readonly manualConfirm?: boolean;
}

interface Delivery<P> {
  readonly txn: RecordedTransaction<P>;
  readonly message: RoutedMessage;
}

export class RecordingSink<P> implements ChangeSink<P> {
  readonly transactions: RecordedTransaction<P>[] = [];
  /** Messages refused and handed to the dead-letter store. */
  readonly refused: OutboundMessage[] = [];
  /** Positions confirmed to the session, in order. */
  readonly confirmed: P[] = [];
  /** The most messages that were unacknowledged at once (a source ignoring `full` makes it exceed the window). */
  peakInFlight = 0;
  private readonly window: number;
  private readonly queue: Delivery<P>[] = [];
  private inFlight = 0;
  private waiters: (() => void)[] = [];
  private session: { confirm(position: P): void } | undefined;
  private confirmedUpTo = 0;
  private acking: Promise<void> = Promise.resolve();

  constructor(private readonly options: RecordingSinkOptions = {}) {
    this.window = options.window ?? 4096;
  }

  /** Every message handed over, in order, across transactions. */
  get messages(): RoutedMessage[] {
    return this.transactions.flatMap((t) => t.messages);
  }

  /** The session that receives confirmations (the daemon wires the checkpointer the same way). */
  attach(session: { confirm(position: P): void } | undefined): void {
    this.session = session;
  }

  get full(): boolean {
    return this.inFlight >= this.window;
  }

  ready(): Promise<void> {
    if (!this.full) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  table(descriptor: TableDescriptor): TableHandle {
    return { schema: descriptor.schema, table: descriptor.table };
  }

  begin(info: TransactionInfo): TransactionHandle {
    const txn: RecordedTransaction<P> = { info, messages: [], changes: [], end: undefined, pending: 0 };
    this.transactions.push(txn);
    return txn;
  }

  message(handle: TransactionHandle, message: RoutedMessage): void {
    const txn = handle as RecordedTransaction<P>;
    txn.messages.push(message);
    txn.pending++;
    this.inFlight++;
    this.peakInFlight = Math.max(this.peakInFlight, this.inFlight);
    this.queue.push({ txn, message });
    if (this.options.autoAck ?? true) this.ackAll();
  }

  insert(txn: TransactionHandle, table: TableHandle, _row: Row): void {
    this.change(txn, 'insert', table);
  }

  update(txn: TransactionHandle, table: TableHandle): void {
    this.change(txn, 'update', table);
  }

  delete(txn: TransactionHandle, table: TableHandle): void {
    this.change(txn, 'delete', table);
  }

  truncate(txn: TransactionHandle, table: TableHandle): void {
    this.change(txn, 'truncate', table);
  }

  snapshot(txn: TransactionHandle, table: TableHandle): void {
    this.change(txn, 'snapshot', table);
  }

  skip(txn: TransactionHandle): void {
    this.change(txn, 'skip');
  }

  commit(handle: TransactionHandle, end: P): void {
    (handle as RecordedTransaction<P>).end = end;
    this.settle();
  }

  idle(): void {}

  /** Acknowledges the oldest `count` unacknowledged messages (all by default), asynchronously like a broker. */
  ackAll(count = this.queue.length): Promise<void> {
    const batch = this.queue.splice(0, count);
    this.acking = this.acking.then(() => this.deliver(batch));
    return this.acking;
  }

  /** Resolves once every acknowledgement asked for so far was processed. */
  settled(): Promise<void> {
    return this.acking;
  }

  /** With manualConfirm: confirms what is confirmable now. */
  confirmNow(): void {
    this.settle(true);
  }

  /** Forgets the unacknowledged messages (a crash of the pipeline: they are never acknowledged). */
  dropInFlight(): void {
    this.queue.length = 0;
    this.inFlight = 0;
    for (const wake of this.waiters.splice(0)) wake();
  }

  private change(handle: TransactionHandle, kind: string, table?: TableHandle): void {
    (handle as RecordedTransaction<P>).changes.push({ kind, table: table ? `${table.schema}.${table.table}` : undefined });
  }

  private async deliver(batch: Delivery<P>[]): Promise<void> {
    const letters = batch.flatMap(({ txn, message }) => {
      const reason = this.options.refuse?.(message);
      return reason === undefined ? [] : [{ message: outbound(txn.info, message), broker: 'test', reason }];
    });
    if (letters.length > 0) {
      if (!this.options.deadLetters) throw new Error('RecordingSink: refuse needs deadLetters');
      await this.options.deadLetters.store(letters);
      this.refused.push(...letters.map((l) => l.message));
    }
    for (const { txn } of batch) txn.pending--;
    this.inFlight -= batch.length;
    if (!this.full) for (const wake of this.waiters.splice(0)) wake();
    this.settle();
  }

  /** Confirms the newest committed transaction whose predecessors and itself are all acknowledged. */
  private settle(force = false): void {
    if (this.options.manualConfirm && !force) return;
    let newest: P | undefined;
    while (this.confirmedUpTo < this.transactions.length) {
      const txn = this.transactions[this.confirmedUpTo]!;
      if (txn.end === undefined || txn.pending > 0) break;
      newest = txn.end;
      this.confirmedUpTo++;
    }
    if (newest === undefined) return;
    this.confirmed.push(newest);
    this.session?.confirm(newest);
  }
}

/** The OutboundMessage the pipeline would build for a routed message. */
export function outbound(info: TransactionInfo, message: RoutedMessage): OutboundMessage {
  return {
    id: message.id ?? '',
    subject: message.subject,
    key: message.key,
    payload: message.payload,
    lsn: info.position,
    schema: message.schema,
    table: message.table,
    action: 'MESSAGE',
    headers: message.headers ?? null,
    properties: message.properties ?? null,
    exchange: message.exchange ?? null,
  };
}
