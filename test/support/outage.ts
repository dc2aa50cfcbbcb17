/**
 * Measuring a broker outage through the real daemon (issue 9, "broker loss, measured"): how soon
 * /ready says 503 after the loss, how soon the first error-level log line appears (what Sentry
 * gets), how soon everything committed during the outage is acknowledged after the broker is
 * back, and whether `reconnects_total{target="publisher"}` moved. The figures are printed as one
 * `OUTAGE {json}` line per run, which scripts/outage-runs.ts collects over several runs.
 */
import assert from 'node:assert/strict';
import type { DaemonProcess } from './daemon.js';
import { httpGet, metricValue } from './ops.js';
import { waitFor } from './ports.js';

/** Polls GET /ready every `intervalMs` and keeps every answer with its time. */
export class ReadyWatcher {
  private readonly samples: { at: number; status: number }[] = [];
  private running = true;
  private readonly loop: Promise<void>;

  constructor(
    private readonly port: number,
    intervalMs = 100,
  ) {
    this.loop = (async () => {
      while (this.running) {
        const at = Date.now();
        const status = await httpGet(port, '/ready').then((r) => r.status, () => 0);
        this.samples.push({ at, status });
        await new Promise((r) => setTimeout(r, Math.max(0, intervalMs - (Date.now() - at))));
      }
    })();
  }

  /** Time of the first answer with `status` at or after `since`, or undefined. */
  first(status: number, since: number): number | undefined {
    return this.samples.find((s) => s.at >= since && s.status === status)?.at;
  }

  /** Waits until an answer with `status` came at or after `since`; returns its time. */
  waitFor(status: number, since: number, timeoutMs: number): Promise<number> {
    return waitFor(`/ready ${status} on port ${this.port}`, () => this.first(status, since), timeoutMs, 50);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

/** Time (ms since epoch) of the daemon's first error-level log line written at or after `since`. */
export function firstErrorLog(daemon: DaemonProcess, since: number): { at: number; record: Record<string, unknown> } | undefined {
  for (const record of daemon.logs()) {
    if (record.level !== 'error' && record.level !== 'fatal') continue;
    const at = Date.parse(String(record.time));
    if (at >= since) return { at, record };
  }
  return undefined;
}

/** `reconnects_total{target="publisher"}` from the daemon's /metrics (0 when absent). */
export async function publisherReconnects(promPort: number): Promise<number> {
  const text = (await httpGet(promPort, '/metrics')).body;
  return metricValue(text, 'reconnects_total', { target: 'publisher' }) ?? 0;
}

/** Polls `count` every 50 ms until it reaches `expected`; returns the time it did. */
export async function whenCount(what: string, count: () => Promise<number>, expected: number, timeoutMs: number): Promise<number> {
  await waitFor(what, async () => (await count()) >= expected, timeoutMs, 50);
  return Date.now();
}

export interface OutageFigures {
  broker: string;
  fault: string;
  /** Seconds from the loss to the first /ready 503; null when no poll saw one (see `outageMs`). */
  readySeconds: number | null;
  /** Seconds from the loss to the first error-level log line; null when there was none. */
  errorLogSeconds: number | null;
  /** How long publishing was down, as the daemon logged it ('publishing recovered'), ms. */
  outageMs: number | null;
  /** Seconds from the broker's return until every change committed during the outage was acknowledged. */
  catchUpSeconds: number;
  /** Changes committed during the outage. */
  changes: number;
  reconnectsBefore: number;
  reconnectsAfter: number;
}

const seconds = (ms: number): number => Math.round(ms / 10) / 100;

/** The daemon's own account of the outage: afterMs of its first 'publishing recovered' line at or after `since`. */
export function loggedOutageMs(daemon: DaemonProcess, since: number): number | null {
  const record = daemon.logs().find((r) => r.msg === 'publishing recovered' && Date.parse(String(r.time)) >= since);
  return record === undefined ? null : Number(record.afterMs);
}

interface MeasuredTimes {
  broker: string;
  fault: string;
  /** The times, ms since epoch; undefined when not observed. */
  lost: number;
  ready503: number | undefined;
  errorLog: number | undefined;
  back: number;
  caughtUp: number;
  outageMs: number | null;
  changes: number;
  reconnectsBefore: number;
  reconnectsAfter: number;
}

/** The figures from the measured times, printed as an `OUTAGE {json}` line. */
export function reportOutage(times: MeasuredTimes): OutageFigures {
  const since = (at: number | undefined): number | null => (at === undefined ? null : seconds(Math.max(0, at - times.lost)));
  const figures: OutageFigures = {
    broker: times.broker,
    fault: times.fault,
    readySeconds: since(times.ready503),
    errorLogSeconds: since(times.errorLog),
    outageMs: times.outageMs,
    catchUpSeconds: seconds(Math.max(0, times.caughtUp - times.back)),
    changes: times.changes,
    reconnectsBefore: times.reconnectsBefore,
    reconnectsAfter: times.reconnectsAfter,
  };
  console.log(`OUTAGE ${JSON.stringify(figures)}`);
  return figures;
}

/**
 * SIGTERM while the broker is down (issue 9 item 7): the daemon exits 0 within `shutdownMs`, says
 * that in-flight messages were not acknowledged, and has confirmed what was acknowledged before
 * the outage (`acknowledged`) and nothing committed after it began (`beforeOutage`). Prints the time.
 */
export async function assertStopWhileDown(daemon: DaemonProcess, o: { broker: string; shutdownMs: number; confirmed: () => Promise<bigint>; acknowledged: bigint; beforeOutage: bigint }): Promise<void> {
  const signalled = Date.now();
  const code = await daemon.stop(30_000);
  const took = Date.now() - signalled;
  console.log(`SHUTDOWN ${o.broker} broker down: exit ${code} after ${(took / 1000).toFixed(2)} s (shutdownTimeout ${o.shutdownMs / 1000} s)`);
  assert.equal(code, 0);
  assert.ok(took <= o.shutdownMs, `exited ${took} ms after SIGTERM, within shutdownTimeout (${o.shutdownMs} ms)`);
  assert.ok(daemon.logs().some((r) => r.code === 'WAL_SHUTDOWN_TIMEOUT'), 'said that in-flight messages were not acknowledged');
  const confirmed = await o.confirmed();
  assert.ok(confirmed >= o.acknowledged && confirmed <= o.beforeOutage, 'confirmed what was acknowledged, nothing of the outage');
}
