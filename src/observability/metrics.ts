/**
 * Prometheus metrics (prom-client, a private Registry). Names and labels follow ihippik/wal-listener
 * (`published_events_total`, `filter_skipped_events_total`, `problematic_events_total`, each also
 * labelled `app="wal-listener"`), plus what that project lacks: replication lag, the confirmed LSN,
 * commit-to-ack latency, the in-flight window, reconnects and Node process metrics.
 *
 * Telemetry is per batch (STYLE.md): `acked` counts runs of equal subject/table within a batch and
 * observes one latency per batch (its oldest change). Counters are plain numbers in Maps built once
 * per label set (prom-client hashes the labels on every `inc`); they reach prom-client on scrape.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DaemonObserver } from '../daemon.js';
import type { RelationPlan } from '../pipeline/event-builder.js';
import type { Lsn } from '../postgres/pgoutput.js';
import type { OutboundMessage } from '../publishers/publisher.js';

/** A labelled series counted with a plain `+=` on the hot path; handed to prom-client at scrape time. */
interface Cell {
  value: number;
  reported: number;
  readonly labels: Record<string, string>;
}

/** A counter whose series are Cells; `cell()` registers one (shown as 0 until counted). */
function cellCounter(name: string, help: string, labelNames: string[], registry: Registry): (...values: string[]) => Cell {
  const cells: Cell[] = [];
  const counter = new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      for (const cell of cells) {
        if (cell.value > cell.reported) this.inc(cell.labels, cell.value - cell.reported);
        cell.reported = cell.value;
      }
    },
  });
  return (...values) => {
    const labels: Record<string, string> = {};
    labelNames.forEach((label, i) => (labels[label] = values[i]!));
    const cell: Cell = { value: 0, reported: 0, labels };
    cells.push(cell);
    counter.inc(labels, 0);
    return cell;
  };
}

/** The DaemonObserver hooks that metrics implement. */
export type MetricsObserver = Required<Pick<DaemonObserver, 'acked' | 'retrying' | 'skipped' | 'status' | 'convertProblem' | 'reconnect' | 'inFlight'>>;

export interface MetricsOptions {
  version: string;
  /** Node process metrics (CPU, memory, event loop lag, GC); default true. */
  processMetrics?: boolean;
  /** Clock for latency, in ms since the epoch (tests). */
  now?: () => number;
}

/** Latency buckets, seconds: from a fast local broker (ms) to a broker outage being retried (minutes). */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

const COMMIT_TIME = '"commitTime":"';

export class Metrics {
  readonly registry = new Registry();
  private readonly publishedCell: (subject: string, table: string) => Cell;
  private readonly skippedCell: (table: string) => Cell;
  private readonly lag: Gauge;
  private readonly confirmedLsn: Gauge;
  private readonly latency: Histogram;
  /** subject → table → cell: subjects and tables are the same strings for every message of a relation. */
  private readonly publishedCells = new Map<string, Map<string, Cell>>();
  private readonly skippedCells = new Map<string, Cell>();
  private readonly convertCell: Cell;
  private readonly retryCell: Cell;
  private readonly reconnectCells: Record<'postgres' | 'publisher', Cell>;
  private inFlightCount: () => number = () => 0;
  private readonly now: () => number;

