/**
 * The daemon's lifecycle, in a fixed order:
 *   start:    connect the publisher → check PostgreSQL (wal_level, publication, slot) → stream
 *   stream:   replication session → dispatcher → publisher; status updates confirm acked commits
 *   reconnect: on a lost replication connection, drain in-flight publishes, back off, start again
 *   stop:     stop reading → wait (bounded) for in-flight acks → send the final status → close
 *             the publisher → close connections
 */
import type { Config } from './config/schema.js';
import { PublishError, WalListenerError, describeError } from './errors.js';
import type { Logger } from './observability/logger.js';
import { Backoff, sleep } from './pipeline/backoff.js';
import { Checkpointer } from './pipeline/checkpointer.js';
import { Dispatcher, type DeliveryObserver } from './pipeline/dispatcher.js';
import { sourceHash } from './pipeline/event-id.js';
import { EventBuilder } from './pipeline/event-builder.js';
import { compileFilter } from './pipeline/filter.js';
import { ReplicationSession, type SessionObserver } from './pipeline/replication-session.js';
import { compileRouter } from './pipeline/router.js';
import { formatLsn, parseLsn, type RelationMessage } from './sources/postgres/pgoutput.js';
import { ReplicationConnection } from './sources/postgres/replication.js';
import { checkWalLevel, ensurePublication, ensureSlot, primaryKeyColumns } from './sources/postgres/setup.js';
import { SqlClient } from './sources/postgres/sql-client.js';
import { createValueConverters, type ConvertProblem, type ValueConverters } from './sources/postgres/values.js';
import { createPublisher } from './publishers/index.js';
import type { Publisher } from './publishers/publisher.js';

/** What the daemon reports to metrics and probes; every hook is optional. */
export interface DaemonObserver extends Partial<DeliveryObserver>, Partial<SessionObserver> {
  /** streaming: replication running; reconnecting: waiting to (re)connect to PostgreSQL. */
  state?(state: 'starting' | 'streaming' | 'reconnecting' | 'stopping', publisher: Publisher | null): void;
  reconnect?(target: 'postgres' | 'publisher'): void;
  convertProblem?: ConvertProblem;
  inFlight?(count: () => number): void;
}

export interface DaemonOptions {
  config: Config;
  logger: Logger;
  observer?: DaemonObserver;
}

/** How long a replication stream must stay up before a failure counts as new (backoff reset). */
const STABLE_STREAM_MS = 30_000;

/** PostgreSQL error codes that will not go away by retrying. */
const FATAL_PG_CODES = new Set(['28P01', '28000', '3D000', '42501']);

export class Daemon {
  private readonly config: Config;
  private readonly log: Logger;
  private readonly observer: DaemonObserver;

  constructor(private readonly options: DaemonOptions) {
    this.config = options.config;
    this.log = options.logger;
    this.observer = options.observer ?? {};
  }

  /** Runs until `signal` aborts (resolves) or a fatal error (rejects). */
  async run(signal: AbortSignal): Promise<void> {
    const { config, log } = this;
    this.observer.state?.('starting', null);
    const publisher = await createPublisher(config.publisher, log);
    try {
      await this.connectPublisher(publisher, signal);
      const sql = new SqlClient(config.database);
      try {
        await this.replicate(publisher, sql, signal);
      } finally {
        await sql.close();
      }
    } finally {
      this.observer.state?.('stopping', publisher);
      await publisher.close().catch((err: unknown) => log.warn({ err: describeError(err) }, 'closing the publisher failed'));
    }
  }

  private async connectPublisher(publisher: Publisher, signal: AbortSignal): Promise<void> {
    const backoff = new Backoff({ initialMs: 500, maxMs: this.config.listener.refreshConnection || 30_000 });
    for (;;) {
      if (signal.aborted) return;
      try {
        await publisher.connect();
        this.log.info({ publisher: publisher.kind }, 'publisher connected');
        return;
      } catch (err) {
        if (!(err instanceof PublishError && err.retryable)) throw err;
        const delay = backoff.next();
        this.observer.reconnect?.('publisher');
        this.log.warn({ err: err.message, retryInMs: delay }, 'publisher not reachable; retrying');
        await sleep(delay, signal);
      }
    }
  }

