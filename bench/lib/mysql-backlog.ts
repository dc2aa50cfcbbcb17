/**
 * A binlog backlog on the machine's MariaDB for the MySQL benchmarks: a private database with one
 * 6-column table (BIGINT key, VARCHAR, DECIMAL, DATETIME(6), JSON, TINYINT(1)), the binlog position
 * before the backlog, then `rows` rows written in one transaction (INSERT … SELECT from MariaDB's
 * sequence engine). Readers start at that position and are timed until they have seen every row.
 */
import mysql from 'mysql2/promise';
import type { MysqlPosition } from '../../src/sources/mysql/position.js';

export const MYSQL = { host: '127.0.0.1', port: 3306, user: 'root' } as const;

export interface Backlog {
  readonly database: string;
  readonly start: MysqlPosition;
  readonly rows: number;
  drop(): Promise<void>;
}

export async function writeBacklog(rows: number, tag: string): Promise<Backlog> {
  const database = `wl_bench_${tag}_${Date.now().toString(36)}`;
  const c = await mysql.createConnection({ ...MYSQL, multipleStatements: true });
  try {
    await c.query(`CREATE DATABASE \`${database}\`; USE \`${database}\`;
      CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL, amount DECIMAL(20,4) NOT NULL, at DATETIME(6) NOT NULL, doc JSON NOT NULL, flag TINYINT(1) NOT NULL) ENGINE=InnoDB`);
    const [[status]] = (await c.query('SHOW MASTER STATUS')) as unknown as [{ File: string; Position: number }[]];
    await c.query(`INSERT INTO t SELECT seq, CONCAT('user ', seq, '@example.com'), seq * 1.2345, TIMESTAMP'2024-02-29 13:45:56.123456' + INTERVAL seq SECOND,
      CONCAT('{"n":', seq, ',"tags":["a","b"]}'), seq % 2 FROM seq_1_to_${rows}`);
    return {
      database,
      start: { file: status!.File, offset: Number(status!.Position) },
      rows,
      drop: async () => {
        const d = await mysql.createConnection(MYSQL);
        await d.query(`DROP DATABASE IF EXISTS \`${database}\``);
        await d.end();
      },
    };
  } finally {
    await c.end();
  }
}

/** Rows/s and CPU-seconds per 100k rows of one drain. */
export interface DrainFigures {
  readonly rowsPerSecond: number;
  readonly cpuPer100k: number;
}

/** Times `drain` (resolves once every row was seen) in wall clock and this process's CPU. */
export async function timeDrain(rows: number, drain: () => Promise<void>): Promise<DrainFigures> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  await drain();
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  return { rowsPerSecond: rows / seconds, cpuPer100k: ((used.user + used.system) / 1e6) * (100_000 / rows) };
}

export function parseRuns(argv: string[]): { runs: number; rows: number } {
  const value = (flag: string, fallback: number): number => {
    const i = argv.indexOf(flag);
    return i === -1 ? fallback : Number(argv[i + 1]);
  };
  return { runs: value('--runs', 3), rows: value('--rows', 300_000) };
}
