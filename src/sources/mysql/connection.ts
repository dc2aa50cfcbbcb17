/**
 * Connections to the MySQL/MariaDB source: the options every connection shares (the binlog
 * connection and the SQL one), and the classification of what goes wrong into error codes: lost
 * or refused connections are retried (WAL_MYSQL_CONNECT), missing privileges and purged binlogs stop
 * the daemon with the remedy.
 */
import mysql from 'mysql2/promise';
import type { ConnectionOptions } from 'mysql2';
import type { MysqlConfig } from '../../config/mysql.js';
import { WalListenerError } from '../../errors.js';

/**
 * Values in exact forms: dates and times as text (TIMESTAMP in UTC), JSON as text, DECIMAL and
 * BIGINT as strings when a double cannot hold them. The binlog reader decodes rows with the same
 * options (they are read from its connection's config).
 */
export function connectionOptions(config: MysqlConfig): ConnectionOptions {
  return {
    host: config.host,
    port: config.port,
    user: config.user,
    password: config.password,
    charset: 'utf8mb4_general_ci',
    dateStrings: true,
    timezone: 'Z',
    jsonStrings: true,
    supportBigNumbers: true,
    bigNumberStrings: true,
    decimalNumbers: false,
    connectTimeout: 10_000,
    enableKeepAlive: true,
    keepAliveInitialDelay: 10_000,
  };
}

/** One SQL connection for checks and lookups, with the session in UTC. */
export async function connectSql(config: MysqlConfig): Promise<mysql.Connection> {
  const connection = await mysql.createConnection(connectionOptions(config));
  await connection.query("SET time_zone = '+00:00'");
  return connection;
}

/** mysql2 error codes of a connection that could not be made or was lost. */
const CONNECTION_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN',
  'PROTOCOL_CONNECTION_LOST', 'PROTOCOL_SEQUENCE_TIMEOUT', 'ER_SERVER_SHUTDOWN', 'ER_CON_COUNT_ERROR',
  'ER_CONNECTION_KILLED', 'ER_QUERY_INTERRUPTED', 'ER_SERVER_GONE_ERROR', 'ER_SERVER_LOST', 'ER_TOO_MANY_USER_CONNECTIONS',
  'ERR_STREAM_WRITE_AFTER_END', 'ERR_SOCKET_CLOSED',
]);

const PRIVILEGE_CODES = new Set([
  'ER_ACCESS_DENIED_ERROR', 'ER_SPECIFIC_ACCESS_DENIED_ERROR', 'ER_TABLEACCESS_DENIED_ERROR', 'ER_DBACCESS_DENIED_ERROR',
  'ER_COLUMNACCESS_DENIED_ERROR', 'ER_ACCESS_DENIED_NO_PASSWORD_ERROR',
]);

interface MysqlErrorLike {
  code?: string;
  errno?: number;
  message?: string;
  fatal?: boolean;
}

/** What the source was doing and where it was, for the message. */
export interface MysqlErrorContext {
  readonly doing: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  /** The binlog position reached, when streaming. */
  readonly position?: string;
}

/** Turns whatever a mysql2 or binlog call threw into a WalListenerError with the right code. */
export function classifyMysqlError(err: unknown, context: MysqlErrorContext): WalListenerError {
  if (err instanceof WalListenerError) return err;
  const e = (err ?? {}) as MysqlErrorLike;
  const reason = e.message ?? String(err);
  const where = `${context.doing} (MySQL ${context.user}@${context.host}:${context.port}${context.position ? `, binlog ${context.position}` : ''})`;
  const code = e.code ?? '';
  if (PRIVILEGE_CODES.has(code)) {
    return new WalListenerError(
      'WAL_MYSQL_GRANTS',
      `${where}: ${reason}. The user needs: GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO '${context.user}'@'<host>' (and ALL ON wal_listener.* for the daemon's own tables)`,
      { cause: err },
    );
  }
  // 1236: the server cannot send the binlog from the requested position (file purged, or past its end).
  if (e.errno === 1236 || code === 'ER_MASTER_FATAL_ERROR_READING_BINLOG') {
    return positionLost(`${where}: the server cannot send the binlog from the stored position: ${reason}`, err);
  }
  if (CONNECTION_CODES.has(code) || (e.fatal === true && !code.startsWith('ER_'))) {
    return new WalListenerError('WAL_MYSQL_CONNECT', `${where}: ${reason}`, { cause: err });
  }
  if (code.startsWith('ER_') || e.errno !== undefined) {
    // A server error that is not about the connection: retrying gives the same answer.
    return new WalListenerError('WAL_MYSQL_PROTOCOL', `${where}: ${reason}`, { cause: err });
  }
  return new WalListenerError('WAL_MYSQL_CONNECT', `${where}: ${reason}`, { cause: err });
}

/** The stored position cannot be resumed from: say what is lost and how to start again. */
export function positionLost(message: string, cause?: unknown): WalListenerError {
  return new WalListenerError(
    'WAL_MYSQL_POSITION_LOST',
    `${message}. The changes between the stored position and the oldest binlog the server still has are lost to this daemon. ` +
      'To start again from the current end of the binlog, delete the stored position (positionStore table: ' +
      'DELETE FROM wal_listener.positions WHERE server_id = <mysql.serverId>; positionStore file: remove the file) and restart',
    { cause },
  );
}

/**
 * The connection for the daemon's own tables in database wal_listener (positions, dead letters):
 * made on first need, dropped after a failure, each table created once when first written, and its
 * writes kept out of the binlog where the user may (SUPER or BINLOG ADMIN); the reader skips
 * database wal_listener anyway.
 */
export class OwnTables {
  private connection: mysql.Connection | null = null;
  private readonly created = new Set<string>();

  constructor(private readonly config: MysqlConfig) {}

  /** Runs `work`; with `createTable` (a CREATE TABLE IF NOT EXISTS), the table exists first. */
  async run<T>(work: (connection: mysql.Connection) => Promise<T>, createTable?: string): Promise<T> {
    try {
      if (!this.connection) {
        this.connection = await connectSql(this.config);
        await this.connection.query('SET SESSION sql_log_bin = 0').catch(() => undefined);
      }
      if (createTable && !this.created.has(createTable)) {
        await this.connection.query('CREATE DATABASE IF NOT EXISTS wal_listener');
        await this.connection.query(createTable);
        this.created.add(createTable);
      }
      return await work(this.connection);
    } catch (err) {
      this.connection?.destroy();
      this.connection = null;
      throw err;
    }
  }

  /** Whether wal_listener.<table> exists (reading needs no table). */
  async exists(table: string): Promise<boolean> {
    return this.run(async (c) => {
      const [rows] = await c.query<mysql.RowDataPacket[]>("SELECT 1 FROM information_schema.tables WHERE table_schema = 'wal_listener' AND table_name = ?", [table]);
      return rows.length > 0;
    });
  }

  async close(): Promise<void> {
    const connection = this.connection;
    this.connection = null;
    await connection?.end().catch(() => connection.destroy());
  }
}