  constructor(options: MetricsOptions) {
    const registry = this.registry;
    const registers = [registry];
    this.now = options.now ?? Date.now;
    registry.setDefaultLabels({ app: 'wal-listener' });
    this.publishedCell = cellCounter('published_events_total', 'Events acknowledged by the broker', ['subject', 'table'], registry);
    this.skippedCell = cellCounter('filter_skipped_events_total', 'Row changes dropped by listener.filter', ['table'], registry);
    const problematic = cellCounter(
      'problematic_events_total',
      'Row changes with a problem; kind="convert": a value published as its PostgreSQL text because it could not be converted',
      ['kind'],
      registry,
    );
    const reconnects = cellCounter('reconnects_total', 'Connection attempts after a failure or a lost connection, by target (postgres, publisher)', ['target'], registry);
    this.retryCell = cellCounter('publish_retries_total', 'Publish attempts (batches) that failed and will be retried', [], registry)();
    this.lag = new Gauge({ name: 'replication_lag_bytes', help: "Bytes of WAL between the server's WAL end and the confirmed LSN", registers });
    this.confirmedLsn = new Gauge({ name: 'confirmed_lsn_bytes', help: 'The LSN confirmed to PostgreSQL (every change before it was acknowledged by the broker), as a number', registers });
    this.latency = new Histogram({
      name: 'publish_latency_seconds',
      help: 'Seconds from commit to broker acknowledgement, observed once per acknowledged batch for its oldest change',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    const inFlight = (): number => this.inFlightCount();
    new Gauge({
      name: 'in_flight_events',
      help: 'Changes handed to the publisher and not yet acknowledged',
      registers,
      collect() {
        this.set(inFlight());
      },
    });
    new Gauge({ name: 'wal_listener_build_info', help: 'Always 1; the version label names the running build', labelNames: ['version'], registers }).labels(options.version).set(1);
    // Series that exist from the start, so rate() and alerts work before the first problem.
    this.convertCell = problematic('convert');
    this.reconnectCells = { postgres: reconnects('postgres'), publisher: reconnects('publisher') };
    if (options.processMetrics ?? true) {
      collectDefaultMetrics({ register: registry });
      // Gauges named like counters fail `promtool check metrics`; each is the sum of its per-type
      // gauge (nodejs_active_handles{type}, ...), so nothing is lost.
      for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(name);
    }
  }

  /** Hooks for the daemon; each is cheap enough for its call rate (per batch, per skipped change, per status). */
  observer(): MetricsObserver {
    return {
      acked: (messages) => this.acked(messages),
      retrying: () => {
        this.retryCell.value++;
      },
      skipped: (plan) => this.skipped(plan),
      status: (walEnd, confirmed) => this.status(walEnd, confirmed),
      convertProblem: () => {
        this.convertCell.value++;
      },
      reconnect: (target) => {
        this.reconnectCells[target].value++;
      },
      inFlight: (count) => {
        this.inFlightCount = count;
      },
    };
  }

  /** The exposition text for GET /metrics. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private acked(messages: readonly OutboundMessage[]): void {
    let runStart = 0;
    for (let i = 1; i <= messages.length; i++) {
      const prev = messages[i - 1]!;
      const next = messages[i];
      if (next !== undefined && next.subject === prev.subject && next.table === prev.table) continue;
      this.published(prev.subject, prev.table).value += i - runStart;
      runStart = i;
    }
    // One observation per batch, for its oldest change: the slowest delivery of the batch.
    if (messages.length > 0) this.observeLatency(messages[0]!.payload, this.now());
  }

  private published(subject: string, table: string): Cell {
    let bySubject = this.publishedCells.get(subject);
    if (bySubject === undefined) this.publishedCells.set(subject, (bySubject = new Map()));
    let cell = bySubject.get(table);
    if (cell === undefined) bySubject.set(table, (cell = this.publishedCell(subject, table)));
    return cell;
  }

  /** Commit time is in the event's fixed tail (`,"commitTime":"…","lsn":…}`), so search from the end. */
  private observeLatency(payload: string, now: number): void {
    const at = payload.lastIndexOf(COMMIT_TIME);
    if (at < 0) return;
    const start = at + COMMIT_TIME.length;
    const commit = Date.parse(payload.slice(start, payload.indexOf('"', start)));
    if (Number.isNaN(commit)) return;
    this.latency.observe(Math.max(0, now - commit) / 1000);
  }

  private skipped(plan: RelationPlan): void {
    let cell = this.skippedCells.get(plan.table);
    if (cell === undefined) this.skippedCells.set(plan.table, (cell = this.skippedCell(plan.table)));
    cell.value++;
  }

  private status(walEnd: Lsn, confirmed: Lsn): void {
    this.lag.set(walEnd > confirmed ? Number(walEnd - confirmed) : 0);
    this.confirmedLsn.set(Number(confirmed));
  }
}
