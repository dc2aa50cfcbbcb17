/**
 * `wal-listener check` for source.type mysql: each prerequisite of the MySQL source as a finding,
 * read-only (nothing is created, no position is stored): the server reachable, the row binlog
 * settings, the grants, and where the daemon would start (the stored position and whether its
 * binlog file is still there, or the binlog's end on a first start).
 */
import type mysql from 'mysql2/promise';
import type { MysqlConfig } from '../../config/mysql.js';
import { WalListenerError } from '../../errors.js';
import type { Finding } from '../../findings.js';
import { classifyMysqlError, connectSql } from './connection.js';
import { bytesBehind, formatPosition } from './position.js';
import type { PositionStore } from './position-store.js';
import { binlogFiles, checkBinlogSettings, checkGrants } from './prerequisites.js';

const SETUP = 'see "Server setup" in docs/mysql.md';

export async function diagnoseMysql(config: MysqlConfig, store: PositionStore): Promise<Finding[]> {
  const where = `${config.host}:${config.port}, user ${config.user}`;
  let sql: mysql.Connection;
  try {
    sql = await connectSql(config);
  } catch (err) {
    const error = classifyMysqlError(err, { doing: 'connecting', ...config });
    return [{ status: 'problem', subject: 'MySQL', detail: `not reachable (${where}): ${error.message} [${error.code}]` }];
  }
  const findings: Finding[] = [];
  try {
    const problem = (subject: string, err: unknown, fix: string): Finding => {
      const error = err instanceof WalListenerError ? err : classifyMysqlError(err, { doing: `checking ${subject}`, ...config });
      return { status: 'problem', subject, detail: `${error.message} [${error.code}]`, fix };
    };
    try {
      const server = await checkBinlogSettings(sql, config);
      findings.push({ status: 'ok', subject: 'MySQL', detail: `reachable: ${server.version} (${where})` });
      findings.push({ status: 'ok', subject: 'binlog', detail: 'log_bin ON, binlog_format ROW, binlog_row_image FULL' });
      if (server.rowMetadata !== undefined && server.rowMetadata !== 'FULL') {
        findings.push({
          status: 'warn',
          subject: 'binlog_row_metadata',
          detail: `${server.rowMetadata}: tables are described from information_schema, so rows written before an ALTER TABLE and read after it may not decode`,
          fix: 'binlog_row_metadata = FULL in the [mysqld] section (or SET GLOBAL binlog_row_metadata = FULL)',
        });
      }
    } catch (err) {
      findings.push({ status: 'ok', subject: 'MySQL', detail: `reachable (${where})` }, problem('binlog', err, SETUP));
    }
    try {
      await checkGrants(sql, config);
      findings.push({ status: 'ok', subject: 'grants', detail: `${config.user} holds REPLICATION SLAVE, REPLICATION CLIENT and SELECT` });
    } catch (err) {
      findings.push(problem('grants', err, `GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO '${config.user}'@'<host>'`));
    }
    try {
      const stored = await store.load();
      const files = await binlogFiles(sql);
      if (!stored) {
        findings.push({ status: 'info', subject: 'binlog position', detail: `none stored in ${store.description}: the first start begins at the current end of the binlog (earlier changes are not published)` });
      } else {
        const behind = bytesBehind(stored, files);
        const file = files.find((f) => f.name === stored.file);
        if (behind === undefined || !file || stored.offset > file.size) {
          findings.push({
            status: 'problem',
            subject: 'binlog position',
            detail: `${formatPosition(stored)} (${store.description}) names a binlog file the server no longer has or a place past its end (oldest: ${files[0]?.name ?? 'none'}); the changes since are lost to this daemon [WAL_MYSQL_POSITION_LOST]`,
            fix: `to start again from the current end of the binlog: DELETE FROM wal_listener.positions WHERE server_id = ${config.serverId} (positionStore file: remove the file)`,
          });
        } else {
          findings.push({ status: 'ok', subject: 'binlog position', detail: `${formatPosition(stored)} (${store.description}), ${behind} bytes behind the end of the binlog` });
        }
      }
    } catch (err) {
      findings.push(problem('binlog position', err, 'the message names the file or the SQL error'));
    }
  } finally {
    await sql.end().catch(() => sql.destroy());
  }
  return findings;
}
