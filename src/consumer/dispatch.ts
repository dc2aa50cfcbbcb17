/**
 * The shared part of every consumer: decodes each delivery, skips ids already handled, and runs
 * the table's handler with per-key order (one change of a key at a time, in arrival order; up to
 * `concurrency` keys at once), retries with capped backoff, then dead-letters or stops. A delivery
 * is acknowledged only after its handler resolved.
 */
import { Backoff, sleep } from '../pipeline/backoff.js';
import type { Delivery } from './adapters/adapter.js';
import type { Decode, DecodedEvent } from './decode.js';
import { DeadLetterError, describe, HandlerFailedError } from './errors.js';
import type { ConsumerStats, DedupStore, Handler } from './types.js';

export interface DispatcherOptions {
  readonly decode: Decode;
  /** `"schema.table"` → handler. */
  readonly handlers: ReadonlyMap<string, Handler>;
  readonly concurrency: number;
  readonly maxAttempts: number;
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly dedup: DedupStore;
  /** Problems handled here (a failed try, a dead-lettered change). */
  readonly onError: (error: Error) => void;
  /** A problem that must stop the consumer. */
  readonly fatal: (error: Error) => void;
}

interface Task {
  readonly delivery: Delivery;
  readonly event: DecodedEvent;
  readonly handler: Handler;
}

export class Dispatcher {
  /** Per key: its tasks in arrival order; the first one is running or waiting in `ready`. */
  private readonly queues = new Map<string, Task[]>();
  /** Keys whose first task waits for a free slot. */
  private ready: string[] = [];
  private running = 0;
  private stopping = false;
  private readonly stopSignal = new AbortController();
  private onIdle: (() => void) | undefined;
  private readonly counters = { received: 0, handled: 0, duplicates: 0, retries: 0, deadLettered: 0, ignored: 0 };

  constructor(private readonly options: DispatcherOptions) {}

  get stats(): ConsumerStats {
    return { ...this.counters };
  }

  /** Takes one message, in broker order. */
  deliver(received: Delivery): void {
    this.counters.received++;
    const delivery = settleOnce(received);
    if (this.stopping) return delivery.release();
    let event: DecodedEvent;
    try {
      event = this.options.decode(delivery.body, delivery.key);
    } catch (err) {
      // Decoding gives the same result every time: no retries.
      void this.giveUp(delivery, err as Error);
      return;
    }
    const handler = this.options.handlers.get(event.table);
    if (!handler) {
      this.counters.ignored++;
      return delivery.ack();
    }
    const task: Task = { delivery, event, handler };
    const queue = this.queues.get(event.key);
    if (queue) {
      queue.push(task);
      return;
    }
    this.queues.set(event.key, [task]);
    this.ready.push(event.key);
    this.pump();
  }

  /**
   * Stops taking work: releases what has not started, lets running handlers finish (their
   * changes are acknowledged) for up to `timeoutMs`, then releases those too.
   */
  async drain(timeoutMs: number): Promise<void> {
    this.halt();
    for (const key of this.ready) this.releaseQueue(key, 0);
    this.ready = [];
    for (const key of this.queues.keys()) this.releaseQueue(key, 1);
    if (this.running > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([new Promise<void>((resolve) => (this.onIdle = resolve)), new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
      clearTimeout(timer);
    }
    for (const key of [...this.queues.keys()]) this.releaseQueue(key, 0);
  }

  /** Starts nothing more; cuts retry waits short. */
  private halt(): void {
    this.stopping = true;
    this.stopSignal.abort();
  }

  /** Nothing after a change that will never be handled may run: its key would go out of order. */
  private stop(error: Error): void {
    this.halt();
    this.options.fatal(error);
  }

  private pump(): void {
    while (this.running < this.options.concurrency && this.ready.length > 0 && !this.stopping) {
      this.running++;
      void this.runFirst(this.ready.shift()!);
    }
  }

  private async runFirst(key: string): Promise<void> {
    const queue = this.queues.get(key)!;
    await this.execute(queue[0]!);
    queue.shift();
    this.running--;
    if (queue.length === 0) this.queues.delete(key);
    else if (this.stopping) this.releaseQueue(key, 0);
    else this.ready.push(key);
    if (this.stopping && this.running === 0) this.onIdle?.();
    this.pump();
  }

  /** Runs a task to its end: acknowledged, dead-lettered, released, or stopping the consumer. Never throws. */
  private async execute({ delivery, event, handler }: Task): Promise<void> {
    const { change, table } = event;
    const { dedup, maxAttempts } = this.options;
    let backoff: Backoff | undefined;
    for (let attempt = 1; ; attempt++) {
      try {
        if (await dedup.has(change.id)) {
          this.counters.duplicates++;
          return delivery.ack();
        }
        await handler(change, { attempt });
        break;
      } catch (err) {
        const failure = new HandlerFailedError({ id: change.id, table, lsn: change.lsn, attempts: attempt }, err);
        if (this.stopping) return delivery.release();
        if (attempt >= maxAttempts) return this.giveUp(delivery, failure);
        this.counters.retries++;
        this.options.onError(failure);
        backoff ??= new Backoff({ initialMs: this.options.initialDelayMs, maxMs: this.options.maxDelayMs });
        delivery.extend?.();
        await sleep(backoff.next(), this.stopSignal.signal);
        if (this.stopping) return delivery.release();
      }
    }
    try {
      await dedup.add(change.id, change);
    } catch (err) {
      // The change was handled; only a later redelivery of it could be handled again.
      this.options.onError(new Error(`dedup store could not record event ${change.id}: ${describe(err)}`, { cause: err }));
    }
    this.counters.handled++;
    delivery.ack();
  }

  /** A change that will not be handled: to the dead-letter destination, or stop the consumer. */
  private async giveUp(delivery: Delivery, error: Error): Promise<void> {
    if (!delivery.deadLetter) {
      delivery.release();
      return this.stop(error);
    }
    try {
      await delivery.deadLetter(error);
      this.counters.deadLettered++;
      this.options.onError(error);
    } catch (err) {
      delivery.release();
      this.stop(new DeadLetterError(`could not dead-letter a message (${error.message}): ${describe(err)}`, { cause: err }));
    }
  }

  /** Releases the tasks of `key` from index `from` on. */
  private releaseQueue(key: string, from: number): void {
    const queue = this.queues.get(key);
    if (!queue) return;
    for (const task of queue.splice(from)) task.delivery.release();
    if (queue.length === 0) this.queues.delete(key);
  }
}

/** Broker messages must be settled once; a late ack after a release (stop timeout) is dropped. */
function settleOnce(delivery: Delivery): Delivery {
  let settled = false;
  const once =
    (settle: () => void) =>
    (): void => {
      if (settled) return;
      settled = true;
      try {
        settle();
      } catch {
        // The channel is gone: the broker redelivers the message, and dedup skips it if it was handled.
      }
    };
  const deadLetter = delivery.deadLetter;
  return {
    body: delivery.body,
    key: delivery.key,
    ack: once(() => delivery.ack()),
    release: once(() => delivery.release()),
    extend: delivery.extend ? () => delivery.extend!() : undefined,
    deadLetter: deadLetter
      ? async (reason) => {
          if (settled) return;
          await deadLetter.call(delivery, reason);
          settled = true;
        }
      : undefined,
  };
}
