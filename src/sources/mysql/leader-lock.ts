/**
 * The leader lock on MySQL/MariaDB: `GET_LOCK('wal-listener:mysql:<serverId>', 0)` on a connection
 * of its own. The server frees a named lock when the session ends (the process died, the connection
 * was killed or dropped). Unlike PostgreSQL, a session cannot ask the server for quick TCP
 * keepalive: a leader cut off by the network keeps the lock until the server drops the connection
 * (the leader fences itself within seconds; only the takeover waits).
 */
import type mysql from 'mysql2/promise';
import type { MysqlConfig } from '../../config/mysql.js';
import { WalListenerError } from '../../errors.js';
import type { LeaderLock, LeaderLockSession } from '../source.js';
import { classifyMysqlError, connectSql } from './connection.js';

export function mysqlLeaderLock(config: MysqlConfig): LeaderLock {
  const key = `wal-listener:mysql:${config.serverId}`;
  const context = { doing: 'connecting for the leader lock', host: config.host, port: config.port, user: config.user };
  return {
    key,
    async connect() {
      try {
        return new MysqlLockSession(await connectSql(config), key);
      } catch (err) {
        throw classifyMysqlError(err, context);
      }
    },
  };
}

class MysqlLockSession implements LeaderLockSession {
  readonly lost: Promise<Error>;

  constructor(
    private readonly connection: mysql.Connection,
    private readonly key: string,
  ) {
    this.lost = new Promise<Error>((resolve) => {
      connection.on('error', (err: Error) => resolve(err));
      connection.on('end', () => resolve(new Error('the leader lock connection ended')));
    });
  }

  async tryLock(): Promise<boolean> {
    const [rows] = await this.connection.query<mysql.RowDataPacket[]>('SELECT GET_LOCK(?, 0) AS held', [this.key]);
    return Number(rows[0]?.held) === 1;
  }

  async ping(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new WalListenerError('WAL_MYSQL_CONNECT', `the leader lock connection did not answer within ${timeoutMs} ms`));
        this.connection.destroy();
      }, timeoutMs);
    });
    try {
      await Promise.race([this.connection.query('SELECT 1'), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    await Promise.race([this.connection.end().catch(() => {}), new Promise((resolve) => setTimeout(resolve, 1_000).unref())]);
    this.connection.destroy();
  }
}
