/**
 * What the source checks before it reads (each failure names the setting and the fix):
 * the binlog is on and written as full row images, the replica id is not the server's own, and the
 * user holds REPLICATION SLAVE, REPLICATION CLIENT (MariaDB: BINLOG MONITOR) and SELECT.
 * Also: where the binlog ends now, and which binlog files the server still has.
 */
import type mysql from 'mysql2/promise';
import type { MysqlConfig } from '../../config/mysql.js';
import { WalListenerError } from '../../errors.js';
import type { BinlogFile, MysqlPosition } from './position.js';

export interface ServerFacts {
  readonly version: string;
  readonly mariadb: boolean;
  /** The server's identity for event ids: server_uuid (MySQL), or server_id (MariaDB). */
  readonly identity: string;
  /** binlog_row_metadata (MySQL 8, MariaDB 10.5+): FULL makes the binlog describe its tables. */
  readonly rowMetadata: string | undefined;
}

const VARIABLES = ['version', 'log_bin', 'binlog_format', 'binlog_row_image', 'server_id', 'server_uuid', 'binlog_row_metadata', 'binlog_transaction_compression', 'binlog_row_value_options'];

const setupError = (message: string): WalListenerError => new WalListenerError('WAL_MYSQL_BINLOG', message);

/** Checks the server's binlog settings; throws WAL_MYSQL_BINLOG naming the setting and the fix. */
export async function checkBinlogSettings(sql: mysql.Connection, config: MysqlConfig): Promise<ServerFacts> {
  const [rows] = await sql.query<mysql.RowDataPacket[]>(`SHOW GLOBAL VARIABLES WHERE Variable_name IN (${VARIABLES.map(() => '?').join(', ')})`, VARIABLES);
  const vars = new Map(rows.map((row) => [String(row.Variable_name).toLowerCase(), String(row.Value)]));
  const value = (name: string): string => (vars.get(name) ?? '').toUpperCase();
  const where = `MySQL ${config.host}:${config.port}`;
  const fix = 'in the [mysqld] section of the server\'s configuration, then restart the server';
  if (value('log_bin') !== 'ON' && value('log_bin') !== '1') {
    throw setupError(`${where} does not write a binary log (log_bin is OFF): set log_bin = mysql-bin and server_id = 1 ${fix}`);
  }
  if (value('binlog_format') !== 'ROW') {
    throw setupError(`${where} has binlog_format = ${value('binlog_format') || 'unknown'}; the source reads row events only: set binlog_format = ROW ${fix} (or SET GLOBAL binlog_format = 'ROW', which takes effect for new client sessions)`);
  }
  if (value('binlog_row_image') !== 'FULL') {
    throw setupError(`${where} has binlog_row_image = ${value('binlog_row_image') || 'unknown'}; the source needs whole rows before and after each change: set binlog_row_image = FULL ${fix} (or SET GLOBAL binlog_row_image = 'FULL')`);
  }
  if (value('binlog_transaction_compression') === 'ON') {
    throw setupError(`${where} has binlog_transaction_compression = ON, whose compressed transactions cannot be decoded: SET GLOBAL binlog_transaction_compression = OFF`);
  }
  if (value('binlog_row_value_options') === 'PARTIAL_JSON') {
    throw setupError(`${where} has binlog_row_value_options = PARTIAL_JSON, whose partial JSON updates cannot be decoded: SET GLOBAL binlog_row_value_options = ''`);
  }
  const serverId = vars.get('server_id') ?? '';
  if (serverId === String(config.serverId)) {
    throw setupError(`mysql.serverId ${config.serverId} is the server's own server_id: choose another id, unique among the replicas of ${where}`);
  }
  const version = vars.get('version') ?? '';
  const mariadb = /mariadb/i.test(version);
  const uuid = vars.get('server_uuid');
  return { version, mariadb, identity: uuid ? `uuid:${uuid}` : `server_id:${serverId}`, rowMetadata: vars.get('binlog_row_metadata')?.toUpperCase() };
}

/** Privileges of one GRANT line: "GRANT SELECT, REPLICATION SLAVE ON *.* TO ..." → scope and names. */
function parseGrant(line: string): { scope: string; privileges: string[] } | undefined {
  const match = /^GRANT (.+?) ON (\S+) TO /i.exec(line);
  if (!match) return undefined;
  return { scope: match[2]!.replaceAll('`', ''), privileges: match[1]!.split(/,\s*/).map((p) => p.trim().toUpperCase()) };
}

/** Checks the user's grants; throws WAL_MYSQL_GRANTS listing what is missing. Roles are not expanded: with a role the check is left to the server. */
export async function checkGrants(sql: mysql.Connection, config: MysqlConfig): Promise<void> {
  const [rows] = await sql.query<mysql.RowDataPacket[]>('SHOW GRANTS FOR CURRENT_USER()');
  const lines = rows.map((row) => String(Object.values(row)[0]));
  if (lines.some((line) => /^GRANT [`'][^`']+[`'](@[`'][^`']*[`'])? TO /i.test(line))) return;
  const grants = lines.map(parseGrant).filter((g) => g !== undefined);
  const holds = (scope: string, privilege: string): boolean =>
    grants.some((g) => g.scope === scope && (g.privileges.includes('ALL PRIVILEGES') || g.privileges.includes('ALL') || g.privileges.includes(privilege)));
  const missing: string[] = [];
  if (!holds('*.*', 'REPLICATION SLAVE')) missing.push('REPLICATION SLAVE');
  if (!holds('*.*', 'REPLICATION CLIENT') && !holds('*.*', 'BINLOG MONITOR') && !holds('*.*', 'SUPER')) missing.push('REPLICATION CLIENT');
  const selectScopes = config.databases.length > 0 ? config.databases.map((db) => `${db}.*`) : ['*.*'];
  if (!holds('*.*', 'SELECT') && !selectScopes.every((scope) => holds(scope, 'SELECT'))) missing.push(`SELECT (on ${config.databases.length > 0 ? config.databases.join(', ') : 'every database'})`);
  if (missing.length > 0) {
    throw new WalListenerError(
      'WAL_MYSQL_GRANTS',
      `MySQL user ${config.user} lacks ${missing.join(', ')}: GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO '${config.user}'@'<host>' ` +
        '(and ALL ON wal_listener.* for the position table and dead letters)',
    );
  }
}

/** The binlog files the server has, oldest first. */
export async function binlogFiles(sql: mysql.Connection): Promise<BinlogFile[]> {
  const [rows] = await sql.query<mysql.RowDataPacket[]>('SHOW BINARY LOGS');
  return rows.map((row) => ({ name: String(row.Log_name), size: Number(row.File_size) }));
}

/** Where the binlog ends now. */
export async function binlogEnd(sql: mysql.Connection): Promise<MysqlPosition> {
  let rows: mysql.RowDataPacket[];
  try {
    [rows] = await sql.query<mysql.RowDataPacket[]>('SHOW MASTER STATUS');
  } catch {
    // MySQL 8.4 removed SHOW MASTER STATUS.
    [rows] = await sql.query<mysql.RowDataPacket[]>('SHOW BINARY LOG STATUS');
  }
  const row = rows[0];
  if (!row) throw setupError('the server reports no binlog position (SHOW MASTER STATUS is empty): is log_bin on?');
  return { file: String(row.File), offset: Number(row.Position) };
}
