/**
 * The LSN watermark (DESIGN.md "The delivery rule"). Transactions are tracked in commit order;
 * the confirmed LSN is the end LSN of the newest transaction T such that T and every transaction
 * before it were fully acknowledged (or had nothing to publish). Acks may arrive in any order.
 */
import type { Lsn } from '../sources/postgres/pgoutput.js';

export interface TxnRecord {
  /** Changes handed to the publisher and not yet acknowledged. */
  pending: number;
  /** End LSN from the Commit message; 0n until the commit has been read. */
  endLsn: Lsn;
  committed: boolean;
}

export class Checkpointer {
  private readonly queue: TxnRecord[] = [];
  private head = 0;
  private confirmedLsn: Lsn;

  constructor(startLsn: Lsn = 0n) {
    this.confirmedLsn = startLsn;
  }

  /** The LSN safe to report as flushed. Never decreases. */
  get confirmed(): Lsn {
    return this.confirmedLsn;
  }

  /** Transactions begun and not yet confirmed. */
  get open(): number {
    return this.queue.length - this.head;
  }

  begin(): TxnRecord {
    const txn: TxnRecord = { pending: 0, endLsn: 0n, committed: false };
    this.queue.push(txn);
    return txn;
  }

  /** The transaction's last change has been handed out; it can be confirmed once all are acked. */
  commit(txn: TxnRecord, endLsn: Lsn): void {
    txn.endLsn = endLsn;
    txn.committed = true;
    this.advance();
  }

  /** `count` changes of `txn` were acknowledged by the broker. */
  ack(txn: TxnRecord, count: number): void {
    txn.pending -= count;
    if (txn.pending < 0) throw new Error('checkpointer: more acks than changes');
    if (txn.pending === 0 && txn.committed) this.advance();
  }

  /** A keepalive's WAL end may be confirmed only when nothing is open or in flight. */
  confirmIdle(walEnd: Lsn): boolean {
    if (this.open !== 0 || walEnd <= this.confirmedLsn) return false;
    this.confirmedLsn = walEnd;
    return true;
  }

  private advance(): void {
    const queue = this.queue;
    let head = this.head;
    while (head < queue.length) {
      const txn = queue[head]!;
      if (!txn.committed || txn.pending !== 0) break;
      if (txn.endLsn > this.confirmedLsn) this.confirmedLsn = txn.endLsn;
      head++;
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
