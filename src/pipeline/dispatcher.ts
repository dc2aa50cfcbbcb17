/**
 * Hands messages to the publisher in batches and owns everything brokers share (STYLE.md): the
 * in-flight window, the per-batch ack deadline, retries with capped backoff and jitter, ordering
 * across failures, reconnecting after a lost connection, the dead-letter policy and delivery
 * telemetry. Publishers only send a batch and map the reply.
 *
 * Rules:
 * - Window: at most `maxInFlight` messages (and `maxInFlightBytes` of payloads) handed out and
 *   not acknowledged; the source stops reading while it is full. Messages leave in batches of at
 *   most `maxBatch`: everything a source hands over in one turn of the event loop goes together,
 *   and while a batch is in flight a partial one keeps collecting until that batch settles.
 * - Deadline: a batch not acknowledged within `ackTimeout` is aborted through its signal and
 *   counts as failed (retryable).
 * - Lost connection: when the publisher reports `lost`, every unacknowledged batch is aborted at
 *   once (no waiting for deadlines) and re-sent, in order, as soon as the publisher reports
 *   `restored` or a reconnect attempt succeeds (attempts every 0.25–2 s while it is down).
 * - Failure: once a batch fails, nothing new is sent. When every batch in flight has settled, the
 *   oldest failed batch is re-sent alone as a probe (backoff 0.1–30 s while the broker is
 *   reachable but refuses); once it is acknowledged, the other failed batches and those built
 *   meanwhile go out in their original order.
 * - Ordering per key: a batch is sent only when none of its keys (the row key; the ordering unit of
 *   every broker) is in a batch still in flight, and batches leave in order (a held batch holds
 *   those after it). So a batch whose fate is unknown (timed out, connection lost) is settled —
 *   acknowledged, possibly after re-sends — before any later change of the same key is sent, and a
 *   consumer never sees a key's changes stored out of commit order. Unrelated keys still pipeline.
 *   A publisher that writes in order and fails for good (`inOrder`: stdout) needs no such
 *   bookkeeping: what it was given first is written first, and nothing is re-sent after a failure.
 *   A re-sent copy of a batch that the broker did store carries the same event ids (dropped by
 *   JetStream's dedup; a duplicate with the same id elsewhere).
 * - Rejection (a message the broker will never accept): found before sending when it exceeds the
 *   size the broker announced (in order: nothing after it has gone out), or reported by the broker
 *   (`PublishError.rejected`; a batch whose culprit is unknown is re-sent one message at a time to
 *   find it). With a dead-letter store the message is stored there, in order, and counts as
 *   delivered once stored; the rest of its batch is re-sent. Without one, `onFatal` stops the daemon;
 *   nothing after the message is confirmed.
 */
