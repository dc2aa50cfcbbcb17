/**
 * Reads a MySQL/MariaDB row binlog with @vlasky/zongji and hands its events on in a small,
 * library-neutral shape with positions (file, offset).
 *
 * Library choice (measured in bench/mysql-readers.ts against MariaDB 10.11; figures in docs/mysql.md):
 * @vlasky/zongji 0.9 over mysql2, not @powersync/mysql-zongji. Both install from the npm registry
 * (0.6.x of the powersync fork declares Node >= 24; npm picks 0.1.0 on Node 20). zongji decodes
 * every MariaDB type exactly in its string modes (DECIMAL as exact text, BIGINT UNSIGNED beyond 2^53
 * as digits, DATETIME(6)/TIMESTAMP(6) as text with microseconds, MariaDB's hires temporal formats,
 * utf8mb4), understands MariaDB's GTID events, reads column metadata from the binlog itself when the
 * server writes it (binlog_row_metadata=FULL), and is maintained. The powersync fork decodes DECIMAL
 * into a JS number (12345678901234567890.1234 loses digits, no option avoids it), knows nothing of
 * MariaDB (no GTID events: MariaDB replaces them with dummy query events; no hires temporals), and
 * is built on the unmaintained mysqljs driver.
 * One thing zongji gets wrong: without binlog metadata it reads ENUM/SET labels by splitting
 * information_schema's COLUMN_TYPE on commas, so 'x,y' and 'it''s' come out wrong. Its column
 * lookup is therefore replaced by ours (TableCatalog), which hands it the exact labels.
 */
import ZongJi, { type AnyBinlogEvent, type ColumnSchema, type RowData, type TableMapEvent } from '@vlasky/zongji';
import type { Connection } from 'mysql2';
import type { MysqlConfig } from '../../config/mysql.js';
import { OWN_DATABASE } from '../../config/mysql.js';
import { connectionOptions } from './connection.js';
import type { MysqlPosition } from './position.js';
import type { TableCatalog, TableFacts } from './table-catalog.js';

export type BinlogEvent =
  /** A transaction (or statement group) starts: MariaDB's GTID event, MySQL's GTID or BEGIN. */
  | { readonly type: 'group'; readonly start: MysqlPosition; readonly timestamp: number; readonly sequence: number | string; readonly standalone: boolean }
  | { readonly type: 'query'; readonly start: MysqlPosition; readonly end: MysqlPosition; readonly schema: string; readonly query: string }
  | { readonly type: 'table'; readonly tableId: number; readonly schema: string; readonly table: string; readonly columns: readonly string[] }
  | { readonly type: 'insert' | 'delete'; readonly tableId: number; readonly rows: readonly RowData[] }
  | { readonly type: 'update'; readonly tableId: number; readonly rows: readonly { readonly before: RowData; readonly after: RowData }[] }
  /** The transaction committed (XID), or an XA transaction was prepared. */
  | { readonly type: 'commit'; readonly end: MysqlPosition; readonly timestamp: number; readonly xaPrepare: boolean }
  | { readonly type: 'rotate'; readonly file: string };

export interface BinlogHandler {
  event(event: BinlogEvent): void;
  /** The stream failed or the connection ended; no event follows. */
  error(err: unknown): void;
}

/** The server's own databases, never read. */
export const SYSTEM_DATABASES = ['mysql', 'sys', 'performance_schema', 'information_schema'];

/** zongji with its column lookup replaced by the catalog's (exact ENUM/SET labels, one cache). */
class CatalogZongJi extends ZongJi {
  constructor(
    config: MysqlConfig,
    private readonly catalog: TableCatalog,
  ) {
    super(connectionOptions(config));
  }

  /** Called by zongji (with the binlog connection paused) when the binlog does not describe a table. */
  _fetchTableInfo(event: TableMapEvent, next: () => void): void {
    this.catalog.lookup(event.schemaName, event.tableName).then(
      (facts) => {
        if (!facts) {
          this.emit('error', new Error(
            `table ${event.schemaName}.${event.tableName} of a binlog event no longer exists, so its rows cannot be decoded ` +
              '(without binlog_row_metadata=FULL the binlog does not describe its columns)',
          ));
          return;
        }
        this.tableMap[event.tableId] = { columnSchemas: columnSchemas(facts), parentSchema: event.schemaName, tableName: event.tableName };
        next();
      },
      (err: unknown) => this.emit('error', err instanceof Error ? err : new Error(String(err))),
    );
  }
}

function columnSchemas(facts: TableFacts): ColumnSchema[] {
  return facts.columns.map((column) => ({
    COLUMN_NAME: column.name,
    COLLATION_NAME: column.collation as string,
    CHARACTER_SET_NAME: column.charset as string,
    COLUMN_COMMENT: column.comment,
    COLUMN_TYPE: column.columnType,
    ...(column.dataType === 'enum' && column.labels ? { ENUM_VALUES: [...column.labels] } : {}),
    ...(column.dataType === 'set' && column.labels ? { SET_VALUES: [...column.labels] } : {}),
  }));
}

export class BinlogReader {
  private readonly zongji: CatalogZongJi;
  private file = '';
  private readonly pauses = new Set<string>();
  /** Events zongji delivered while we held a pause (its own lookups resume the connection). */
  private held: AnyBinlogEvent[] = [];
  private finished = false;

