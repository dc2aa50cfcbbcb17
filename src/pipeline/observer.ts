/**
 * What the pipeline and the sources report, for metrics, probes and logs (src/observability/
 * implements it). Every hook is optional; a disabled feature adds no hook (STYLE.md). Hooks are
 * called per batch or per state change, never per change, except `skipped`.
 */
import type { WalListenerError } from '../errors.js';
import type { TableHandle } from './change.js';
import type { OutboundMessage } from './message.js';

/** Where the daemon is: starting, streaming, reconnecting to the source, stopping; standby (HA). */
export type DaemonState = 'starting' | 'streaming' | 'reconnecting' | 'stopping' | 'standby';

export interface PipelineObserver {
  state?(state: DaemonState): void;
  /** The publisher's connection: up (connected and publishing), down (lost, not acknowledging). */
  publisherState?(up: boolean, reason: string): void;
  /** A batch was acknowledged by the broker. */
  acked?(messages: readonly OutboundMessage[]): void;
  /** A publish failed (it will be retried, dead-lettered or stop the daemon). */
  publishFailed?(error: WalListenerError): void;
  /** A failed batch is being re-sent (one call per re-send attempt; `attempt` counts within an outage). */
  retrying?(attempt: number): void;
  /** A publish passed its deadline (ack timeout). */
  ackTimeout?(): void;
  /** Messages the broker refused for good, stored as dead letters (or stopping the daemon). */
  rejected?(messages: readonly OutboundMessage[], reason: string): void;
  /** A change of `table` was dropped by the filter. */
  skipped?(table: TableHandle): void;
  /** A connection attempt after a failure or loss: target is the source kind or "publisher"; reason when known. */
  reconnect?(target: string, reason?: string): void;
  /** Bytes between the source's newest position and the confirmed one. */
  lag?(bytes: number): void;
  /** The confirmed position as a number (PostgreSQL: the LSN), after it moved. */
  confirmed?(position: number): void;
  /** A logical message that is not routed: another prefix, or non-transactional (DESIGN.md "Outbox"). */
  logicalMessageSkipped?(reason: 'prefix' | 'nontransactional'): void;
  /** A value published as its source text because it could not be converted. */
  convertProblem?(): void;
  /** Called once with a function returning the messages not yet acknowledged. */
  inFlight?(count: () => number): void;
  /** Called once with a function returning the age in ms of the oldest unacknowledged batch (0 when none). */
  oldestUnacked?(age: () => number): void;
  /** High availability: this daemon became the leader (true) or is not (false: standby, fenced, stopped). */
  leader?(leading: boolean): void;
  /** Snapshot rows of `table` ("schema.table") acknowledged (initial snapshot or backfill chunk). */
  snapshotRows?(table: string, count: number): void;
  /** Backfills running now (0 or 1). */
  backfillInProgress?(count: number): void;
  /** Called once with a function telling whether publishing works now (and why not). */
  health?(check: () => { ok: boolean; reason: string }): void;
}
