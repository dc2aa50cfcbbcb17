/**
 * The daemon's lifecycle, in a fixed order (STYLE.md, DESIGN.md "The pipeline"):
 *   start:     source preflight (a fatal problem stops here, before any broker object exists) →
 *              connect the publisher → open a source session (prerequisites, slot) → stream
 *   stream:    source session → pipeline (filter, route, encode) → dispatcher → publisher; the
 *              confirmed position goes back to the source as soon as it moves (≤ 1/s)
 *   reconnect: the source connection ended: stop reading, wait for in-flight acks, confirm, back
 *              off, open a new session from the confirmed position
 *   stop:      stop reading → wait (bounded, inside listener.shutdownTimeout) for in-flight acks → send the
 *              final confirmation → close the publisher → close the source's connections
 *   fatal:     as stop, but only what was acknowledged before the failure is confirmed; exit 1
 *   leader:    after the publisher connected, the daemon waits for the leader lock (src/ha/); only
 *              the leader opens source sessions. Fenced (lock connection lost): stop reading and
 *              sending at once, no drain, back to standby. A clean stop releases the lock after the
 *              source's connections closed, so the next leader finds the slot free.
 */
import { validateSubject } from './config/broker-names.js';
import type { Config } from './config/schema.js';
import { PublishError, WalListenerError, describeError, isFatal } from './errors.js';
import { LeaderElector, standbyPollMs, type Leadership } from './ha/elector.js';
import type { Logger } from './observability/logger.js';
import { Backoff, sleep } from './pipeline/backoff.js';
import { compatEncoder } from './pipeline/compat-encoder.js';
import { Dispatcher } from './pipeline/dispatcher.js';
import { nativeEncoder } from './pipeline/encoder.js';
import { compileFilter } from './pipeline/filter.js';
import type { PipelineObserver } from './pipeline/observer.js';
import { Pipeline } from './pipeline/pipeline.js';
import { compileRouter } from './pipeline/router.js';
import { createPublisher } from './publishers/index.js';
import type { Publisher } from './publishers/publisher.js';
import { createLeaderLock, createSource } from './sources/index.js';
import { sourceLabel } from './sources/labels.js';
import type { Source, SourceOptions, SourceSession } from './sources/source.js';

export interface DaemonOptions {
  config: Config;
  logger: Logger;
  observer?: PipelineObserver;
  /** Command-line flags for the source (`run --recreate-slot`). */
  source?: SourceOptions;
}

/** How long a source session must stay up before a failure counts as new (backoff reset). */
const STABLE_STREAM_MS = 30_000;

/**
 * How long a stop waits for in-flight acknowledgements: listener.shutdownTimeout minus time kept
 * for closing the publisher and the source (a quarter, at most 1 s), so the process is gone
 * within shutdownTimeout of the signal also when the broker is down.
 */
function ackWait(shutdownTimeout: number): number {
  return shutdownTimeout - Math.min(1_000, shutdownTimeout / 4);
}

type Outcome = 'stop' | 'ended' | { error: unknown };

export class Daemon {
  private readonly config: Config;
  private readonly log: Logger;
  private readonly observer: PipelineObserver;
  private readonly sourceOptions: SourceOptions;
  /** Aborted when the current leadership was lost: stop without draining. */
  private fenced: AbortSignal | null = null;

  constructor(options: DaemonOptions) {
    this.config = options.config;
    this.log = options.logger;
    this.observer = options.observer ?? {};
    this.sourceOptions = options.source ?? {};
  }

