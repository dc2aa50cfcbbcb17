/**
 * MariaDB for the MySQL source's tests.
 *   - The machine's MariaDB (127.0.0.1:3306, root, no password), with the row binlog that .ci/run
 *     enables: each test file uses its own databases (createMysqlDatabase) and drops them.
 *   - A private mariadbd (startPrivateMariadb) on a free port with its own data directory, for
 *     tests that restart the server, turn the binlog off or change its format.
 * Plus a config for the source and a workload helper for end-to-end tests.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { configSchema, type Config } from '../../src/config/schema.js';
import { freePort, waitFor } from './ports.js';

export const MYSQL_HOST = '127.0.0.1';
export const MYSQL_PORT = 3306;
export const MYSQL_USER = 'root';

export async function connect(port = MYSQL_PORT, database?: string): Promise<mysql.Connection> {
  return mysql.createConnection({ host: MYSQL_HOST, port, user: MYSQL_USER, database, multipleStatements: true, charset: 'utf8mb4_general_ci', dateStrings: true, jsonStrings: true, supportBigNumbers: true, bigNumberStrings: true });
}

/** Runs SQL on a new connection (fine for tests). */
export async function query<T = mysql.RowDataPacket[]>(text: string, params: unknown[] = [], port = MYSQL_PORT, database?: string): Promise<T> {
  const c = await connect(port, database);
  try {
    return (await c.query(text, params))[0] as T;
  } finally {
    await c.end();
  }
}

/** Fails (never skips) when the server does not write the row binlog the source needs. */
export async function requireRowBinlog(port = MYSQL_PORT): Promise<void> {
  const [row] = await query<mysql.RowDataPacket[]>('SELECT @@log_bin + 0 AS logBin, @@binlog_format AS format, @@binlog_row_image AS image', [], port);
  if (!row || Number(row.logBin) !== 1 || row.format !== 'ROW' || row.image !== 'FULL') {
    throw new Error(
      `MariaDB on port ${port} does not write a full row binlog (log_bin=${row?.logBin}, binlog_format=${row?.format}, binlog_row_image=${row?.image}); ` +
        'run the "MariaDB" section of .ci/run, which enables it',
    );
  }
}

export interface MysqlTestDatabase {
  readonly name: string;
  readonly port: number;
  /** Runs SQL in this database (several statements allowed). */
  sql<T = mysql.RowDataPacket[]>(text: string, params?: unknown[]): Promise<T>;
  connect(): Promise<mysql.Connection>;
  drop(): Promise<void>;
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
}

export async function createMysqlDatabase(prefix = 'wl', port = MYSQL_PORT): Promise<MysqlTestDatabase> {
  const name = uniqueName(prefix);
  await query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4`, [], port);
  return {
    name,
    port,
    sql: (text, params) => query(text, params, port, name),
    connect: () => connect(port, name),
    drop: async () => {
      await query(`DROP DATABASE IF EXISTS \`${name}\``, [], port);
    },
  };
}

/** A replica id no other test uses at the same time. */
export function uniqueServerId(): number {
  return randomInt(100_000, 2 ** 31);
}

/** A validated config for source.type mysql. */
export function mysqlSourceConfig(options: { port?: number; databases: string[]; positionStore?: string; serverId?: number }): Config {
  return configSchema.parse({
    source: { type: 'mysql' },
    mysql: {
      host: MYSQL_HOST,
      port: options.port ?? MYSQL_PORT,
      user: MYSQL_USER,
      serverId: options.serverId ?? uniqueServerId(),
      databases: options.databases,
      positionStore: options.positionStore ?? 'table',
    },
    publisher: { type: 'stdout', topic: 'wl' },
  });
}

/** Deletes this config's stored position (table store) so tests do not see each other's. */
export async function forgetPosition(config: Config): Promise<void> {
  await query('DELETE FROM wal_listener.positions WHERE server_id = ?', [config.mysql!.serverId], config.mysql!.port).catch(() => undefined);
}

export interface PrivateMariadb {
  readonly port: number;
  readonly dataDir: string;
  /** Starts (again) on the same data directory and port, with these binlog settings. */
  start(binlog?: BinlogSettings): Promise<void>;
  /** Clean shutdown. */
  stop(): Promise<void>;
  /** SIGKILL, as a crash. */
  kill(): Promise<void>;
  /** Stops it and removes the data directory. */
  remove(): Promise<void>;
}

