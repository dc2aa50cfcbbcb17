/**
 * Drives a real publisher through the real Dispatcher, as the daemon does: for broker tests about
 * delivery rules (ordering per key across batches, re-sends after a failure, dead letters), which
 * belong to the dispatcher and no longer to the publishers.
 */
import { WalListenerError } from '../../src/errors.js';
import { createLogger } from '../../src/observability/logger.js';
import type { DeadLetter, DeadLetterStore } from '../../src/pipeline/dead-letters.js';
import { Dispatcher, type Delivery } from '../../src/pipeline/dispatcher.js';
import type { OutboundMessage } from '../../src/pipeline/message.js';
import type { Publisher } from '../../src/publishers/publisher.js';

/** Dead letters kept in memory (the daemon's store writes them to wal_listener.dead_letters). */
export class MemoryDeadLetters implements DeadLetterStore {
  readonly stored: DeadLetter[] = [];
  async store(letters: readonly DeadLetter[]): Promise<void> {
    this.stored.push(...letters);
  }
  async list(): Promise<never[]> {
    return [];
  }
  async remove(): Promise<void> {}
}

export interface DispatchOptions {
  ackTimeout?: number;
  deadLetters?: DeadLetterStore | null;
  /** Called between batches (after one was handed over): a test may inject a fault here. */
  between?: (index: number) => Promise<void> | void;
}

/**
 * Hands `batches` to a Dispatcher over `publisher`, each batch flushed as one publish, and waits
 * until every message was acknowledged or dead-lettered. Rejects on a fatal error.
 */
export async function dispatchAll(publisher: Publisher, batches: readonly (readonly OutboundMessage[])[], options: DispatchOptions = {}): Promise<void> {
  let fatal: WalListenerError | undefined;
  let failFatal: (err: WalListenerError) => void = () => undefined;
  const fatalPromise = new Promise<never>((_, reject) => (failFatal = reject));
  fatalPromise.catch(() => undefined);
  const dispatcher = new Dispatcher({
    publisher,
    logger: createLogger({ level: process.env.TEST_LOG_LEVEL === undefined ? 'fatal' : (process.env.TEST_LOG_LEVEL as 'info'), fmt: 'json' }),
    maxInFlight: 100_000,
    maxBatch: 100_000,
    ackTimeout: options.ackTimeout ?? 10_000,
    retry: { initialMs: 50, maxMs: 500 },
    reconnect: { initialMs: 50, maxMs: 500 },
    deadLetters: options.deadLetters ?? null,
    onFatal: (err) => {
      fatal = err;
      failFatal(err);
    },
  });
  const delivery: Delivery = { ack: () => undefined };
  try {
    for (let i = 0; i < batches.length; i++) {
      for (const message of batches[i]!) dispatcher.add(message, delivery);
      dispatcher.flush();
      await options.between?.(i);
      if (fatal) throw fatal;
    }
    await Promise.race([dispatcher.drained(), fatalPromise]);
  } finally {
    dispatcher.stop();
  }
}
