/**
 * The leader lock on PostgreSQL (and PgQ, which reads through database.*): a session advisory lock
 * on a connection of its own, `pg_try_advisory_lock(hashtextextended('wal-listener:<slot>', 0))`.
 * PostgreSQL frees it when the session ends: the process died (the kernel closes the socket), the
 * backend was terminated, or the server gave up on a silent peer. The session asks the server to
 * probe a silent peer quickly (TCP keepalive after 5 s idle, 1 s apart, 3 probes: a partitioned
 * leader's lock frees after about 8 s, not after the kernel default of hours).
 * Advisory locks are per database: every daemon of a slot uses the same database.* (they must).
 * A pooler in transaction mode (PgBouncer) breaks session locks: connect to PostgreSQL directly.
 */
import type pg from 'pg';
import type { DatabaseConfig } from '../../config/schema.js';
import { lockSession } from '../lock-session.js';
import type { LeaderLock } from '../source.js';
import { connectClient, tlsError } from './connection-options.js';
import { classifyPgError } from './errors.js';

/** The lock session's application_name: how `status` (and an operator) finds the daemons of a slot. */
const LOCK_APPLICATION = 'wal-listener leader lock';

/** The leader lock's key for a slot. */
export const slotLockKey = (slotName: string): string => `wal-listener:${slotName}`;

/** Server-side keepalive for the lock session (seconds); unix sockets ignore them. */
const SESSION_SETTINGS = 'SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 1; SET tcp_keepalives_count = 3';

export function postgresLeaderLock(db: DatabaseConfig, key: string): LeaderLock {
  const context = { doing: 'connecting for the leader lock', database: db.name, user: db.user };
  return {
    key,
    async connect() {
      let client: pg.Client;
      try {
        client = await connectClient(db, { application_name: LOCK_APPLICATION, keepAliveInitialDelayMillis: 1_000 });
      } catch (err) {
        throw tlsError(db, err) ?? classifyPgError(err, context);
      }
      const session = lockSession(
        {
          tryLock: async () => (await client.query<{ held: boolean }>('SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS held', [key])).rows[0]?.held === true,
          roundTrip: () => client.query('SELECT 1'),
          onLost: (callback) => {
            client.on('error', callback);
            client.on('end', () => callback(new Error('the leader lock connection ended')));
          },
          end: () => client.end(),
          destroy: () => (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy(),
        },
        'WAL_PG_CONNECT',
      );
      try {
        await client.query(SESSION_SETTINGS);
      } catch (err) {
        await session.close();
        throw classifyPgError(err, context);
      }
      return session;
    },
  };
}

/** The daemons of a lock in this database (`wal-listener status`): the leader's session, and how many wait. */
export interface LeaderSessions {
  leader: { pid: number; clientAddr: string | null; since: string | null } | null;
  standbys: number;
}

export async function leaderSessions(client: Pick<pg.Client, 'query'>, key: string): Promise<LeaderSessions> {
  // A bigint advisory key shows in pg_locks as classid (high 32 bits) and objid (low 32 bits).
  const result = await client.query<{ pid: number; client_addr: string | null; backend_start: Date | null; leader: boolean }>(
    `SELECT a.pid, host(a.client_addr) AS client_addr, a.backend_start,
            EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.granted
                      AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended($1, 0)) AS leader
       FROM pg_stat_activity a WHERE a.datname = current_database() AND a.application_name = $2`,
    [key, LOCK_APPLICATION],
  );
  const leader = result.rows.find((r) => r.leader);
  return {
    leader: leader ? { pid: leader.pid, clientAddr: leader.client_addr, since: leader.backend_start?.toISOString() ?? null } : null,
    standbys: result.rows.filter((r) => !r.leader).length,
  };
}