  constructor(
    private readonly config: MysqlConfig,
    catalog: TableCatalog,
    private readonly handler: BinlogHandler,
  ) {
    this.zongji = new CatalogZongJi(config, catalog);
    this.zongji.on('error', (err) => this.fail(err));
    this.zongji.on('binlog', (event) => this.receive(event));
  }

  /** Starts the dump at `from`; resolves once the server accepted it. */
  start(from: MysqlPosition): Promise<void> {
    this.file = from.file;
    const databases = this.config.databases;
    return new Promise<void>((resolve, reject) => {
      const failed = (err: unknown): void => reject(err);
      this.zongji.once('error', failed);
      this.zongji.once('ready', () => {
        this.zongji.removeListener('error', failed);
        const connection = this.zongji.connection;
        connection?.once('end', () => this.fail(Object.assign(new Error('the server closed the binlog connection'), { code: 'PROTOCOL_CONNECTION_LOST' })));
        resolve();
      });
      this.zongji.start({
        serverId: this.config.serverId,
        filename: from.file,
        position: from.offset,
        // The daemon's own database is read too, only to recognise its own writes (session.ts).
        ...(databases.length > 0 ? { includeSchema: Object.fromEntries([...databases, OWN_DATABASE].map((db) => [db, true as const])) } : {}),
        excludeSchema: Object.fromEntries(SYSTEM_DATABASES.map((db) => [db, true as const])),
      });
    });
  }

  /** Stops delivering until every reason given is resumed (backpressure, a table lookup). */
  pause(reason: string): void {
    this.pauses.add(reason);
    this.connection()?.pause();
  }

  resume(reason: string): void {
    if (!this.pauses.delete(reason) || this.pauses.size > 0 || this.finished) return;
    while (this.held.length > 0 && this.pauses.size === 0) this.deliver(this.held.shift()!);
    if (this.pauses.size === 0) this.connection()?.resume();
  }

  /** Closes both connections; no event or error follows. */
  stop(): void {
    this.finished = true;
    this.zongji.removeAllListeners('binlog');
    this.zongji.stop();
  }

  private connection(): Connection | null {
    return this.zongji.connection;
  }

  private fail(err: unknown): void {
    if (this.finished) return;
    this.finished = true;
    this.zongji.removeAllListeners('binlog');
    this.handler.error(err);
  }

  private receive(event: AnyBinlogEvent): void {
    if (this.finished) return;
    if (this.pauses.size > 0) {
      this.connection()?.pause();
      this.held.push(event);
      return;
    }
    this.deliver(event);
  }

  private deliver(event: AnyBinlogEvent): void {
    try {
      const normalized = this.normalize(event);
      if (normalized) this.handler.event(normalized);
    } catch (err) {
      this.fail(err);
    }
  }

  private normalize(event: AnyBinlogEvent): BinlogEvent | undefined {
    const end = (): MysqlPosition => ({ file: this.file, offset: event.nextPosition });
    // nextPosition is the event's end; the header (19 bytes) and checksum (4) are not in `size`.
    const start = (): MysqlPosition => ({ file: this.file, offset: event.nextPosition - event.size - (this.zongji.useChecksum ? 23 : 19) });
    switch (event.getTypeName()) {
      case 'Rotate': {
        const rotate = event as Extract<AnyBinlogEvent, { getTypeName(): 'Rotate' }>;
        this.file = rotate.binlogName;
        return { type: 'rotate', file: rotate.binlogName };
      }
      case 'MariadbGtid': {
        const gtid = event as Extract<AnyBinlogEvent, { getTypeName(): 'MariadbGtid' }>;
        return { type: 'group', start: start(), timestamp: event.timestamp, sequence: gtid.seqNo, standalone: gtid.standalone };
      }
      case 'Gtid':
      case 'AnonymousGtid': {
        // MySQL: a BEGIN query follows for a transaction; a DDL statement follows directly.
        const gtid = event as Extract<AnyBinlogEvent, { getTypeName(): 'Gtid' }>;
        return { type: 'group', start: start(), timestamp: event.timestamp, sequence: gtid.gno, standalone: true };
      }
      case 'Query': {
        const query = event as Extract<AnyBinlogEvent, { getTypeName(): 'Query' }>;
        return { type: 'query', start: start(), end: end(), schema: query.schema, query: query.query };
      }
      case 'TableMap': {
        const map = event as TableMapEvent;
        const entry = this.zongji.tableMap[map.tableId];
        return { type: 'table', tableId: map.tableId, schema: map.schemaName, table: map.tableName, columns: (entry?.columns ?? []).map((c) => c.name) };
      }
      case 'WriteRows':
      case 'DeleteRows': {
        const rows = event as Extract<AnyBinlogEvent, { getTypeName(): 'WriteRows' }>;
        return { type: event.getTypeName() === 'WriteRows' ? 'insert' : 'delete', tableId: rows.tableId, rows: rows.rows };
      }
      case 'UpdateRows': {
        const rows = event as Extract<AnyBinlogEvent, { getTypeName(): 'UpdateRows' }>;
        return { type: 'update', tableId: rows.tableId, rows: rows.rows };
      }
      case 'Xid':
        return { type: 'commit', end: end(), timestamp: event.timestamp, xaPrepare: false };
      case 'XaPrepare':
        return { type: 'commit', end: end(), timestamp: event.timestamp, xaPrepare: true };
      default:
        return undefined;
    }
  }
}
