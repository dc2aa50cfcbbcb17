/**
 * The position watermark (DESIGN.md "The delivery rule"). Transactions are tracked in source
 * order; the confirmed position is the end of the newest transaction T such that T and every
 * transaction before it were fully acknowledged (or had nothing to publish, or were
 * dead-lettered). Acknowledgements may arrive in any order. `P` is the source's position type.
 */

export interface TxnRecord<P> {
  /** Messages handed to the dispatcher and not yet acknowledged. */
  pending: number;
  /** End position from the commit; undefined until the commit has been read. */
  end: P | undefined;
  committed: boolean;
  /** Called once when the transaction is confirmed (it and everything before it acknowledged). */
  acknowledged?: (() => void) | undefined;
}

export class Checkpointer<P> {
  private readonly queue: TxnRecord<P>[] = [];
  private head = 0;
  private confirmedPosition: P | undefined;
  private moved = false;

  /** `compare` (negative, 0, positive like a sort comparator) keeps idle confirmations from going backwards. */
  constructor(
    start?: P,
    private readonly compare?: (a: P, b: P) => number,
  ) {
    this.confirmedPosition = start;
  }

  /** The position safe to confirm to the source, or undefined before anything was confirmed. */
  get confirmed(): P | undefined {
    return this.confirmedPosition;
  }

  /** True once after the confirmed position moved (read and reset by the caller). */
  takeMoved(): boolean {
    const moved = this.moved;
    this.moved = false;
    return moved;
  }

  /** Transactions begun and not yet confirmed. */
  get open(): number {
    return this.queue.length - this.head;
  }

  /** Starts tracking `txn` (its fields are reset). */
  begin<T extends TxnRecord<P>>(txn: T): T {
    txn.pending = 0;
    txn.end = undefined;
    txn.committed = false;
    this.queue.push(txn);
    return txn;
  }

  /** The transaction's last message has been handed out; it can be confirmed once all are acked. */
  commit(txn: TxnRecord<P>, end: P, acknowledged?: () => void): void {
    txn.end = end;
    txn.acknowledged = acknowledged;
    txn.committed = true;
    if (txn.pending === 0) this.advance();
  }

  /** `count` messages of `txn` were acknowledged (or dead-lettered). */
  ack(txn: TxnRecord<P>, count: number): void {
    txn.pending -= count;
    if (txn.pending < 0) throw new Error('checkpointer: more acks than messages');
    if (txn.pending === 0 && txn.committed) this.advance();
  }

  /** A position reached outside any transaction is confirmed only when nothing is open. */
  confirmIdle(position: P): boolean {
    if (this.open !== 0) return false;
    const confirmed = this.confirmedPosition;
    if (confirmed !== undefined && this.compare && this.compare(position, confirmed) <= 0) return false;
    this.confirmedPosition = position;
    this.moved = true;
    return true;
  }

  private advance(): void {
    const queue = this.queue;
    let head = this.head;
    while (head < queue.length) {
      const txn = queue[head]!;
      if (!txn.committed || txn.pending !== 0) break;
      this.confirmedPosition = txn.end;
      this.moved = true;
      head++;
      txn.acknowledged?.();
    }
    if (head === queue.length) {
      queue.length = 0;
      this.head = 0;
    } else if (head > 1024 && head * 2 > queue.length) {
      queue.splice(0, head);
      this.head = 0;
    } else {
      this.head = head;
    }
  }
}
