/**
 * Leader election (DESIGN.md "High availability"): several daemons with the same config, one
 * leads and streams, the others wait as standbys. Leadership is a lock bound to a session on the
 * source's own server (sources/*\/leader-lock.ts), held on a connection of its own.
 *
 * Standby: tries the lock every `pollMs` (refreshConnection/4, at most 5 s) on one connection kept
 * open; a lost connection is reconnected with backoff (then /ready is 503).
 *
 * Leader: pings the lock connection every PING_MS with a PING_TIMEOUT_MS deadline. It is fenced
 * (the `fenced` signal aborts: stop reading and publishing at once) when the connection ends or
 * fails, a ping fails or times out, or no ping sent in the last FENCE_MS was answered (a stalled
 * event loop: after a stall Node runs due timers before I/O callbacks, so the fence comes first).
 *
 * Why a fenced leader stops before a standby starts. The lock frees only when the server ends the
 * leader's session. A leader whose session ends is told at once by its socket (terminated backend,
 * server restart: an error and FIN); in any case no ping sent after the session ended can succeed:
 * the next ping (at most PING_MS after the last good one was sent) fails within PING_TIMEOUT_MS,
 * so it fences itself at most FENCE_MS (PING_MS + PING_TIMEOUT_MS = 3 s) after the lock freed. A standby that takes over from a leader it saw waits FENCE_MS after taking the lock
 * before it reads (`startAt`), so the old leader has fenced itself first even when its socket never
 * said so (a network partition: the server frees the lock only after its own keepalive gave up,
 * which the lock session sets to about 8 s). A daemon that finds the lock free at its first try
 * starts at once: no other daemon of this process's lifetime led (the slot itself then still
 * refuses a second reader while an old walsender lives). PostgreSQL adds a second fence: a slot
 * streams to one walsender only, so a new leader cannot read while the old one's replication
 * connection is alive (it retries, WAL_PG_SLOT_IN_USE). What a fenced leader had already sent is
 * acknowledged or not; nothing after the last confirmed position is lost, and the new leader
 * re-sends it with the same event ids (brokers with dedup drop the repeats).
 * A fenced daemon waits 2 × pollMs (at least 1 s) before competing again, so a standby that polled
 * meanwhile wins: leadership moves away from a daemon whose connection just failed.
 */
import { WalListenerError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { Backoff, sleep } from '../pipeline/backoff.js';
import type { PipelineObserver } from '../pipeline/observer.js';
import type { LeaderLock, LeaderLockSession } from '../sources/source.js';

export const PING_MS = 1_000;
export const PING_TIMEOUT_MS = 2_000;
/** Longest time a leader can go on after its session ended without fencing itself. */
export const FENCE_MS = PING_MS + PING_TIMEOUT_MS;

/** The standby retry period for a refreshConnection: a quarter of it, at most 5 s. */
export const standbyPollMs = (refreshConnection: number): number => Math.min(5_000, Math.max(100, Math.round(refreshConnection / 4)));

export interface ElectorOptions {
  lock: LeaderLock;
  pollMs: number;
  /** Backoff cap for reconnecting the lock connection (listener.refreshConnection). */
  retryMaxMs: number;
  log: Logger;
  observer: PipelineObserver;
  /** The lock connection cannot be made or was lost; it is retried after `retryInMs`. */
  onUnavailable(err: unknown, retryInMs: number): void;
}

export interface Leadership {
  /** Aborts when leadership is lost (fenced): stop reading and publishing at once. */
  readonly fenced: AbortSignal;
  /** Epoch ms before which the new leader must not read (0: at once). */
  readonly startAt: number;
  /** Ends leadership and closes the lock connection, which frees the lock; `stopped`: a clean stop (logged `leader revoked`). */
  release(stopped: boolean): Promise<void>;
}

export class LeaderElector {
  private session: LeaderLockSession | null = null;
  private competeAfter = 0;

  constructor(private readonly options: ElectorOptions) {}

  /** Waits until this daemon holds the lock; null when `signal` aborted first. */
  async acquire(signal: AbortSignal): Promise<Leadership | null> {
    const { lock, log, observer, pollMs } = this.options;
    const backoff = new Backoff({ initialMs: 500, maxMs: this.options.retryMaxMs });
    let sawLeader = false;
    if (this.competeAfter > Date.now()) await sleep(this.competeAfter - Date.now(), signal);
    while (!signal.aborted) {
      try {
        this.session ??= await lock.connect();
        const session = this.session;
        if (await session.tryLock()) return this.lead(session, sawLeader);
        if (!sawLeader) log.info({ lock: lock.key, retryEveryMs: pollMs }, 'standby: another daemon leads; waiting for the lock');
        sawLeader = true;
        backoff.reset();
        observer.leader?.(false);
        observer.state?.('standby');
        await Promise.race([sleep(pollMs, signal), session.lost]);
      } catch (err) {
        if (err instanceof WalListenerError && err.fatal) throw err; // auth, database missing: as at startup
        await this.dropSession();
        const delay = backoff.next();
        this.options.onUnavailable(err, delay);
        await sleep(delay, signal);
      }
    }
    await this.dropSession();
    return null;
  }

  /** Closes the standby's lock connection. */
  async close(): Promise<void> {
    await this.dropSession();
  }

  private async dropSession(): Promise<void> {
    const session = this.session;
    this.session = null;
    await session?.close();
  }

  private lead(session: LeaderLockSession, tookOver: boolean): Leadership {
    const { lock, log, observer, pollMs } = this.options;
    const controller = new AbortController();
    let lastOk = Date.now();
    let pinging = false;
    let released = false;
    const fence = (reason: string): void => {
      if (controller.signal.aborted || released) return;
      clearInterval(timer);
      log.warn({ lock: lock.key, reason }, 'leader fenced');
      observer.leader?.(false);
      this.competeAfter = Date.now() + Math.max(2 * pollMs, 1_000);
      controller.abort(new Error(reason));
    };
    const timer = setInterval(() => {
      const silent = Date.now() - lastOk;
      if (silent > FENCE_MS) return fence(`no answer on the lock connection for ${silent} ms`);
      if (pinging) return;
      pinging = true;
      // The session was alive when the ping was sent, not (necessarily) when its answer arrived.
      const sentAt = Date.now();
      session.ping(PING_TIMEOUT_MS).then(
        () => (lastOk = sentAt),
        (err: unknown) => fence(`the lock connection failed: ${(err as Error).message}`),
      ).finally(() => (pinging = false));
    }, PING_MS);
    void session.lost.then((err) => fence(`the lock connection was lost: ${err.message}`));
    this.session = null;
    const startAt = tookOver ? Date.now() + FENCE_MS : 0;
    log.info({ lock: lock.key, ...(tookOver ? { readsInMs: FENCE_MS } : {}) }, 'leader acquired');
    observer.leader?.(true);
    return {
      fenced: controller.signal,
      startAt,
      release: async (stopped) => {
        if (released) return;
        released = true;
        clearInterval(timer);
        await session.close();
        if (stopped && !controller.signal.aborted) {
          observer.leader?.(false);
          log.info({ lock: lock.key }, 'leader revoked');
        }
      },
    };
  }
}