  private async replicate(publisher: Publisher, sql: SqlClient, signal: AbortSignal): Promise<void> {
    const { config, log } = this;
    const backoff = new Backoff({ initialMs: 500, maxMs: config.listener.refreshConnection || 30_000 });
    const lastWarned = new Map<number, number>();
    const onProblem: ConvertProblem = (typeOid, text) => {
      this.observer.convertProblem?.(typeOid, text);
      // One warning per type a minute: the counter (problematic_events_total) has the full count.
      const now = Date.now();
      if ((lastWarned.get(typeOid) ?? -Infinity) > now - 60_000) return;
      lastWarned.set(typeOid, now);
      log.warn({ typeOid, length: text.length }, 'value could not be converted; published as PostgreSQL text (logged once a minute per type)');
    };
    // Full mapping; types not built into PostgreSQL are looked up in pg_type over the SQL connection.
    const converters = createValueConverters({ query: (text, params) => sql.query(text, params), onProblem });
    let announcedSetup = false;

    while (!signal.aborted) {
      let connection: ReplicationConnection | null = null;
      try {
        const client = await sql.connection();
        await checkWalLevel(client);
        if (await ensurePublication(client, config.listener.publication)) {
          log.info({ publication: config.listener.publication }, 'created publication FOR ALL TABLES');
        }
        const slot = await ensureSlot(client, config.listener.slotName, config.database.name);
        if (slot.created) log.info({ slot: config.listener.slotName }, 'created logical replication slot (pgoutput)');
        else if (!announcedSetup) log.info({ slot: config.listener.slotName, confirmedFlush: slot.confirmedFlush }, 'using existing replication slot');
        announcedSetup = true;
        if (slot.activePid !== null) {
          throw new WalListenerError('WAL_PG_SLOT_IN_USE', `replication slot ${config.listener.slotName} is active for PID ${slot.activePid}`);
        }

        connection = await ReplicationConnection.open(config.database);
        const identity = await connection.identifySystem();
        const checkpointer = new Checkpointer(slot.confirmedFlush ? parseLsn(slot.confirmedFlush) : 0n);
        let fatal: WalListenerError | null = null;
        let reportFatal: (err: WalListenerError) => void = () => {};
        const fatalPromise = new Promise<never>((_, reject) => {
          reportFatal = (err) => {
            fatal = err;
            reject(err);
          };
        });
        fatalPromise.catch(() => {});
        const dispatcher = new Dispatcher({
          publisher,
          checkpointer,
          logger: log,
          maxInFlight: config.listener.maxInFlight,
          observer: { acked: (m) => this.observer.acked?.(m), retrying: (e, n) => this.observer.retrying?.(e, n) },
          onFatal: (err) => reportFatal(err),
        });
        this.observer.inFlight?.(() => dispatcher.inFlight);
        const builder = new EventBuilder({
          filter: compileFilter(config.listener.filter),
          router: compileRouter(config.listener.topicsMap, config.publisher),
          converters,
          withKeys: publisher.needsKey,
          messageKeyFrom: config.publisher.messageKeyFrom,
          source: sourceHash(identity.systemId, identity.dbName),
        });
        const session = new ReplicationSession({
          connection,
          builder,
          dispatcher,
          checkpointer,
          logger: log,
          heartbeatMs: config.listener.heartbeatInterval,
          prepareRelation: (relation) => this.prepareRelation(relation, converters, sql, publisher.needsKey),
          observer: { skipped: (p) => this.observer.skipped?.(p), status: (w, c) => this.observer.status?.(w, c) },
        });
        const { ended } = await connection.start(config.listener.slotName, config.listener.publication, 0n, session.onFrame);
        session.startHeartbeat();
        const streamingSince = Date.now();
        log.info({ slot: config.listener.slotName, systemId: identity.systemId, from: slot.confirmedFlush }, 'replication streaming');
        this.observer.state?.('streaming', publisher);

        const aborted = new Promise<'stop'>((resolve) => {
          if (signal.aborted) resolve('stop');
          signal.addEventListener('abort', () => resolve('stop'), { once: true });
        });
        const outcome = await Promise.race([aborted, ended.then(() => 'ended' as const), session.failedPromise, fatalPromise]).catch((err: unknown) => err);
        session.stop();

        if (outcome === 'stop') {
          await this.drain(dispatcher, config.listener.shutdownTimeout);
          session.sendStatus();
          log.info({ confirmed: formatLsn(checkpointer.confirmed) }, 'stopped; confirmed every acknowledged transaction');
          return;
        }
        if (fatal !== null || isFatal(outcome)) {
          // Confirm what is durable, then stop: nothing after the failing change is confirmed.
          session.sendStatus();
          throw fatal ?? outcome;
        }
        // The connection ended (server restart, pg_terminate_backend, network): drain and reconnect.
        // A stream that stayed up a while starts the backoff afresh; one that keeps failing right
        // after it starts keeps backing off (no busy loop).
        if (Date.now() - streamingSince >= STABLE_STREAM_MS) backoff.reset();
        log.warn({ err: outcome === 'ended' ? 'replication stream ended' : describeError(outcome) }, 'replication connection lost; reconnecting');
        this.observer.reconnect?.('postgres');
        this.observer.state?.('reconnecting', publisher);
        await Promise.race([dispatcher.drained(), aborted, fatalPromise]);
        if (signal.aborted) {
          await this.drain(dispatcher, config.listener.shutdownTimeout);
          return;
        }
      } catch (err) {
        if (isFatal(err)) throw err;
        const delay = backoff.next();
        this.observer.state?.('reconnecting', publisher);
        if ((err instanceof WalListenerError && err.code === 'WAL_PG_SLOT_IN_USE') || (err as { code?: string }).code === '55006') {
          log.warn({ err: describeError(err), retryInMs: delay }, 'replication slot in use by another process; retrying');
        } else {
          log.warn({ err: describeError(err), code: (err as { code?: string }).code, retryInMs: delay }, 'PostgreSQL not available; retrying');
        }
        this.observer.reconnect?.('postgres');
        await sleep(delay, signal);
        continue;
      } finally {
        await connection?.close();
      }
      await sleep(backoff.next(), signal);
    }
  }