export interface BinlogSettings {
  /** false: no binary log. */
  readonly logBin?: boolean;
  readonly format?: 'ROW' | 'STATEMENT' | 'MIXED';
  readonly rowImage?: 'FULL' | 'MINIMAL' | 'NOBLOB';
  readonly rowMetadata?: 'NO_LOG' | 'MINIMAL' | 'FULL';
}

/** A private mariadbd with its own data directory (mariadb-install-db, about 5 s). */
export async function startPrivateMariadb(binlog: BinlogSettings = {}): Promise<PrivateMariadb> {
  const base = mkdtempSync(join(tmpdir(), 'wl-mariadb-'));
  const dataDir = join(base, 'data');
  const init = spawnSync('mariadb-install-db', ['--no-defaults', `--datadir=${dataDir}`, '--user=root', '--auth-root-authentication-method=normal', '--skip-test-db', '--skip-name-resolve'], { encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`mariadb-install-db failed (${init.status}): ${init.stderr || init.stdout}`);
  const port = await freePort();
  let child: ChildProcess | null = null;
  const exited = (): Promise<void> =>
    new Promise((resolve) => {
      if (!child || child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
  const server: PrivateMariadb = {
    port,
    dataDir,
    async start(settings = binlog) {
      const args = [
        '--no-defaults', `--datadir=${dataDir}`, `--port=${port}`, '--bind-address=127.0.0.1', `--socket=${join(base, 'sock')}`, `--pid-file=${join(base, 'pid')}`,
        '--user=root', '--skip-name-resolve', '--innodb-buffer-pool-size=32M', '--innodb-log-file-size=16M', `--log-error=${join(base, 'error.log')}`,
        '--character-set-server=utf8mb4', '--server-id=1',
      ];
      if (settings.logBin !== false) {
        args.push(`--log-bin=${join(dataDir, 'bin')}`, `--binlog-format=${settings.format ?? 'ROW'}`, `--binlog-row-image=${settings.rowImage ?? 'FULL'}`, `--binlog-row-metadata=${settings.rowMetadata ?? 'NO_LOG'}`);
      }
      child = spawn('/usr/sbin/mariadbd', args, { stdio: 'ignore' });
      const started = child;
      await waitFor(`private mariadbd on port ${port}`, async () => {
        if (started.exitCode !== null) throw new Error(`mariadbd exited with ${started.exitCode} (see ${join(base, 'error.log')})`);
        const c = await connect(port);
        await c.end();
        return true;
      }, 30_000, 100);
    },
    async stop() {
      if (!child || child.exitCode !== null) return;
      await query('SHUTDOWN', [], port).catch(() => undefined);
      await exited();
    },
    async kill() {
      child?.kill('SIGKILL');
      await exited();
    },
    async remove() {
      await server.kill();
      rmSync(base, { recursive: true, force: true });
    },
  };
  try {
    await server.start(binlog);
  } catch (err) {
    await server.remove();
    throw err;
  }
  return server;
}

/**
 * Workload for end-to-end tests: `items (id BIGINT PRIMARY KEY, name VARCHAR(64), amount DECIMAL(20,4), at DATETIME(6))`.
 * `bigTransaction` inserts n rows in one transaction (MariaDB's sequence engine); `keepWriting`
 * commits single-row inserts until stopped.
 */
export async function createItemsTable(db: MysqlTestDatabase, table = 'items'): Promise<void> {
  await db.sql(`CREATE TABLE \`${table}\` (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL, amount DECIMAL(20,4) NOT NULL, at DATETIME(6) NOT NULL) ENGINE=InnoDB`);
}

export async function bigTransaction(db: MysqlTestDatabase, rows: number, { table = 'items', firstId = 1 } = {}): Promise<void> {
  await db.sql(
    `INSERT INTO \`${table}\` (id, name, amount, at)
     SELECT seq + ${firstId - 1}, CONCAT('item ', seq), seq * 1.25, TIMESTAMP'2024-02-29 13:45:56.123456' + INTERVAL seq SECOND FROM seq_1_to_${rows}`,
  );
}

/** Single-row inserts into `table` (ids 1, 2, …), each its own transaction, until stopped; `stop` resolves with how many. */
export function keepWriting(db: MysqlTestDatabase, table = 'items'): { written: () => number; stop: () => Promise<number> } {
  let n = 0;
  let going = true;
  const done = (async () => {
    const c = await db.connect();
    try {
      while (going) {
        await c.query(`INSERT INTO \`${table}\` (id, name, amount, at) VALUES (?, ?, ?, NOW(6))`, [n + 1, `item ${n + 1}`, ((n + 1) * 1.25).toFixed(4)]);
        n++;
      }
    } finally {
      await c.end();
    }
    return n;
  })();
  return {
    written: () => n,
    stop: async () => {
      going = false;
      return done;
    },
  };
}

/** The position `wal_listener.positions` holds for this replica id (table store), if any. */
export async function storedPosition(serverId: number, port = MYSQL_PORT): Promise<{ file: string; offset: number } | undefined> {
  const rows = await query<{ binlog_file: string; binlog_offset: string }[]>('SELECT binlog_file, binlog_offset FROM wal_listener.positions WHERE server_id = ?', [serverId], port).catch(() => []);
  return rows[0] ? { file: rows[0].binlog_file, offset: Number(rows[0].binlog_offset) } : undefined;
}

/** Where the server's binlog ends now (SHOW MASTER STATUS). */
export async function binlogEndNow(port = MYSQL_PORT): Promise<{ file: string; offset: number }> {
  const [row] = await query<{ File: string; Position: string }[]>('SHOW MASTER STATUS', [], port);
  if (!row) throw new Error(`MariaDB on port ${port} reports no binlog position`);
  return { file: row.File, offset: Number(row.Position) };
}

/**
 * The first transaction that starts at `from` or later (`startsAfter`: later only) and writes
 * `schema.table`: where it starts (its GTID event) and where it ends (the end of its commit event),
 * read from the server's SHOW BINLOG EVENTS (an oracle independent of our binlog reader); undefined
 * when the binlog file holds none yet.
 */
export async function transactionOf(from: { file: string; offset: number }, schema: string, table: string, port = MYSQL_PORT, startsAfter = false): Promise<{ file: string; start: number; end: number } | undefined> {
  let at = from.offset;
  let gtid: number | undefined;
  let start: number | undefined;
  for (;;) {
    const events = await query<{ Pos: string; Event_type: string; End_log_pos: string; Info: string }[]>(`SHOW BINLOG EVENTS IN '${from.file}' FROM ${at} LIMIT 5000`, [], port);
    for (const e of events) {
      if (start === undefined) {
        if (e.Event_type === 'Gtid' && (startsAfter ? Number(e.Pos) > from.offset : Number(e.Pos) >= from.offset)) gtid = Number(e.Pos);
        if (gtid !== undefined && e.Event_type === 'Table_map' && e.Info.endsWith(`(${schema}.${table})`)) start = gtid;
      } else if (e.Event_type === 'Xid' || (e.Event_type === 'Query' && e.Info === 'COMMIT')) {
        return { file: from.file, start, end: Number(e.End_log_pos) };
      }
    }
    if (events.length < 5000) return undefined;
    at = Number(events[events.length - 1]!.End_log_pos);
  }
}

/** Where the first transaction after the one at `after` that writes `schema.table` starts (transactionOf). */
export async function nextTransactionOf(after: { file: string; offset: number }, schema: string, table: string, port = MYSQL_PORT): Promise<{ file: string; offset: number } | undefined> {
  const txn = await transactionOf(after, schema, table, port, true);
  return txn && { file: txn.file, offset: txn.start };
}

/**
 * Rotates the binlog twice and purges every file but the newest, retrying while the server keeps
 * an old one (a replica's dump thread that has not noticed its client left still holds its file).
 */
export async function purgeOldBinlogs(port: number): Promise<void> {
  await query('FLUSH BINARY LOGS; FLUSH BINARY LOGS', [], port);
  const [newest] = (await query<{ Log_name: string }[]>('SHOW BINARY LOGS', [], port)).slice(-1);
  await waitFor(`binlog files before ${newest!.Log_name} purged`, async () => {
    await query(`PURGE BINARY LOGS TO '${newest!.Log_name}'`, [], port);
    const files = await query<{ Log_name: string }[]>('SHOW BINARY LOGS', [], port);
    return (files.length === 1 && files[0]!.Log_name === newest!.Log_name) || undefined;
  }, 20_000, 200);
}