  /** Runs until `signal` aborts (resolves) or a fatal error (rejects). */
  async run(signal: AbortSignal): Promise<void> {
    const { config, log } = this;
    this.observer.state?.('starting');
    const publisher = await createPublisher(config.publisher, log);
    const source = await createSource(config, log, this.observer, this.sourceOptions);
    const elector = new LeaderElector({
      lock: await createLeaderLock(config),
      pollMs: standbyPollMs(config.listener.refreshConnection),
      retryMaxMs: config.listener.refreshConnection,
      log,
      observer: this.observer,
      onUnavailable: (err, delay) => this.unavailable(source.kind, err, delay),
    });
    try {
      await source.check?.(signal).catch((err: unknown) => {
        if (isFatal(err)) throw err; // else open() retries it, after the publisher connected
      });
      await this.connectPublisher(publisher, signal);
      this.observer.health?.(() => (publisher.healthy() ? { ok: true, reason: `publisher ${publisher.kind} connected` } : { ok: false, reason: `publisher ${publisher.kind} is not connected; retrying` }));
      while (!signal.aborted) {
        const leadership = await elector.acquire(signal);
        if (!leadership) return;
        try {
          await this.lead(leadership, publisher, source, signal);
        } finally {
          await leadership.release(signal.aborted);
        }
        if (leadership.fenced.aborted && !signal.aborted) {
          // Until the lock is held again or a standby: not ready, like any lost source connection.
          this.observer.reconnect?.(source.kind, describeError(leadership.fenced.reason));
          this.observer.state?.('reconnecting');
        }
      }
    } finally {
      this.observer.state?.('stopping');
      await elector.close();
      await publisher.close().catch((err: unknown) => log.warn({ err: describeError(err) }, 'closing the publisher failed'));
      await source.close().catch((err: unknown) => log.warn({ err: describeError(err) }, 'closing the source failed'));
    }
  }

  /** One term as leader: streams until stopped, fenced (returns) or a fatal error (throws). */
  private async lead<P>(leadership: Leadership, publisher: Publisher, source: Source<P>, stop: AbortSignal): Promise<void> {
    const { config, log } = this;
    const signal = AbortSignal.any([stop, leadership.fenced]);
    this.fenced = leadership.fenced;
    this.observer.state?.('starting');
    await sleep(leadership.startAt - Date.now(), signal);
    if (signal.aborted) return;
    let reportFatal: (err: WalListenerError) => void = () => {};
    const fatal = new Promise<never>((_, reject) => {
      reportFatal = reject;
    });
    fatal.catch(() => {});
    const dispatcher = new Dispatcher({
      publisher,
      logger: log,
      maxInFlight: config.listener.maxInFlight,
      ackTimeout: config.publisher.ackTimeout,
      deadLetters: config.publisher.onReject === 'deadLetter' ? source.deadLetters() : null,
      observer: this.observer,
      onFatal: (err) => reportFatal(err),
    });
    this.observer.health?.(() => healthOf(dispatcher, publisher));
    try {
      await this.stream(source, dispatcher, fatal, signal);
    } finally {
      dispatcher.stop();
    }
    if (leadership.fenced.aborted) log.info({ unacknowledged: dispatcher.pending }, 'stopped reading and publishing (fenced); the next leader re-sends what was not confirmed');
  }

  /** The source cannot be reached (or its lock connection): said once per attempt, with the delay. */
  private unavailable(kind: string, error: unknown, delay: number): void {
    const err = describeError(error);
    const code = (error as { code?: string }).code;
    // A TLS setting the server cannot satisfy is said plainly (error level) every time it fails.
    this.log[code === 'WAL_PG_TLS' ? 'error' : 'warn']({ err, code, retryInMs: delay }, `${sourceLabel(kind).name} not available; retrying`);
    this.observer.reconnect?.(kind, err);
    this.observer.state?.('reconnecting');
  }

