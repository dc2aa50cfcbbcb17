/**
 * The `pgq` section (DESIGN.md "Configuration", + keys): reading a PgQ queue the way mikkoo does,
 * with `database.*` for the connection. Used when `source.type` is `pgq`.
 */
import { z } from 'zod';

/** The config's duration type (schema.ts owns it): a Go-style duration string or seconds, in ms. */
type Duration = (fallback: string) => z.ZodType<number>;

/** Built with schema.ts's duration helper, so durations read the same everywhere (no import cycle). */
export function pgqSection(duration: Duration) {
  return z.strictObject({
    /** The queue to read (`SELECT pgq.create_queue('…')`). */
    queue: z.string({ error: (issue) => (issue.input === undefined ? 'is required' : 'expected a string') }).min(1),
    /** The PgQ consumer registered on the queue; its position is PgQ's own subscription. */
    consumerName: z.string().min(1).default('wal-listener'),
    /** Retries (`pgq.event_retry`) of an event the broker refuses before it becomes a dead letter. */
    maxFailures: z.number().int().min(0).max(1_000_000).default(10),
    /** How long a refused event waits in PgQ's retry queue before it comes back. */
    retryDelay: duration('10s'),
    /** Unregister the consumer on a clean stop (its position is forgotten; mikkoo's default is true). */
    unregister: z.boolean().default(false),
    /** Record every delivered event in `wal_listener.audit`, in the transaction that finishes its batch. */
    audit: z.boolean().default(false),
  });
}
