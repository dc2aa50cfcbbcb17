/**
 * Read-only facts about the server, the role and a slot's activity, for `check`, `status` and the
 * start-up preflight. Nothing here creates or changes anything.
 */
import type pg from 'pg';

type Queryable = Pick<pg.Client, 'query'>;

export interface ServerFacts {
  version: string;
  walLevel: string;
  maxReplicationSlots: number;
  maxWalSenders: number;
  /** max_slot_wal_keep_size as PostgreSQL shows it: "-1" (unlimited) or e.g. "10GB". */
  maxSlotWalKeepSize: string;
  /** Replication slots that exist (every kind, every database). */
  slotsUsed: number;
  /** WAL senders running now. */
  walSendersUsed: number;
  currentLsn: string;
}

export async function serverFacts(client: Queryable): Promise<ServerFacts> {
  const r = await client.query<{ version: string; wal_level: string; slots: string; senders: string; keep: string; used: string; senders_used: string; lsn: string }>(
    `SELECT current_setting('server_version') AS version, current_setting('wal_level') AS wal_level,
            current_setting('max_replication_slots') AS slots, current_setting('max_wal_senders') AS senders,
            current_setting('max_slot_wal_keep_size') AS keep,
            (SELECT count(*) FROM pg_replication_slots)::text AS used,
            (SELECT count(*) FROM pg_stat_replication)::text AS senders_used,
            pg_current_wal_lsn()::text AS lsn`,
  );
  const row = r.rows[0]!;
  return {
    version: row.version,
    walLevel: row.wal_level,
    maxReplicationSlots: Number(row.slots),
    maxWalSenders: Number(row.senders),
    maxSlotWalKeepSize: row.keep,
    slotsUsed: Number(row.used),
    walSendersUsed: Number(row.senders_used),
    currentLsn: row.lsn,
  };
}

export interface RoleFacts {
  user: string;
  superuser: boolean;
  /** The REPLICATION attribute, or Amazon RDS's rds_replication role. */
  replication: boolean;
  /** Whether it may keep its record in wal_listener.state: create the schema and table, or use what exists. */
  stateSchema: boolean;
}

export async function roleFacts(client: Queryable): Promise<RoleFacts> {
  const r = await client.query<{ user: string; superuser: boolean; replication: boolean; rds: boolean; schema: boolean }>(
    `SELECT current_user AS user, r.rolsuper AS superuser, r.rolreplication AS replication,
            (EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_replication') AND pg_has_role('rds_replication', 'MEMBER')) AS rds,
            CASE WHEN to_regclass('wal_listener.state') IS NOT NULL THEN has_table_privilege('wal_listener.state', 'SELECT, INSERT, UPDATE, DELETE')
                 WHEN to_regnamespace('wal_listener') IS NOT NULL THEN has_schema_privilege('wal_listener', 'CREATE')
                 ELSE has_database_privilege(current_database(), 'CREATE') END AS schema
       FROM pg_roles r WHERE r.rolname = current_user`,
  );
  const row = r.rows[0]!;
  return { user: row.user, superuser: row.superuser, replication: row.superuser || row.replication || row.rds, stateSchema: row.superuser || row.schema };
}

/** Who streams from a slot now, and how far behind (pg_stat_replication), when someone does. */
export interface SlotActivity {
  pid: number;
  applicationName: string;
  clientAddr: string | null;
  backendStart: string | null;
  /** pg_stat_replication.flush_lag in seconds (null when idle or unknown). */
  flushLagSeconds: number | null;
  /** pg_stat_replication.reply_time: the last status the client sent. */
  replyTime: string | null;
}

export async function slotActivity(client: Queryable, pid: number): Promise<SlotActivity | null> {
  const r = await client.query<{ pid: number; application_name: string; client_addr: string | null; backend_start: Date | null; flush_lag: number | null; reply_time: Date | null }>(
    `SELECT a.pid, a.application_name, host(a.client_addr) AS client_addr, a.backend_start,
            extract(epoch FROM r.flush_lag)::float8 AS flush_lag, r.reply_time
       FROM pg_stat_activity a LEFT JOIN pg_stat_replication r ON r.pid = a.pid
      WHERE a.pid = $1`,
    [pid],
  );
  const row = r.rows[0];
  if (!row) return null;
  return {
    pid: row.pid,
    applicationName: row.application_name,
    clientAddr: row.client_addr,
    backendStart: row.backend_start?.toISOString() ?? null,
    flushLagSeconds: row.flush_lag,
    replyTime: row.reply_time?.toISOString() ?? null,
  };
}

/** Bytes between two LSNs ("X/Y"), as PostgreSQL computes them. */
export async function lsnDistance(client: Queryable, from: string, to: string): Promise<number> {
  const r = await client.query<{ d: string }>('SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::text AS d', [to, from]);
  return Number(r.rows[0]!.d);
}
