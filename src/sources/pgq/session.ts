/**
 * One PgQ session on its own connection: next batch → stream its events into the sink → wait until
 * the pipeline confirms the batch → finish it (finish.ts) → next batch. PgQ gives a consumer one
 * batch at a time and hands the same batch out until it is finished, so the next batch can only be
 * read once this one is confirmed: at most one batch is in flight, and throughput is about one
 * batch per confirmation round trip (batches are large when the consumer is behind, see
 * queue-api.ts nextBatch). When no batch is ready the session polls every `pollMs` (PgQ has no
 * notification for ticks) and watches the ticker.
 *
 * A lost connection ends the session with WAL_PGQ_READ (not fatal): the daemon opens a new one and
 * PgQ hands out the unfinished batch again, same id and same events, so brokers drop what was
 * already delivered by message id.
 */
import type pg from 'pg';
import type { ChangeSink } from '../../pipeline/change.js';
import type { SourceSession } from '../../sources/source.js';
import { WalListenerError } from '../../errors.js';
import type { Logger } from '../../observability/logger.js';
import { readBatch } from './batch-reader.js';
import type { EventMapper } from './event-mapping.js';
import { finishBatch, type FinishPolicy, type FinishResult } from './finish.js';
import type { PgqDeadLetters } from './pgq-dead-letters.js';
import { comparePositions, type PgqPosition } from './position.js';
import { nextBatch, type BatchInfo } from './queue-api.js';
import { connectionLost as lostError, pgqError } from './server-errors.js';
import type { TickerWatch } from './ticker-watch.js';

/** What the PgQ source reports beyond the pipeline's own metrics; every hook optional. */
export interface PgqObserver {
  /** A batch was finished: its events and what became of the rejected ones. */
  finished?(events: number, result: FinishResult): void;
  /** No tick for longer than the queue's idle period allows (pgqd not running). */
  tickerStale?(lagSeconds: number): void;
}

export interface SessionOptions {
  readonly client: pg.Client;
  readonly sink: ChangeSink<PgqPosition>;
  readonly map: EventMapper;
  readonly queue: string;
  readonly consumer: string;
  readonly sourceHash: number;
  readonly fetchSize: number;
  readonly batchTarget: number;
  readonly pollMs: number;
  readonly deadLetters: PgqDeadLetters;
  readonly finishPolicy: FinishPolicy;
  readonly ticker: TickerWatch;
  readonly logger: Logger;
  readonly observer?: PgqObserver;
}

export function startSession(options: SessionOptions): SourceSession<PgqPosition> {
  const { client, queue, logger } = options;
  let stopping = false;
  let closing = false;
  let lost: WalListenerError | undefined;
  let wakeStopped!: () => void;
  const stopped = new Promise<void>((resolve) => (wakeStopped = resolve));
  /** The newest position the pipeline confirmed (it may confirm before the loop starts waiting). */
  let confirmed: PgqPosition | undefined;
  /** The batch handed over and waiting for its confirmation; resolves false when it never will be here. */
  let awaiting: { position: PgqPosition; settle(confirmed: boolean): void } | undefined;

  const stop = (): void => {
    stopping = true;
    wakeStopped();
  };
  const connectionLost = (err: unknown): void => {
    lost ??= lostError(err, `PgQ connection of queue ${queue}`);
    awaiting?.settle(false);
    stop();
  };
  const connectionEnded = (): void => connectionLost(new Error('the connection ended'));
  client.on('error', connectionLost);
  client.on('end', connectionEnded);

  const call = async <T>(doing: string, work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (err) {
      throw lost ?? pgqError(err, doing);
    }
  };

  const confirmation = (position: PgqPosition): Promise<boolean> =>
    new Promise((resolve) => {
      if (confirmed && comparePositions(confirmed, position) >= 0) return resolve(true);
      if (closing || lost) return resolve(false); // it can never be finished by this session
      awaiting = {
        position,
        settle(confirmed) {
          awaiting = undefined;
          resolve(confirmed);
        },
      };
    });

  const finish = async (batch: BatchInfo, events: number): Promise<void> => {
    const started = Date.now();
    const rejected = options.deadLetters.takeBatch(batch.batchId);
    const result = await call(`finishing batch ${batch.batchId} of queue ${queue}`, () => finishBatch(client, batch.batchId, rejected, options.finishPolicy));
    options.observer?.finished?.(events, result);
    if (result.retried > 0 || result.deadLettered > 0) {
      logger.warn({ queue, batchId: batch.batchId, retried: result.retried, deadLettered: result.deadLettered }, `PgQ batch ${batch.batchId}: ${result.retried} rejected event(s) sent back with pgq.event_retry, ${result.deadLettered} stored in wal_listener.dead_letters`);
    }
    logger.debug({ queue, batchId: batch.batchId, events, audited: result.audited, ms: Date.now() - started }, 'PgQ batch finished');
  };

  const sleep = async (ms: number): Promise<void> => {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([new Promise((resolve) => (timer = setTimeout(resolve, ms))), stopped]);
    clearTimeout(timer);
  };

  const run = async (): Promise<void> => {
    while (!stopping) {
      const batch = await call(`reading the next batch of queue ${queue}`, () => nextBatch(client, queue, options.consumer, options.batchTarget));
      if (!batch) {
        await call(`reading the ticker state of queue ${queue}`, () => options.ticker.check(client));
        await sleep(options.pollMs);
        continue;
      }
      options.deadLetters.beginBatch(batch.batchId);
      const outcome = await call(`reading batch ${batch.batchId} of queue ${queue}`, () => readBatch({ ...options, stopped, isStopped: () => stopping }, batch));
      if (outcome.kind === 'stopped') break;
      // An empty batch is finished at once: no earlier batch can be in flight (one at a time).
      if (outcome.events > 0 && !(await confirmation(outcome.position))) break;
      await finish(batch, outcome.events);
    }
    if (lost) throw lost;
  };

  const ended = run();
  ended.catch(() => undefined); // the daemon reads `ended`; this only keeps an early failure from being unhandled

  return {
    ended,
    confirm(position) {
      if (!confirmed || comparePositions(position, confirmed) > 0) confirmed = position;
      if (awaiting && comparePositions(position, awaiting.position) >= 0) awaiting.settle(true);
    },
    stop,
    async close() {
      // A confirmation that arrived is being finished by the loop; one that did not never will.
      closing = true;
      awaiting?.settle(false);
      stop();
      await ended.catch(() => undefined);
      client.removeListener('end', connectionEnded);
      await client.end().catch(() => undefined);
    },
  };
}
