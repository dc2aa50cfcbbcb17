/**
 * The leader lock on MySQL/MariaDB: `GET_LOCK('wal-listener:mysql:<serverId>', 0)` on a connection
 * of its own. The server frees a named lock when the session ends (the process died, the connection
 * was killed or dropped). Unlike PostgreSQL, a session cannot ask the server for quick TCP
 * keepalive: a leader cut off by the network keeps the lock until the server drops the connection
 * (the leader fences itself within seconds; only the takeover waits).
 */
import type mysql from 'mysql2/promise';
import type { MysqlConfig } from '../../config/mysql.js';
import { lockSession } from '../lock-session.js';
import type { LeaderLock } from '../source.js';
import { classifyMysqlError, connectSql } from './connection.js';

export function mysqlLeaderLock(config: MysqlConfig): LeaderLock {
  const key = `wal-listener:mysql:${config.serverId}`;
  const context = { doing: 'connecting for the leader lock', host: config.host, port: config.port, user: config.user };
  return {
    key,
    async connect() {
      let connection: mysql.Connection;
      try {
        connection = await connectSql(config);
      } catch (err) {
        throw classifyMysqlError(err, context);
      }
      return lockSession(
        {
          tryLock: async () => Number((await connection.query<mysql.RowDataPacket[]>('SELECT GET_LOCK(?, 0) AS held', [key]))[0][0]?.held) === 1,
          roundTrip: () => connection.query('SELECT 1'),
          onLost: (callback) => {
            connection.on('error', callback);
            connection.on('end', () => callback(new Error('the leader lock connection ended')));
          },
          end: () => connection.end(),
          destroy: () => connection.destroy(),
        },
        'WAL_MYSQL_CONNECT',
      );
    },
  };
}