import { PublishError, WalListenerError, describeError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { Publisher } from '../publishers/publisher.js';
import { Backoff, sleep } from './backoff.js';
import type { DeadLetterStore } from './dead-letters.js';
import { DEFAULT_MAX_IN_FLIGHT_BYTES, describeMessage, payloadBytes, type OutboundMessage } from './message.js';
import type { PipelineObserver } from './observer.js';

/** Where acknowledgements of a transaction's messages go (the checkpointer's record of it). */
export interface Delivery {
  ack(count: number): void;
}

export interface DispatcherOptions {
  publisher: Publisher;
  logger: Logger;
  /** Messages handed out and not yet acknowledged, at most. */
  maxInFlight: number;
  /**
   * Payload bytes handed out and not yet acknowledged before the source must wait (default 8 MiB):
   * large rows (TOAST) fill memory long before `maxInFlight` messages.
   */
  maxInFlightBytes?: number;
  /** Messages per publish() call, at most. */
  maxBatch?: number;
  /** Deadline for a batch's acknowledgement, ms. */
  ackTimeout: number;
  /** Backoff while the broker is reachable but failing. */
  retry?: { initialMs: number; maxMs: number };
  /** Backoff between reconnect attempts while the publisher is down. */
  reconnect?: { initialMs: number; maxMs: number };
  /** How long an outage may last before it is logged at error level (and so reaches Sentry). */
  outageErrorAfterMs?: number;
  /** `publisher.onReject: deadLetter`: where rejected messages go; null = stop. */
  deadLetters: DeadLetterStore | null;
  observer?: PipelineObserver;
  /** A rejected message with onReject: stop, or a broker setup error: the daemon must stop. */
  onFatal(error: WalListenerError): void;
}

interface Batch {
  readonly seq: number;
  messages: OutboundMessage[];
  /** Run-length list of the deliveries (transactions) the messages belong to, in order. */
  deliveries: Delivery[];
  counts: number[];
  /** Why a message is refused before sending (too large, unusable subject): dead-lettered or fatal, never sent. */
  oversized: string | null;
  /** Re-send one message at a time (a rejection named no culprit). */
  single: boolean;
  sentAt: number;
  controller: AbortController | null;
  timer: NodeJS.Timeout | undefined;
}

const LOST = 'publisher connection lost';

export class Dispatcher {
  private readonly publisher: Publisher;
  private readonly log: Logger;
  private readonly observer: PipelineObserver;
  private readonly maxInFlight: number;
  private readonly maxBatch: number;
  private readonly retryBackoff: Backoff;
  private readonly reconnectBackoff: Backoff;

  private current: Batch | null = null;
  private flushScheduled = false;
  /** The batch being built waits for the next batch in flight to settle (see flushSoon). */
  private flushOnSettle = false;
  private seq = 0;
  /** Messages added and not yet acknowledged (building, queued, in flight, failed, being dead-lettered). */
  private outstanding = 0;
  /** Payload bytes of those messages. */
  private outstandingBytes = 0;
  private readonly maxInFlightBytes: number;
  /** Built batches waiting to be sent, in order. */
  private queue: Batch[] = [];
  private readonly inFlight = new Set<Batch>();
  /** Batches with a publish under way (in flight, or a re-send during recovery): aborted on a lost connection. */
  private readonly active = new Set<Batch>();
  /** Keys of the batches in flight, with counts (not kept for a publisher that writes in order, see Publisher.inOrder). */
  private readonly keys = new Map<string, number>();
  private readonly keyed: boolean;
  /** Publisher.releasesPayloads: acknowledged change events' chunks may be written over. */
  private readonly releasesPayloads: boolean;
  private failed: Batch[] = [];
  private recovering = false;
  private outageSince = 0;
  private outageTimer: NodeJS.Timeout | undefined;
  private loggedOutage = false;
  private stopped = false;
  private readonly stopController = new AbortController();
  private wakeRecovery: (() => void) | null = null;
  private deadLetterTail: Promise<void> = Promise.resolve();
  private readonly waiters: { below: number; bytes: number; resolve: () => void }[] = [];
  /** drained() calls after a stop: they wait only for the publishes still under way. */
  private quietWaiters: (() => void)[] = [];

  constructor(private readonly options: DispatcherOptions) {
    this.publisher = options.publisher;
    this.keyed = options.publisher.inOrder !== true;
    this.releasesPayloads = options.publisher.releasesPayloads === true;
    this.log = options.logger;
    this.observer = options.observer ?? {};
    this.maxInFlight = options.maxInFlight;
    this.maxInFlightBytes = options.maxInFlightBytes ?? DEFAULT_MAX_IN_FLIGHT_BYTES;
    this.maxBatch = options.maxBatch ?? Math.max(1, Math.min(1024, options.maxInFlight >> 2));
    this.retryBackoff = new Backoff(options.retry ?? { initialMs: 100, maxMs: 30_000 });
    this.reconnectBackoff = new Backoff(options.reconnect ?? { initialMs: 250, maxMs: 2_000 });
    this.publisher.events.on('lost', this.onLost);
    this.publisher.events.on('restored', this.onRestored);
    this.observer.inFlight?.(() => this.outstanding);
    this.observer.oldestUnacked?.(() => this.oldestAge());
  }

  /** Messages not yet acknowledged. */
  get pending(): number {
    return this.outstanding;
  }

  /** True when the window is full: the source should stop until `whenBelow` resolves. */
  get full(): boolean {
    return this.outstanding >= this.maxInFlight || this.outstandingBytes >= this.maxInFlightBytes;
  }

  /** True while publishing works: no failed batch waiting, publisher connected. */
  get healthy(): boolean {
    return !this.recovering && this.failed.length === 0 && this.publisher.healthy();
  }

  /**
   * Hands a message over. `refusal`: a reason the broker can never take it, known before sending
   * (a subject it cannot use); a message over the size the broker announced is refused the same way.
   */
  add(message: OutboundMessage, delivery: Delivery, refusal: string | null = null): void {
    this.outstanding++;
    this.outstandingBytes += message.payload.length;
    if (refusal === null) {
      const limit = this.publisher.maxPayloadBytes(message);
      if (exceeds(message, limit)) refusal = `message of ${payloadBytes(message)} bytes exceeds the ${limit}-byte limit ${this.publisher.kind} announced`;
    }
    if (refusal !== null) {
      // Found before sending, in order: everything before it leaves first, nothing after it overtakes.
      this.flush();
      const batch = this.newBatch();
      this.append(batch, message, delivery);
      batch.oversized = refusal;
      this.queue.push(batch);
      this.pump();
      return;
    }
    const batch = (this.current ??= this.newBatch());
    this.append(batch, message, delivery);
    if (batch.messages.length >= this.maxBatch) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushSoon);
    }
  }

  /** Sends the batch being built. */
  flush(): void {
    this.flushOnSettle = false;
    const batch = this.current;
    if (batch === null) return;
    this.current = null;
    this.queue.push(batch);
    this.pump();
  }

  /**
   * Resolves when fewer than `count` messages are unacknowledged; by default when the window is
   * half empty: fewer than half of maxInFlight messages and of maxInFlightBytes.
   */
  whenBelow(count?: number): Promise<void> {
    const below = count ?? this.maxInFlight >> 1;
    const bytes = count === undefined ? this.maxInFlightBytes / 2 : Infinity;
    if (this.outstanding === 0 || (this.outstanding < below && this.outstandingBytes < bytes)) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ below: Math.max(1, below), bytes, resolve }));
  }

  /**
   * Resolves when every message added so far has been acknowledged (or dead-lettered). Once
   * stopped (a fatal error), nothing more is sent or re-sent: it resolves when the publishes still
   * under way have settled, since nothing else can be acknowledged any more.
   */
  drained(): Promise<void> {
    if (this.stopped) return this.active.size === 0 ? Promise.resolve() : new Promise((resolve) => this.quietWaiters.push(resolve));
    this.flush();
    return this.whenBelow(1);
  }

  /** After a stop, releases drained() once no publish is under way (its outcome already processed). */
  private maybeQuiet(): void {
    if (!this.stopped || this.active.size > 0 || this.quietWaiters.length === 0) return;
    for (const resolve of this.quietWaiters.splice(0)) resolve();
  }

  /** Stops sending and retrying (shutdown, fatal error); publishes in flight may still settle. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.stopController.abort();
    this.wakeRecovery?.();
    clearTimeout(this.outageTimer);
    this.publisher.events.off('lost', this.onLost);
    this.publisher.events.off('restored', this.onRestored);
  }

  /**
   * End of the event-loop turn. While a batch is in flight, a partial batch keeps collecting until
   * it settles (or the batch is full): a steady trickle of small transactions then goes out in a
   * batch per acknowledgement round trip, not a batch (a publish, a deadline timer) per turn.
   */
  private readonly flushSoon = (): void => {
    this.flushScheduled = false;
    if (this.inFlight.size > 0 && !this.stopped && !this.recovering) {
      this.flushOnSettle = true;
      return;
    }
    this.flush();
  };

  private flushDeferred(): void {
    if (!this.flushOnSettle) return;
    this.flushOnSettle = false;
    this.flush();
  }

  private newBatch(): Batch {
    return { seq: this.seq++, messages: [], deliveries: [], counts: [], oversized: null, single: false, sentAt: 0, controller: null, timer: undefined };
  }

  private append(batch: Batch, message: OutboundMessage, delivery: Delivery): void {
    batch.messages.push(message);
    const last = batch.deliveries.length - 1;
    if (last >= 0 && batch.deliveries[last] === delivery) batch.counts[last]!++;
    else {
      batch.deliveries.push(delivery);
      batch.counts.push(1);
    }
  }

  /** Sends queued batches in order while none of their keys is in flight. */
  private pump(): void {
    if (this.stopped || this.recovering) return;
    const queue = this.queue;
    let sent = 0;
    while (sent < queue.length) {
      const batch = queue[sent]!;
      if (batch.oversized !== null) {
        sent++;
        this.reject(batch, 0, batch.oversized);
        if (this.stopped) break;
        continue;
      }
      if (this.overlaps(batch)) break;
      sent++;
      this.send(batch);
      if (this.recovering || this.stopped) break;
    }
    if (sent > 0) this.queue = sent === queue.length ? [] : queue.slice(sent);
  }

  private overlaps(batch: Batch): boolean {
    if (!this.keyed || this.keys.size === 0) return false;
    const messages = batch.messages;
    for (let i = 0; i < messages.length; i++) if (this.keys.has(messages[i]!.key)) return true;
    return false;
  }

  private holdKeys(batch: Batch, delta: 1 | -1): void {
    if (!this.keyed) return;
    const keys = this.keys;
    const messages = batch.messages;
    for (let i = 0; i < messages.length; i++) {
      const key = messages[i]!.key;
      const count = (keys.get(key) ?? 0) + delta;
      if (count <= 0) keys.delete(key);
      else keys.set(key, count);
    }
  }

  private send(batch: Batch): void {
    if (!this.publisher.healthy() && !this.recovering) {
      // Reconnect-on-publish: a publisher that lost its connection while idle is reconnected first.
      this.enterRecovery(new PublishError(`${this.publisher.kind} is not connected`, true));
      this.failed.push(batch);
      this.maybeRecover();
      return;
    }
    this.holdKeys(batch, 1);
    this.inFlight.add(batch);
    this.attempt(batch).then(
      () => {
        this.settle(batch);
        this.acknowledge(batch);
        this.pump();
        this.flushDeferred();
        this.maybeRecover();
        this.maybeQuiet();
      },
      (err: unknown) => {
        this.settle(batch);
        this.failure(batch, err);
        this.flushDeferred();
        this.maybeQuiet();
      },
    );
  }

  private settle(batch: Batch): void {
    this.inFlight.delete(batch);
    this.holdKeys(batch, -1);
  }

  /** One publish of a batch with its deadline; rejects with a PublishError or a setup error. */
  private attempt(batch: Batch): Promise<void> {
    const controller = new AbortController();
    batch.controller = controller;
    batch.sentAt = Date.now();
    const ackTimeout = this.options.ackTimeout;
    batch.timer = setTimeout(() => {
      this.observer.ackTimeout?.();
      controller.abort(new PublishError(`${this.publisher.kind} did not acknowledge ${batch.messages.length} message(s) within ${ackTimeout} ms (first: ${describeMessage(batch.messages[0])})`, true));
    }, ackTimeout);
    this.active.add(batch);
    let promise: Promise<void>;
    try {
      promise = this.publisher.publish(batch.messages, controller.signal);
    } catch (err) {
      promise = Promise.reject(err);
    }
    return promise.finally(() => {
      clearTimeout(batch.timer);
      batch.controller = null;
      this.active.delete(batch);
    });
  }

  private acknowledge(batch: Batch): void {
    const { deliveries, counts } = batch;
    for (let i = 0; i < deliveries.length; i++) deliveries[i]!.ack(counts[i]!);
    this.outstanding -= batch.messages.length;
    const messages = batch.messages;
    this.observer.acked?.(messages);
    // After the observers (the live console copies what it sends): nothing reads these payloads now.
    const releases = this.releasesPayloads;
    for (let i = 0; i < messages.length; i++) {
      const message = messages[i]!;
      this.outstandingBytes -= message.payload.length;
      if (releases) release(message);
    }
    this.wake();
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const waiter = this.waiters[i]!;
      if (this.outstanding === 0 || (this.outstanding < waiter.below && this.outstandingBytes < waiter.bytes)) {
        this.waiters.splice(i, 1);
        waiter.resolve();
      }
    }
  }

  private failure(batch: Batch, err: unknown): void {
    if (this.stopped) return;
    const error = err instanceof WalListenerError ? err : new PublishError(`publish failed: ${describeError(err)}`, true, { cause: err });
    if (!(error instanceof PublishError)) {
      // A setup problem (WAL_PUBLISH_CONFIG) or anything else the publisher classified as fatal.
      if (error.fatal) return this.fatal(error);
    }
    this.observer.publishFailed?.(error);
    if (error instanceof PublishError && !error.retryable) {
      const index = error.rejected ?? (batch.messages.length === 1 ? 0 : undefined);
      if (index !== undefined && index < batch.messages.length) {
        this.reject(batch, index, error.message);
        this.pump();
        this.maybeRecover();
        return;
      }
      // The broker refused something in the batch without saying what: find it one message at a time.
      batch.single = true;
    }
    this.enterRecovery(error);
    this.failed.push(batch);
    this.maybeRecover();
  }

  private enterRecovery(error: WalListenerError): void {
    if (this.recovering) return;
    this.recovering = true;
    this.outageSince = Date.now();
    this.loggedOutage = false;
    this.observer.publisherState?.(false, error.message);
    this.log.warn({ err: error.message, code: error.code, inFlight: this.outstanding }, 'publish failed; holding newer messages and re-sending in order');
    const after = this.options.outageErrorAfterMs ?? 3_000;
    clearTimeout(this.outageTimer);
    this.outageTimer = setTimeout(() => {
      if (!this.recovering || this.stopped) return;
      this.loggedOutage = true;
      this.log.error({ code: 'WAL_PUBLISH_RETRYABLE', publisher: this.publisher.kind, err: error.message, since: new Date(this.outageSince).toISOString(), waiting: this.outstanding }, `${this.publisher.kind} is not acknowledging; retrying (nothing after the first unacknowledged change is confirmed)`);
    }, after);
    this.outageTimer.unref();
  }

  private readonly onLost = (reason: Error): void => {
    if (this.stopped) return;
    const error = new PublishError(`${LOST}: ${reason.message}`, true, { cause: reason });
    this.enterRecovery(error);
    // Everything unacknowledged fails at once: it is re-sent when the connection is back.
    for (const batch of this.active) batch.controller?.abort(error);
    this.maybeRecover();
  };

  private readonly onRestored = (): void => {
    this.observer.reconnect?.('publisher');
    this.wakeRecovery?.();
  };

  /** Starts the recovery loop once nothing is in flight. */
  private maybeRecover(): void {
    if (!this.recovering || this.stopped || this.inFlight.size > 0 || this.wakeRecovery !== null) return;
    // With nothing failed (a connection lost while idle) the loop only reconnects.
    void this.recover();
  }

  /**
   * Reconnects when needed and re-sends the oldest failed batch until the broker takes it (the
   * probe); then the rest go out in order and pipelining resumes.
   */
  private async recover(): Promise<void> {
    const signal = this.stopController.signal;
    this.wakeRecovery = () => {};
    try {
      for (;;) {
        if (this.stopped) return;
        this.failed.sort((a, b) => a.seq - b.seq);
        const probe = this.failed[0];
        const connected = await this.reconnect(signal);
        if (this.stopped) return;
        if (!connected) continue;
        if (probe === undefined) break; // nothing failed: the connection is back
        if (probe.oversized !== null) {
          this.failed.shift();
          this.reject(probe, 0, probe.oversized);
          continue;
        }
        try {
          this.observer.retrying?.(this.retryBackoff.attempts + 1);
          await this.resend(probe);
          this.failed.shift();
          this.acknowledge(probe);
          break;
        } catch (err) {
          if (this.stopped) return;
          const error = err instanceof WalListenerError ? err : new PublishError(describeError(err), true, { cause: err });
          if (error instanceof PublishError && !error.retryable) {
            this.failed.shift();
            this.reject(probe, error.rejected ?? 0, error.message);
            if (this.failed.length === 0) break;
            continue;
          }
          if (!(error instanceof PublishError) && error.fatal) return this.fatal(error);
          this.observer.publishFailed?.(error);
          this.log.warn({ err: error.message, attempt: this.retryBackoff.attempts, first: describeMessage(probe.messages[0]) }, 'publish retry failed');
          await this.pause(this.retryBackoff.next(), signal);
        }
      }
    } finally {
      this.wakeRecovery = null;
      this.maybeQuiet();
    }
    if (this.stopped) return;
    const outage = Date.now() - this.outageSince;
    this.log[this.loggedOutage ? 'warn' : 'info']({ afterMs: outage, resending: this.failed.length }, 'publishing recovered');
    clearTimeout(this.outageTimer);
    this.retryBackoff.reset();
    this.reconnectBackoff.reset();
    this.recovering = false;
    this.observer.publisherState?.(true, 'publishing');
    // Each failed batch still waiting is re-sent once more: a retry attempt each.
    for (let i = 0; i < this.failed.length; i++) this.observer.retrying?.(1);
    this.queue = [...this.failed.splice(0), ...this.queue];
    this.pump();
  }

  /** Makes sure the publisher is connected; false after a failed attempt (and its backoff pause). */
  private async reconnect(signal: AbortSignal): Promise<boolean> {
    if (this.publisher.healthy()) return true;
    try {
      await this.publisher.connect();
      if (this.publisher.healthy()) return true;
    } catch (err) {
      if (err instanceof WalListenerError && !(err instanceof PublishError) && err.fatal) {
        this.fatal(err);
        return false;
      }
      this.log.debug({ err: describeError(err) }, 'publisher reconnect attempt failed');
    }
    await this.pause(this.reconnectBackoff.next(), signal);
    return false;
  }

  /** Waits `ms`, or less when the publisher reports its connection restored. */
  private pause(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      let resolved = false;
      const done = (): void => {
        // Once only: woken by 'restored', the sleep's timer still fires later, maybe after the
        // recovery ended; marking a recovery as running then would block every later one (a stall).
        if (resolved) return;
        resolved = true;
        if (this.wakeRecovery === done) this.wakeRecovery = () => {};
        resolve();
      };
      this.wakeRecovery = done;
      void sleep(ms, signal).then(done);
    });
  }

  /** Re-sends a failed batch (one message at a time when its culprit is unknown). */
  private async resend(batch: Batch): Promise<void> {
    if (!batch.single) {
      await this.attempt(batch);
      return;
    }
    for (let i = 0; i < batch.messages.length; i++) {
      const one = { ...batch, messages: [batch.messages[i]!] };
      try {
        await this.attempt(one);
      } catch (err) {
        if (err instanceof PublishError && !err.retryable) throw new PublishError(err.message, false, { cause: err, rejected: i });
        throw err;
      }
    }
  }

  /**
   * Message `index` of `batch` will never be accepted. Dead-letter it (the rest of the batch is
   * re-sent) or stop.
   */
  private reject(batch: Batch, index: number, reason: string): void {
    const message = batch.messages[index]!;
    const delivery = deliveryAt(batch, index);
    const store = this.options.deadLetters;
    this.observer.rejected?.([message], reason);
    if (store === null) {
      return this.fatal(new PublishError(`${this.publisher.kind} will never accept the message for ${describeMessage(message)} (id ${message.id}): ${reason}. Set publisher.onReject: deadLetter to store such messages and go on, or raise the broker's limit and restart`, false));
    }
    this.log.error({ code: 'WAL_PUBLISH_REJECTED', table: `${message.schema}.${message.table}`, lsn: message.lsn, id: message.id, reason }, 'message rejected by the broker; stored as a dead letter');
    // The rest of the batch goes back, in order, ahead of everything newer.
    const rest = this.without(batch, index);
    if (rest !== null) {
      if (this.recovering) this.failed.push(rest);
      else this.queue.unshift(rest);
    }
    this.deadLetterTail = this.deadLetterTail.then(() => this.storeDeadLetter(store, message, reason, delivery));
  }

  private async storeDeadLetter(store: DeadLetterStore, message: OutboundMessage, reason: string, delivery: Delivery): Promise<void> {
    const backoff = new Backoff({ initialMs: 200, maxMs: 30_000 });
    for (;;) {
      try {
        await store.store([{ message, broker: this.publisher.kind, reason }]);
        break;
      } catch (err) {
        if (this.stopped) return;
        this.log.error({ code: 'WAL_DEAD_LETTER', err: describeError(err), id: message.id }, 'could not store a dead letter; retrying (nothing after it is confirmed)');
        await sleep(backoff.next(), this.stopController.signal);
        if (this.stopped) return;
      }
    }
    delivery.ack(1);
    this.outstanding--;
    this.outstandingBytes -= message.payload.length;
    this.wake();
  }

  /** The batch without message `index` (same seq, so it keeps its place), or null when it was alone. */
  private without(batch: Batch, index: number): Batch | null {
    if (batch.messages.length === 1) return null;
    const rest = this.newBatchAt(batch.seq, batch.single);
    for (let i = 0; i < batch.messages.length; i++) if (i !== index) this.append(rest, batch.messages[i]!, deliveryAt(batch, i));
    return rest;
  }

  private newBatchAt(seq: number, single: boolean): Batch {
    return { ...this.newBatch(), seq, single };
  }

  private fatal(error: WalListenerError): void {
    if (this.stopped) return;
    this.stop();
    this.options.onFatal(error);
  }

  /** Age of the oldest unacknowledged batch that was sent, ms (0 when none). */
  private oldestAge(): number {
    let oldest = Infinity;
    for (const batch of this.inFlight) if (batch.sentAt < oldest) oldest = batch.sentAt;
    if (this.recovering) oldest = Math.min(oldest, this.outageSince);
    return oldest === Infinity ? 0 : Date.now() - oldest;
  }
}

/**
 * Whether a payload is over `limit` bytes. Counting a string's UTF-8 bytes scans it (it was 14% of
 * the daemon's CPU on a catch-up): a UTF-16 unit is at most 3 bytes, so most strings need no count.
 */
function exceeds(message: OutboundMessage, limit: number): boolean {
  if (limit === Infinity) return false;
  const payload = message.payload;
  if (typeof payload !== 'string') return payload.length > limit;
  return payload.length * 3 > limit && Buffer.byteLength(payload) > limit;
}

/** The delivery of message `index` of a batch (from the run-length list). */
function deliveryAt(batch: Batch, index: number): Delivery {
  let seen = 0;
  for (let i = 0; i < batch.deliveries.length; i++) {
    seen += batch.counts[i]!;
    if (index < seen) return batch.deliveries[i]!;
  }
  throw new Error(`dispatcher: message ${index} is outside its batch`);
}

/** Releases a message's payload lease once (json-out.ts): a message is acknowledged only once, and the lease is cleared. */
function release(message: OutboundMessage): void {
  const lease = message.lease;
  if (lease == null) return;
  message.lease = null;
  lease.release();
}