  private prepareRelation(relation: RelationMessage, converters: ValueConverters, sql: SqlClient, needsKey: boolean): Promise<readonly string[] | undefined> | undefined {
    const types = converters.prepare(relation.columns);
    const needsPrimaryKey = needsKey && (relation.replicaIdentity === 'f' || relation.replicaIdentity === 'n');
    if (!types && !needsPrimaryKey) return undefined;
    return (async () => {
      await types;
      return needsPrimaryKey ? primaryKeyColumns(await sql.connection(), relation.relationId) : undefined;
    })();
  }

  /** Waits for in-flight acknowledgements, at most `timeoutMs`. */
  private async drain(dispatcher: Dispatcher, timeoutMs: number): Promise<void> {
    const pending = dispatcher.inFlight;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      dispatcher.drained().then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    dispatcher.stop();
    if (timedOut) {
      this.log.warn({ code: 'WAL_SHUTDOWN_TIMEOUT', unacknowledged: dispatcher.inFlight }, 'in-flight messages not acknowledged in time; they will be re-sent after restart');
    } else if (pending > 0) {
      this.log.info({ acknowledged: pending }, 'in-flight messages acknowledged');
    }
  }
}

function isFatal(err: unknown): boolean {
  if (err instanceof WalListenerError) {
    return !['WAL_PG_CONNECT', 'WAL_PG_SLOT_IN_USE', 'WAL_PG_REPLICATION', 'WAL_PUBLISH_RETRYABLE'].includes(err.code);
  }
  const code = (err as { code?: string }).code;
  if (code === '55006') return false; // slot active elsewhere (race with our check)
  return code !== undefined && FATAL_PG_CODES.has(code);
}
