/**
 * The `mysql` section (source.type mysql, DESIGN.md "Configuration"): where the row binlog is read
 * from and where the confirmed binlog position is kept.
 */
import { z } from 'zod';

const required = (what: string) => (issue: { input: unknown }) => (issue.input === undefined ? `is required (${what})` : `expected ${what}`);

/** `table`: wal_listener.positions in the source server; `file:<path>`: a file written atomically. */
export type PositionStoreConfig = { readonly kind: 'table' } | { readonly kind: 'file'; readonly path: string };

const positionStore = z
  .string()
  .default('table')
  .transform((value, ctx): PositionStoreConfig => {
    if (value === 'table') return { kind: 'table' };
    if (value.startsWith('file:') && value.length > 'file:'.length) return { kind: 'file', path: value.slice('file:'.length) };
    ctx.addIssue({ code: 'custom', message: `expected "table" or "file:<path>", got ${JSON.stringify(value)}` });
    return z.NEVER;
  });

/** The daemon's own database: never read, never published (DESIGN.md "The daemon's own objects"). */
export const OWN_DATABASE = 'wal_listener';

export const mysqlSection = z.strictObject({
  host: z.string().min(1).default('localhost'),
  port: z.number().int().min(1).max(65535).default(3306),
  user: z.string({ error: required('a MySQL user with REPLICATION SLAVE, REPLICATION CLIENT and SELECT') }).min(1),
  password: z.string().default(''),
  /** The replica id this daemon announces to the server: unique among the server's replicas. */
  serverId: z
    .number({ error: required('a replica server id from 1 to 4294967295, unique among the replicas of this server') })
    .int()
    .min(1, 'must be 1 or more (a replica server id)')
    .max(4294967295, 'must be at most 4294967295 (a replica server id)'),
  /** Databases whose changes are read; empty: every database but the system ones. */
  databases: z
    .array(
      z
        .string()
        .min(1)
        .refine((name) => name !== OWN_DATABASE, `${OWN_DATABASE} is the daemon's own database and is never published`),
    )
    .default([]),
  positionStore,
});

export type MysqlConfig = z.output<typeof mysqlSection>;
