/**
 * The PgQ source (`source.type: pgq`): reads a PgQ queue as consumer `pgq.consumerName` with
 * `database.*`, maps each event the way mikkoo does (event-mapping.ts) and finishes a batch only
 * when the pipeline confirmed all of it. PgQ keeps the consumer's position itself (its
 * subscription), so the source stores nothing of its own but dead letters and the audit.
 */
import { hostname } from 'node:os';
import type pg from 'pg';
import type { Config } from '../../config/schema.js';
import { ConfigError, WalListenerError, describeError } from '../../errors.js';
import type { Logger } from '../../observability/logger.js';
import type { ChangeSink } from '../../pipeline/change.js';
import { sourceHash } from '../../pipeline/event-id.js';
import type { Source, SourceSession } from '../source.js';
import { connectClient } from '../postgres/connection-options.js';
import { SqlClient } from '../postgres/sql-client.js';
import { ensureAuditTable } from './audit-table.js';
import { createEventMapper } from './event-mapping.js';
import { messageIdPrefix, queueHash } from './ids.js';
import { PgqDeadLetters } from './pgq-dead-letters.js';
import { comparePositions, type PgqPosition } from './position.js';
import { checkQueue, consumerBacklog, finishBatch, identity, PGQ_SESSION_OPTIONS, registerConsumer, unregisterConsumer } from './queue-api.js';
import { pgqError } from './server-errors.js';
import { startSession, type PgqObserver } from './session.js';
import { TickerWatch } from './ticker-watch.js';

export type { PgqPosition } from './position.js';
export type { PgqObserver } from './session.js';

/** Knobs with fixed values in production; tests and benchmarks shorten them. */
export interface PgqTuning {
  /** Wait between two looks for a batch when none is ready. */
  readonly pollMs: number;
  /** Events fetched from the batch cursor at a time. */
  readonly fetchSize: number;
  /** About how many events a batch merges when the consumer is behind (queue-api.ts nextBatch). */
  readonly batchTarget: number;
  /** How often the ticker lag is read while idle, and the shortest time between two warnings. */
  readonly tickerCheckMs: number;
  readonly tickerWarnRepeatMs: number;
}

export const DEFAULT_TUNING: PgqTuning = {
  pollMs: 500,
  fetchSize: 1000,
  batchTarget: 10_000,
  tickerCheckMs: 5_000,
  tickerWarnRepeatMs: 5 * 60_000,
};

export interface PgqSource extends Source<PgqPosition> {
  deadLetters(): PgqDeadLetters;
}