  private async connectPublisher(publisher: Publisher, signal: AbortSignal): Promise<void> {
    const backoff = new Backoff({ initialMs: 500, maxMs: this.config.listener.refreshConnection });
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

  /** Source sessions, one after another, until stopped or a fatal error. */
  private async stream<P>(source: Source<P>, dispatcher: Dispatcher, fatal: Promise<never>, signal: AbortSignal): Promise<void> {
    const { config, log } = this;
    const backoff = new Backoff({ initialMs: 500, maxMs: config.listener.refreshConnection });
    const aborted = new Promise<'stop'>((resolve) => {
      if (signal.aborted) resolve('stop');
      signal.addEventListener('abort', () => resolve('stop'), { once: true });
    });
    while (!signal.aborted) {
      let session: SourceSession<P> | null = null;
      const pipeline = new Pipeline<P>({
        filter: compileFilter(config.listener.filter),
        router: compileRouter(config.listener.topicsMap, config.publisher),
        encoder: config.publisher.eventFormat === 'compat' ? compatEncoder : nativeEncoder,
        messageKeyFrom: config.publisher.messageKeyFrom,
        checkSubject: (subject) => validateSubject(config.publisher.type, subject),
        dispatcher,
        compare: (a, b) => source.compare(a, b),
        ...(source.confirmEveryMs !== undefined ? { confirmEveryMs: source.confirmEveryMs } : {}),
        confirm: (position) => session?.confirm(position),
        observer: this.observer,
      });
      let outcome: Outcome;
      let streamingSince = 0;
      try {
        session = await Promise.race([source.open(pipeline, signal), fatal]);
        streamingSince = Date.now();
        this.observer.state?.('streaming');
        outcome = await Promise.race([aborted, session.ended.then(() => 'ended' as const), fatal]).catch((error: unknown) => ({ error }));
      } catch (error) {
        outcome = { error };
      }
      session?.stop();

      if (outcome === 'stop') {
        await this.drain(dispatcher, ackWait(config.listener.shutdownTimeout));
        pipeline.close();
        await session?.close();
        const confirmed = pipeline.confirmed;
        if (!this.fenced?.aborted) log.info({ confirmed: typeof confirmed === 'object' && confirmed !== null ? JSON.stringify(confirmed) : String(confirmed ?? 'nothing new') }, 'stopped; confirmed every acknowledged transaction');
        return;
      }
      if (outcome !== 'ended' && isFatal(outcome.error)) {
        // Confirm what is durable, then stop: nothing after the failing change is confirmed. A
        // dispatcher stopped by a publisher's fatal error (stdout's reader gone, a setup error)
        // waits only for the publishes still under way.
        await this.drain(dispatcher, Math.min(config.listener.shutdownTimeout, 5_000));
        pipeline.close();
        await session?.close().catch(() => {});
        throw outcome.error;
      }
      // The source connection ended or failed in a way a reconnect can fix: drain and reconnect.
      // A session that stayed up a while starts the backoff afresh; one that keeps failing right
      // after it starts keeps backing off (no busy loop).
      if (streamingSince > 0 && Date.now() - streamingSince >= STABLE_STREAM_MS) backoff.reset();
      const delay = backoff.next();
      const label = sourceLabel(source.kind);
      const err = outcome === 'ended' ? `${label.name} ended the stream` : describeError(outcome.error);
      const code = outcome === 'ended' ? undefined : (outcome.error as WalListenerError).code;
      if (code === 'WAL_PG_SLOT_IN_USE' || session) {
        if (code === 'WAL_PG_SLOT_IN_USE') log.warn({ err, code, retryInMs: delay }, 'replication slot in use by another process; retrying');
        else log.warn({ err, code, retryInMs: delay }, `${label.connection} lost; reconnecting`);
        this.observer.reconnect?.(source.kind, err);
        this.observer.state?.('reconnecting');
      } else this.unavailable(source.kind, outcome === 'ended' ? new Error(err) : outcome.error, delay);
      await Promise.race([dispatcher.drained(), aborted, fatal]).catch(() => {});
      pipeline.close();
      await session?.close().catch(() => {});
      if (signal.aborted) {
        await this.drain(dispatcher, ackWait(config.listener.shutdownTimeout));
        return;
      }
      await sleep(delay, signal);
    }
  }

  /** Waits for in-flight acknowledgements, at most `timeoutMs`. */
  private async drain(dispatcher: Dispatcher, timeoutMs: number): Promise<void> {
    if (this.fenced?.aborted) {
      // Fenced: another daemon may lead by now; nothing more is sent, nothing waited for.
      dispatcher.stop();
      return;
    }
    const pending = dispatcher.pending;
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
      this.log.warn({ code: 'WAL_SHUTDOWN_TIMEOUT', unacknowledged: dispatcher.pending }, 'in-flight messages not acknowledged in time; they will be re-sent after restart');
    } else if (pending > 0) {
      this.log.info({ acknowledged: pending }, 'in-flight messages acknowledged');
    }
  }
}

function healthOf(dispatcher: Dispatcher, publisher: Publisher): { ok: boolean; reason: string } {
  if (!publisher.healthy()) return { ok: false, reason: `publisher ${publisher.kind} is not connected; retrying` };
  if (!dispatcher.healthy) return { ok: false, reason: `publisher ${publisher.kind} is not acknowledging; retrying in order` };
  return { ok: true, reason: `publisher ${publisher.kind} connected` };
}
