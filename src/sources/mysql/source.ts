/**
 * The MySQL/MariaDB source (source.type mysql): a row binlog read as a replica would, from the
 * position kept in mysql.positionStore. Each session checks the server (binlog settings, grants),
 * finds where to start (the stored position, or the current end of the binlog on first start),
 * and streams (session.ts); confirmations are written to the position store, newest wins.
 */
import type mysql from 'mysql2/promise';
import type { Config } from '../../config/schema.js';
import type { MysqlConfig } from '../../config/mysql.js';
import { ConfigError, WalListenerError } from '../../errors.js';
import type { Logger } from '../../observability/logger.js';
import type { ChangeSink } from '../../pipeline/change.js';
import type { DeadLetterStore } from '../../pipeline/dead-letters.js';
import { sourceHash } from '../../pipeline/event-id.js';
import type { Finding } from '../../findings.js';
import type { Source } from '../source.js';
import { classifyMysqlError, connectSql, positionLost } from './connection.js';
import { MysqlDeadLetterStore } from './dead-letter-store.js';
import { diagnoseMysql } from './diagnose.js';
import { comparePositions, formatPosition, type MysqlPosition } from './position.js';
import { createPositionStore, type PositionStore } from './position-store.js';
import { binlogEnd, binlogFiles, checkBinlogSettings, checkGrants } from './prerequisites.js';
import { MysqlSession, type MysqlSourceObserver } from './session.js';
import { TableCatalog } from './table-catalog.js';
import type { ConvertProblem } from './values.js';

export type { MysqlPosition } from './position.js';
export type { MysqlSourceObserver } from './session.js';

export interface MysqlSourceOptions {
  /** How often binlog lag is measured (SHOW BINARY LOGS); default 5 s. */
  readonly lagIntervalMs?: number;
}

export function createMysqlSource(config: Config, logger: Logger, observer: MysqlSourceObserver = {}, options: MysqlSourceOptions = {}): Source<MysqlPosition> {
  if (!config.mysql) throw new ConfigError('WAL_CONFIG_INVALID', 'source.type mysql needs the mysql section');
  return new MysqlSource(config.mysql, logger, observer, options);
}

class MysqlSource implements Source<MysqlPosition> {
  readonly kind = 'mysql';
  readonly compare = comparePositions;
  private readonly store: PositionStore;
  private readonly problem: ConvertProblem;
  private deadLetterStore: MysqlDeadLetterStore | null = null;
  /** The newest position known durable in the store (sessions start their writer from it). */
  private durable: MysqlPosition | undefined;
  private session: MysqlSession | null = null;
  private announced = false;

  constructor(
    private readonly config: MysqlConfig,
    private readonly log: Logger,
    private readonly observer: MysqlSourceObserver,
    private readonly options: MysqlSourceOptions,
  ) {
    this.store = createPositionStore(config);
    const lastWarned = new Map<string, number>();
    this.problem = (column, text) => {
      observer.convertProblem?.();
      // One warning per column a minute: problematic_events_total has the full count.
      const now = Date.now();
      if ((lastWarned.get(column) ?? -Infinity) > now - 60_000) return;
      lastWarned.set(column, now);
      log.warn({ column, value: text.slice(0, 100) }, 'value could not be converted; published as its MySQL text (logged once a minute per column)');
    };
  }

  /**
   * Before the publisher connects: the binlog settings, the grants and a stored position's binlog
   * file, so that a server the daemon can never read stops it at once. Creates and stores nothing.
   */
  async check(): Promise<void> {
    let step = 'connecting';
    let sql: mysql.Connection | null = null;
    try {
      sql = await connectSql(this.config);
      step = 'checking the binlog settings';
      await checkBinlogSettings(sql, this.config);
      step = 'checking the grants';
      await checkGrants(sql, this.config);
      step = 'reading the stored binlog position';
      const stored = await this.store.load();
      if (stored) await this.checkStored(sql, stored);
    } catch (err) {
      throw classifyMysqlError(err, { doing: step, ...this.config });
    } finally {
      await sql?.end().catch(() => sql?.destroy());
    }
  }