export function createPgqSource(config: Config, logger: Logger, observer?: PgqObserver, tuning: Partial<PgqTuning> = {}): PgqSource {
  const settings = config.pgq;
  if (!settings) throw new ConfigError('WAL_CONFIG_INVALID', 'pgq.queue: is required for source.type pgq');
  const { queue, consumerName: consumer } = settings;
  const tune = { ...DEFAULT_TUNING, ...tuning };
  const log = logger.child({ source: 'pgq', queue });
  const connect = (): Promise<pg.Client> => connectClient(config.database, { options: PGQ_SESSION_OPTIONS });
  const admin = new SqlClient(config.database);
  let idPrefix: string | undefined;
  let auditReady = false;
  let lastSessionClean = false;
  const deadLetters = new PgqDeadLetters(queue, () => idPrefix, async (text, values) => (await admin.connection()).query(text, values));
  const ticker = new TickerWatch(log, {
    queue,
    database: config.database.name,
    checkEveryMs: tune.tickerCheckMs,
    repeatMs: tune.tickerWarnRepeatMs,
    stale: observer?.tickerStale,
  });
  const origin = hostname();

  /** Checks, registers and learns the ids' source identity on a new session's connection. */
  const prepare = async (client: pg.Client): Promise<{ hash: number; prefix: string }> => {
    await checkQueue(client, queue);
    if (await registerConsumer(client, queue, consumer)) {
      log.info({ consumer }, `registered PgQ consumer ${consumer} on queue ${queue}: it reads events from now on`);
    }
    const { systemId, database } = await identity(client);
    if (settings.audit && !auditReady) {
      await ensureAuditTable((text, values) => client.query(text, values));
      auditReady = true;
    }
    return { hash: sourceHash(systemId, database), prefix: messageIdPrefix(queueHash(systemId, database, queue)) };
  };

  return {
    kind: 'pgq',
    compare: comparePositions,
    // The next batch is read only after finish_batch: confirming at once keeps batches flowing.
    confirmEveryMs: 0,

    async open(sink: ChangeSink<PgqPosition>, signal: AbortSignal): Promise<SourceSession<PgqPosition>> {
      let client: pg.Client;
      try {
        client = await connect();
      } catch (err) {
        throw new WalListenerError('WAL_PG_CONNECT', `cannot connect to PostgreSQL ${config.database.host}:${config.database.port}/${config.database.name} for PgQ queue ${queue}: ${describeError(err)}`, { cause: err });
      }
      // Until the session listens, a dropped connection shows as the next query's error, not as a crash.
      client.on('error', () => undefined);
      let ids: { hash: number; prefix: string };
      try {
        if (signal.aborted) throw new WalListenerError('WAL_PGQ_READ', 'opening the PgQ session was aborted');
        ids = await prepare(client);
      } catch (err) {
        await client.end().catch(() => undefined);
        throw pgqError(err, `preparing PgQ queue ${queue}`);
      }
      idPrefix = ids.prefix;
      const map = createEventMapper({
        topic: config.publisher.topic,
        amqp: config.publisher.type === 'rabbitmq',
        queue,
        idPrefix: ids.prefix,
        origin,
        badJson: (evId, column, reason) => log.warn({ evId, column }, `PgQ event ${evId}: ${column} is ${reason}; ignored, as mikkoo does`),
      });
      const session = startSession({
        client,
        sink,
        map,
        queue,
        consumer,
        sourceHash: ids.hash,
        fetchSize: tune.fetchSize,
        batchTarget: tune.batchTarget,
        pollMs: tune.pollMs,
        deadLetters,
        finishPolicy: {
          audit: settings.audit ? { queue, consumer, topic: config.publisher.topic, idPrefix: ids.prefix } : undefined,
          maxFailures: settings.maxFailures,
          retryDelayMs: settings.retryDelay,
        },
        ticker,
        logger: log,
        observer,
      });
      lastSessionClean = false;
      const onAbort = (): void => session.stop();
      signal.addEventListener('abort', onAbort, { once: true });
      session.ended.then(
        () => (lastSessionClean = true),
        () => (lastSessionClean = false),
      ).finally(() => signal.removeEventListener('abort', onAbort));
      log.info({ consumer }, `reading PgQ queue ${queue} as consumer ${consumer}`);
      return session;
    },

    deadLetters: () => deadLetters,

    async close(): Promise<void> {
      if (settings.unregister && lastSessionClean) await unregister().catch((err: unknown) => log.warn({ err: describeError(err) }, `could not unregister PgQ consumer ${consumer}`));
      await admin.close();
    },
  };

  /**
   * `pgq.unregister: true` on a clean stop, unless that would drop events (an open batch holding
   * events, pending retries). An open batch without events (a tick taken just before the stop) is
   * finished first: nothing is lost with it.
   */
  async function unregister(): Promise<void> {
    const client = await admin.connection();
    const backlog = await consumerBacklog(client, queue, consumer);
    if ((backlog.openBatch !== null && backlog.openBatchEvents > 0) || backlog.retries > 0) {
      log.warn(
        { consumer, openBatch: backlog.openBatch, openBatchEvents: backlog.openBatchEvents, retries: backlog.retries },
        `not unregistering PgQ consumer ${consumer}: PgQ would drop its unfinished batch (${backlog.openBatchEvents} event(s)) and ${backlog.retries} event(s) waiting for retry`,
      );
      return;
    }
    if (backlog.openBatch !== null) await finishBatch(client, backlog.openBatch);
    await unregisterConsumer(client, queue, consumer);
    log.info({ consumer }, `unregistered PgQ consumer ${consumer} from queue ${queue}`);
  }
}
