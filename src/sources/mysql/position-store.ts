/**
 * Where the confirmed binlog position is kept (mysql.positionStore):
 *   table           wal_listener.positions in the source server (one row per mysql.serverId),
 *                   created on first need and written with the binlog off for the session when the
 *                   user may (so the daemon's own writes do not even reach the binlog);
 *   file:<path>     a JSON file replaced atomically: write a temporary file, fsync it, rename it
 *                   over the old one, fsync the directory.
 * PositionWriter puts the writes in order and never writes a position older than one written.
 */
import { open, readFile, rename } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type mysql from 'mysql2/promise';
import type { MysqlConfig } from '../../config/mysql.js';
import { describeError, WalListenerError } from '../../errors.js';
import { classifyMysqlError, OwnTables } from './connection.js';
import { comparePositions, parsePosition, type MysqlPosition } from './position.js';

export interface PositionStore {
  /** "wal_listener.positions (server_id 42)" or "file /var/lib/wl/pos.json", for messages. */
  readonly description: string;
  load(): Promise<MysqlPosition | undefined>;
  /** Resolves once the position is durable. */
  save(position: MysqlPosition): Promise<void>;
  close(): Promise<void>;
}

export function createPositionStore(config: MysqlConfig): PositionStore {
  const store = config.positionStore;
  return store.kind === 'file' ? new FilePositionStore(store.path, config.serverId) : new TablePositionStore(config);
}

const storeError = (store: PositionStore, doing: string, err: unknown): WalListenerError =>
  new WalListenerError('WAL_MYSQL_POSITION_STORE', `cannot ${doing} the binlog position in ${store.description}: ${describeError(err)}`, { cause: err });

export class FilePositionStore implements PositionStore {
  readonly description: string;

  constructor(
    private readonly path: string,
    private readonly serverId: number,
  ) {
    this.description = `file ${path}`;
  }

  async load(): Promise<MysqlPosition | undefined> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw storeError(this, 'read', err);
    }
    try {
      return parsePosition(JSON.parse(text), this.description);
    } catch (err) {
      throw storeError(this, 'read', err);
    }
  }

  async save(position: MysqlPosition): Promise<void> {
    const temporary = join(dirname(this.path), `.${basename(this.path)}.tmp`);
    const text = `${JSON.stringify({ file: position.file, offset: position.offset, serverId: this.serverId, savedAt: new Date().toISOString() })}\n`;
    try {
      const handle = await open(temporary, 'w', 0o644);
      try {
        await handle.writeFile(text);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temporary, this.path);
      // The rename is durable only once the directory entry is.
      const directory = await open(dirname(this.path), 'r');
      try {
        await directory.sync();
      } finally {
        await directory.close();
      }
    } catch (err) {
      throw storeError(this, 'write', err);
    }
  }

  async close(): Promise<void> {}
}

const CREATE = `CREATE TABLE IF NOT EXISTS wal_listener.positions (
  server_id     INT UNSIGNED NOT NULL PRIMARY KEY,
  binlog_file   VARCHAR(512) NOT NULL,
  binlog_offset BIGINT UNSIGNED NOT NULL,
  updated_at    TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB`;

export class TablePositionStore implements PositionStore {
  readonly description: string;
  private readonly tables: OwnTables;

  constructor(private readonly config: MysqlConfig) {
    this.description = `wal_listener.positions (server_id ${config.serverId})`;
    this.tables = new OwnTables(config);
  }

  async load(): Promise<MysqlPosition | undefined> {
    const rows = await this.guard('read', async () => {
      if (!(await this.tables.exists('positions'))) return [];
      return this.tables.run(async (c) => {
        const [found] = await c.query<mysql.RowDataPacket[]>('SELECT binlog_file, binlog_offset FROM wal_listener.positions WHERE server_id = ?', [this.config.serverId]);
        return found;
      });
    });
    const row = rows[0];
    if (!row) return undefined;
    try {
      return parsePosition({ file: row.binlog_file, offset: Number(row.binlog_offset) }, this.description);
    } catch (err) {
      throw storeError(this, 'read', err);
    }
  }

  async save(position: MysqlPosition): Promise<void> {
    await this.guard('write', () =>
      this.tables.run(
        (c) =>
          c.query(
            `INSERT INTO wal_listener.positions (server_id, binlog_file, binlog_offset) VALUES (?, ?, ?)
             ON DUPLICATE KEY UPDATE binlog_file = VALUES(binlog_file), binlog_offset = VALUES(binlog_offset)`,
            [this.config.serverId, position.file, position.offset],
          ),
        CREATE,
      ),
    );
  }

  close(): Promise<void> {
    return this.tables.close();
  }

  /** A lost connection is retried by reconnecting (WAL_MYSQL_CONNECT); anything else about the table is the store's problem. */
  private async guard<T>(doing: 'read' | 'write', work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      const classified = classifyMysqlError(err, { doing: `${doing === 'read' ? 'reading' : 'writing'} the binlog position in ${this.description}`, ...this.config });
      if (classified.code === 'WAL_MYSQL_CONNECT' || classified.code === 'WAL_MYSQL_GRANTS') throw classified;
      throw storeError(this, doing, err);
    }
  }
}

/**
 * Writes positions one at a time, newest wins: a position older than (or equal to) one already
 * written or waiting is dropped, so a slow write can never be followed by an older one.
 */
export class PositionWriter {
  private written: MysqlPosition | undefined;
  private wanted: MysqlPosition | undefined;
  private running: Promise<void> | null = null;
  private failure: unknown = null;

  constructor(
    private readonly store: PositionStore,
    private readonly onError: (err: unknown) => void,
    start?: MysqlPosition,
  ) {
    this.written = start;
  }

  /** The newest position written (durable). */
  get durable(): MysqlPosition | undefined {
    return this.written;
  }

  set(position: MysqlPosition): void {
    const newest = this.wanted ?? this.written;
    if (this.failure !== null || (newest && comparePositions(position, newest) <= 0)) return;
    this.wanted = position;
    this.running ??= this.drain();
  }

  /** Resolves when every position set so far is written (or writing failed). */
  async flush(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    try {
      while (this.wanted && (!this.written || comparePositions(this.wanted, this.written) > 0)) {
        const position = this.wanted;
        await this.store.save(position);
        this.written = position;
      }
    } catch (err) {
      this.failure = err;
      this.onError(err);
    } finally {
      this.running = null;
    }
  }
}