  async open(sink: ChangeSink<MysqlPosition>, signal: AbortSignal): Promise<MysqlSession> {
    const { config, log } = this;
    let step = 'connecting';
    let sql: mysql.Connection | null = null;
    let session: MysqlSession | null = null;
    try {
      sql = await connectSql(config);
      step = 'checking the binlog settings';
      const server = await checkBinlogSettings(sql, config);
      step = 'checking the grants';
      await checkGrants(sql, config);
      if (!this.announced && server.rowMetadata !== undefined && server.rowMetadata !== 'FULL') {
        log.warn({ binlog_row_metadata: server.rowMetadata }, 'binlog_row_metadata is not FULL: tables are described from information_schema, so rows written before an ALTER TABLE and read after it may not decode; SET GLOBAL binlog_row_metadata = FULL is recommended');
      }
      step = 'reading the stored binlog position';
      const start = await this.startPosition(sql);
      if (signal.aborted) throw new WalListenerError('WAL_MYSQL_CONNECT', 'stopping');
      const connection = sql;
      const catalog = new TableCatalog(async (text, params) => (await connection.query<mysql.RowDataPacket[]>(text, params))[0], server.mariadb);
      step = 'starting the binlog dump';
      session = new MysqlSession(
        {
          config,
          sink,
          catalog,
          store: this.store,
          logger: log,
          source: sourceHash(server.identity, `${config.host}:${config.port}`),
          problem: this.problem,
          observer: this.observer,
          binlogFiles: () => binlogFiles(connection),
          lagIntervalMs: this.options.lagIntervalMs ?? 5000,
          release: () => connection.end().catch(() => connection.destroy()),
        },
        start,
      );
      this.session = session;
      await session.start();
      this.announced = true;
      log.info({ from: formatPosition(start), server: server.version }, 'binlog streaming');
      return session;
    } catch (err) {
      session?.stop();
      sql?.destroy();
      throw classifyMysqlError(err, { doing: step, ...config });
    }
  }

  /** The stored position, checked against the server's binlog files; the binlog's end on first start (stored at once). */
  private async startPosition(sql: mysql.Connection): Promise<MysqlPosition> {
    const stored = this.session?.durable ?? this.durable ?? (await this.store.load());
    if (!stored) {
      const end = await binlogEnd(sql);
      await this.store.save(end);
      this.durable = end;
      this.log.info({ position: formatPosition(end), store: this.store.description }, 'no stored binlog position: starting at the current end of the binlog (earlier changes are not published)');
      return end;
    }
    await this.checkStored(sql, stored);
    if (!this.announced) this.log.info({ position: formatPosition(stored), store: this.store.description }, 'resuming from the stored binlog position');
    return stored;
  }

  /** The stored position's binlog file still exists and reaches that far (else WAL_MYSQL_POSITION_LOST). */
  private async checkStored(sql: mysql.Connection, stored: MysqlPosition): Promise<void> {
    const files = await binlogFiles(sql);
    const file = files.find((f) => f.name === stored.file);
    if (!file) {
      const oldest = files[0]?.name ?? 'none';
      throw positionLost(`the stored binlog position ${formatPosition(stored)} (${this.store.description}) names a binlog file the server no longer has (oldest: ${oldest})`);
    }
    if (stored.offset > file.size) {
      throw positionLost(`the stored binlog position ${formatPosition(stored)} (${this.store.description}) is past the end of that file (${file.size} bytes): the binlog was reset or this is another server`);
    }
  }

  diagnose(): Promise<Finding[]> {
    return diagnoseMysql(this.config, this.store);
  }

  deadLetters(): DeadLetterStore {
    this.deadLetterStore ??= new MysqlDeadLetterStore(this.config);
    return this.deadLetterStore;
  }

  async close(): Promise<void> {
    await this.session?.close();
    await this.deadLetterStore?.close();
    await this.store.close();
  }
}
