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
import type { TableHandle } from '../pipeline/change.js';
import type { OutboundMessage } from '../pipeline/message.js';
import type { PipelineObserver } from '../pipeline/observer.js';

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

/** The PipelineObserver hooks that metrics implement. */
export type MetricsObserver = Required<
  Pick<PipelineObserver, 'acked' | 'retrying' | 'publishFailed' | 'ackTimeout' | 'rejected' | 'skipped' | 'lag' | 'confirmed' | 'convertProblem' | 'reconnect' | 'inFlight' | 'logicalMessageSkipped' | 'leader' | 'snapshotRows' | 'backfillInProgress'>
>;

export interface MetricsOptions {
  version: string;
  /** Node process metrics (CPU, memory, event loop lag, GC); default true. */
  processMetrics?: boolean;
  /** The source kind, for the reconnect series that exists from the start (default postgres). */
  source?: string;
  /** Clock for latency, in ms since the epoch (tests). */
  now?: () => number;
}

/** Latency buckets, seconds: from a fast local broker (ms) to a broker outage being retried (minutes). */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

const COMMIT_TIME = '"commitTime":"';

/** An event's commit time, from its fixed tail (`,"commitTime":"…","lsn":…}`): search from the end. NaN when absent. */
function commitTimeOf(payload: string): number {
  const at = payload.lastIndexOf(COMMIT_TIME);
  if (at < 0) return NaN;
  const start = at + COMMIT_TIME.length;
  return Date.parse(payload.slice(start, payload.indexOf('"', start)));
}

export class Metrics {
  readonly registry = new Registry();
  private readonly publishedCell: (subject: string, table: string) => Cell;
  private readonly skippedCell: (table: string) => Cell;
  private readonly lag: Gauge;
  private readonly leader: Gauge;
  private readonly confirmedLsn: Gauge;
  private readonly latency: Histogram;
  /** subject → table → cell: subjects and tables are the same strings for every message of a relation. */
  private readonly publishedCells = new Map<string, Map<string, Cell>>();
  private readonly skippedCells = new Map<string, Cell>();
  private readonly problemCells: Record<'convert' | 'publish' | 'ack' | 'rejected', Cell>;
  private readonly retryCell: Cell;
  private readonly messageSkippedCells: Record<'prefix' | 'nontransactional', Cell>;
  private readonly reconnectCell: (target: string) => Cell;
  private readonly reconnectCells = new Map<string, Cell>();
  private readonly snapshotCell: (table: string) => Cell;
  private readonly snapshotCells = new Map<string, Cell>();
  private readonly backfills: Gauge;
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
      'Changes with a problem. kind="convert": a value published as its source text because it could not be converted; "publish": a failed publish (batch); "ack": a publish that passed its ack deadline; "rejected": a message the broker will never accept (dead-lettered, or the daemon stopped)',
      ['kind'],
      registry,
    );
    this.reconnectCell = cellCounter('reconnects_total', 'Reconnects after a failure or a lost connection, by target (the source kind, or publisher)', ['target'], registry);
    const messageSkipped = cellCounter('logical_messages_skipped_total', 'PostgreSQL logical messages not routed: reason="prefix" (a prefix other than wal-listener), "nontransactional" (pg_logical_emit_message with transactional false)', ['reason'], registry);
    this.messageSkippedCells = { prefix: messageSkipped('prefix'), nontransactional: messageSkipped('nontransactional') };
    this.retryCell = cellCounter('publish_retries_total', 'Re-send attempts of batches that failed (each attempt once, whatever its size)', [], registry)();
    this.snapshotCell = cellCounter('snapshot_rows_total', 'Rows published as SNAPSHOT events and acknowledged (initial snapshot and backfills), by table', ['table'], registry);
    this.backfills = new Gauge({ name: 'backfill_in_progress', help: 'Backfills running now (0 or 1: they run one at a time)', registers });
    this.lag = new Gauge({ name: 'replication_lag_bytes', help: "Bytes between the source's newest position (PostgreSQL: the server's WAL end) and the confirmed one", registers });
    this.confirmedLsn = new Gauge({ name: 'confirmed_lsn_bytes', help: 'The position confirmed to the source (every change before it was acknowledged by the broker), as a number (PostgreSQL: the LSN)', registers });
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
    this.leader = new Gauge({ name: 'wal_listener_leader', help: '1 while this daemon holds the leader lock (it streams), 0 as a standby', registers });
    this.leader.set(0);
    new Gauge({ name: 'wal_listener_build_info', help: 'Always 1; the version label names the running build', labelNames: ['version'], registers }).labels(options.version).set(1);
    // Series that exist from the start, so rate() and alerts work before the first problem.
    this.problemCells = { convert: problematic('convert'), publish: problematic('publish'), ack: problematic('ack'), rejected: problematic('rejected') };
    this.reconnect(options.source ?? 'postgres');
    this.reconnect('publisher');
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
      publishFailed: () => {
        this.problemCells.publish.value++;
      },
      ackTimeout: () => {
        this.problemCells.ack.value++;
      },
      rejected: (messages) => {
        this.problemCells.rejected.value += messages.length;
      },
      skipped: (table) => this.skipped(table),
      lag: (bytes) => this.lag.set(bytes),
      confirmed: (position) => this.confirmedLsn.set(position),
      convertProblem: () => {
        this.problemCells.convert.value++;
      },
      reconnect: (target) => {
        this.reconnect(target).value++;
      },
      logicalMessageSkipped: (reason) => {
        this.messageSkippedCells[reason].value++;
      },
      inFlight: (count) => {
        this.inFlightCount = count;
      },
      leader: (leading) => this.leader.set(leading ? 1 : 0),
      snapshotRows: (table, count) => {
        let cell = this.snapshotCells.get(table);
        if (cell === undefined) this.snapshotCells.set(table, (cell = this.snapshotCell(table)));
        cell.value += count;
      },
      backfillInProgress: (count) => this.backfills.set(count),
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
    const first = messages[0];
    if (first === undefined) return;
    const committed = first.committedAt ?? (typeof first.payload === 'string' ? commitTimeOf(first.payload) : NaN);
    if (!Number.isNaN(committed)) this.latency.observe(Math.max(0, this.now() - committed) / 1000);
  }

  private published(subject: string, table: string): Cell {
    let bySubject = this.publishedCells.get(subject);
    if (bySubject === undefined) this.publishedCells.set(subject, (bySubject = new Map()));
    let cell = bySubject.get(table);
    if (cell === undefined) bySubject.set(table, (cell = this.publishedCell(subject, table)));
    return cell;
  }

  /** The reconnect series of a target, created (at 0) on first use. */
  private reconnect(target: string): Cell {
    let cell = this.reconnectCells.get(target);
    if (cell === undefined) this.reconnectCells.set(target, (cell = this.reconnectCell(target)));
    return cell;
  }

  private skipped(table: TableHandle): void {
    let cell = this.skippedCells.get(table.table);
    if (cell === undefined) this.skippedCells.set(table.table, (cell = this.skippedCell(table.table)));
    cell.value++;
  }
}
