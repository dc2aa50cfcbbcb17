/**
 * Hands messages to the publisher in batches, keeps a bounded number in flight, retries failed
 * batches with backoff, forever, in order, and reports acknowledgements to the checkpointer.
 * Everything brokers share lives here once (STYLE.md); publishers only send and map replies.
 *
 * Ordering across failures: when a batch fails, no new batch is sent; once every batch in flight
 * has settled, the failed batches are re-sent one at a time in their original order, then
 * pipelining resumes. Broker-side dedup (the event id) makes the re-sent copies invisible.
 */
import { PublishError, WalListenerError, describeError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { OutboundMessage, Publisher } from '../publishers/publisher.js';
import { Backoff, sleep } from './backoff.js';
import type { Checkpointer, TxnRecord } from './checkpointer.js';

export interface DeliveryObserver {
  /** A batch was acknowledged by the broker (called once per batch). */
  acked(messages: readonly OutboundMessage[]): void;
  /** A batch failed and will be retried. */
  retrying(error: PublishError, attempt: number): void;
}

export interface DispatcherOptions {
  publisher: Publisher;
  checkpointer: Checkpointer;
  logger: Logger;
  /** Messages handed out and not yet acknowledged, at most. */
  maxInFlight: number;
  /** Messages per publish() call, at most. */
  maxBatch?: number;
  retry?: { initialMs: number; maxMs: number };
  observer?: DeliveryObserver;
  /** A message the broker will never accept: the pipeline must stop (nothing after it is confirmed). */
  onFatal(error: WalListenerError): void;
}

interface Batch {
  readonly seq: number;
  readonly messages: OutboundMessage[];
  /** Run-length list of the transactions the messages belong to, in order. */
  readonly txns: TxnRecord[];
  readonly counts: number[];
}

const NO_OBSERVER: DeliveryObserver = { acked() {}, retrying() {} };

export class Dispatcher {
  private readonly publisher: Publisher;
  private readonly checkpointer: Checkpointer;
  private readonly maxInFlight: number;
  private readonly maxBatch: number;
  private readonly observer: DeliveryObserver;
  private readonly backoff: Backoff;

  private current: Batch | null = null;
  private flushScheduled = false;
  private seq = 0;
  /** Messages added and not yet acknowledged (in batches being built, held, in flight or retried). */
  private outstanding = 0;
  private batchesInFlight = 0;
  /** Failed batches waiting to be re-sent, and batches built while retrying. */
  private readonly failed: Batch[] = [];
  private readonly held: Batch[] = [];
  private retrying = false;
  private stopped = false;
  private readonly waiters: { below: number; resolve: () => void }[] = [];
  private readonly abort = new AbortController();

  constructor(private readonly options: DispatcherOptions) {
    this.publisher = options.publisher;
    this.checkpointer = options.checkpointer;
    this.maxInFlight = options.maxInFlight;
    this.maxBatch = options.maxBatch ?? Math.max(1, Math.min(1024, options.maxInFlight >> 2));
    this.observer = options.observer ?? NO_OBSERVER;
    this.backoff = new Backoff(options.retry ?? { initialMs: 100, maxMs: 30_000 });
  }

  /** Messages not yet acknowledged. */
  get inFlight(): number {
    return this.outstanding;
  }

  /** True when the window is full: the reader should stop until `whenBelow` resolves. */
  get full(): boolean {
    return this.outstanding >= this.maxInFlight;
  }

  add(message: OutboundMessage, txn: TxnRecord): void {
    txn.pending++;
    this.outstanding++;
    let batch = this.current;
    if (batch === null) {
      batch = this.current = { seq: this.seq++, messages: [], txns: [], counts: [] };
    }
    batch.messages.push(message);
    const last = batch.txns.length - 1;
    if (last >= 0 && batch.txns[last] === txn) batch.counts[last]!++;
    else {
      batch.txns.push(txn);
      batch.counts.push(1);
    }
    if (batch.messages.length >= this.maxBatch) this.flush();
    else if (!this.flushScheduled) {
      // Everything decoded from one socket read goes into one batch; it leaves on the next turn.
      this.flushScheduled = true;
      setImmediate(this.flushTimer);
    }
  }

  private readonly flushTimer = (): void => {
    this.flushScheduled = false;
    this.flush();
  };

  /** Sends the batch being built now. */
  flush(): void {
    const batch = this.current;
    if (batch === null) return;
    this.current = null;
    if (this.retrying || this.failed.length > 0) this.held.push(batch);
    else this.send(batch);
  }

  /** Resolves when fewer than `count` messages are unacknowledged (default: half the window). */
  whenBelow(count = this.maxInFlight >> 1): Promise<void> {
    if (this.outstanding < count || this.outstanding === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ below: Math.max(1, count), resolve }));
  }

  /** Resolves when every message added so far has been acknowledged. */
  drained(): Promise<void> {
    this.flush();
    return this.whenBelow(1);
  }

  /** Stops retrying (shutdown); in-flight publishes may still settle. */
  stop(): void {
    this.stopped = true;
    this.abort.abort();
  }

  private send(batch: Batch): void {
    this.batchesInFlight++;
    let promise: Promise<void>;
    try {
      promise = this.publisher.publish(batch.messages);
    } catch (err) {
      promise = Promise.reject(err);
    }
    promise.then(
      () => {
        this.batchesInFlight--;
        this.acknowledge(batch);
        this.maybeRetry();
      },
      (err: unknown) => {
        this.batchesInFlight--;
        this.fail(batch, err);
      },
    );
  }

  private acknowledge(batch: Batch): void {
    const { txns, counts } = batch;
    for (let i = 0; i < txns.length; i++) this.checkpointer.ack(txns[i]!, counts[i]!);
    this.outstanding -= batch.messages.length;
    this.observer.acked(batch.messages);
    this.wake();
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const waiter = this.waiters[i]!;
      if (this.outstanding < waiter.below) {
        this.waiters.splice(i, 1);
        waiter.resolve();
      }
    }
  }

  /** The error as a retryable PublishError, or null after stopping the pipeline for a fatal one. */
  private retryable(err: unknown): PublishError | null {
    const error = err instanceof WalListenerError ? err : new PublishError(`publish failed: ${describeError(err)}`, true, { cause: err });
    if (error instanceof PublishError && error.retryable) return error;
    this.stop();
    this.options.onFatal(error);
    return null;
  }

  private fail(batch: Batch, err: unknown): void {
    const error = this.retryable(err);
    if (error === null) return;
    this.failed.push(batch);
    this.observer.retrying(error, this.backoff.attempts);
    if (this.failed.length === 1) {
      this.options.logger.warn({ err: error.message, lsn: batch.messages[0]?.lsn }, 'publish failed; retrying in order once in-flight publishes settle');
    }
    this.maybeRetry();
  }

  /** Once nothing is in flight, re-send failed batches one by one, in order, then resume. */
  private maybeRetry(): void {
    if (this.retrying || this.batchesInFlight > 0 || this.failed.length === 0 || this.stopped) return;
    this.retrying = true;
    this.failed.sort((a, b) => a.seq - b.seq);
    void this.retryLoop();
  }

  /**
   * Re-sends the oldest failed batch until the broker takes it (with backoff); that batch is the
   * probe. Then the other failed batches and those held meanwhile go out pipelined, in order.
   */
  private async retryLoop(): Promise<void> {
    const log = this.options.logger;
    const batch = this.failed[0]!;
    for (;;) {
      await sleep(this.backoff.next(), this.abort.signal);
      if (this.stopped) return;
      try {
        await this.publisher.publish(batch.messages);
        break;
      } catch (err) {
        const error = this.retryable(err);
        if (error === null) return;
        this.observer.retrying(error, this.backoff.attempts);
        log.warn({ err: error.message, attempt: this.backoff.attempts, lsn: batch.messages[0]?.lsn }, 'publish retry failed');
      }
    }
    if (this.stopped) return;
    this.failed.shift();
    this.acknowledge(batch);
    log.info({ attempts: this.backoff.attempts, resending: this.failed.length }, 'publishing recovered');
    this.backoff.reset();
    this.retrying = false;
    const next = [...this.failed.splice(0), ...this.held.splice(0)];
    for (const b of next) this.send(b);
  }
}
