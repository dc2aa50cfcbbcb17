/**
 * One streaming session: binlog events become ChangeSink calls, in binlog order.
 *
 * A transaction opens at its first row change (its GTID/BEGIN event gives position, commit time
 * and number) and commits at its XID; transactions with no change for the sink (other databases,
 * the daemon's own writes) only move the idle position. Rows go to the sink as they arrive, never
 * gathered: when the sink's window is full the binlog connection is paused until it has room.
 * TRUNCATE (a statement) becomes a truncate of a known table; other DDL is logged and skipped and
 * makes every table be described again.
 *
 * Facts of a transaction given at begin: the position and id come from its first event; the commit
 * time is that event's timestamp, which MariaDB and MySQL write at commit (the XID event carries the
 * same second); `xid` is the transaction's GTID sequence number (the XID event's own number is
 * only known at its end and is a per-server counter, not an identity).
 */
import { OWN_DATABASE, type MysqlConfig } from '../../config/mysql.js';
import { WalListenerError } from '../../errors.js';
import type { Logger } from '../../observability/logger.js';
import type { ChangeSink, TableHandle, TransactionHandle } from '../../pipeline/change.js';
import { eventIdPrefix } from '../../pipeline/event-id.js';
import type { SourceSession } from '../source.js';
import { BinlogReader, SYSTEM_DATABASES, type BinlogEvent } from './binlog-reader.js';
import { classifyMysqlError, type MysqlErrorContext } from './connection.js';
import { bytesBehind, formatPosition, position64, type BinlogFile, type MysqlPosition } from './position.js';
import { PositionWriter, type PositionStore } from './position-store.js';
import { describeTable, type DescribedTable, type TableCatalog } from './table-catalog.js';
import type { ConvertProblem } from './values.js';

/** What the source reports for metrics (the pipeline's observer fits it). */
export interface MysqlSourceObserver {
  /** Binlog bytes between the server's newest position and the confirmed one. */
  lag?(bytes: number): void;
  /** A value published as its source text because it could not be converted. */
  convertProblem?(): void;
}

export interface MysqlSessionOptions {
  readonly config: MysqlConfig;
  readonly sink: ChangeSink<MysqlPosition>;
  readonly catalog: TableCatalog;
  /** Where confirmed positions go (written in order, newest wins). */
  readonly store: PositionStore;
  readonly logger: Logger;
  /** Source hash for event ids (event-id.ts `sourceHash`). */
  readonly source: number;
  readonly problem: ConvertProblem;
  readonly observer: MysqlSourceObserver;
  /** Lists the server's binlog files (for lag). */
  readonly binlogFiles: () => Promise<BinlogFile[]>;
  readonly lagIntervalMs: number;
  /** Closes the session's SQL connection (catalog, lag). */
  readonly release: () => Promise<void>;
}

interface Group {
  readonly start: MysqlPosition;
  readonly commitTime: string;
  readonly sequence: number | string;
  /** Inside BEGIN … COMMIT: statements other than COMMIT belong to it (SAVEPOINT). */
  inTransaction: boolean;
  /** It changed the daemon's own tables (never published, never idle-confirmed: no feedback loop). */
  own: boolean;
}

type TableEntry = { readonly own: true } | { readonly own: false; readonly schema: string; readonly table: string; readonly columns: readonly string[]; readonly described: DescribedTable; readonly handle: TableHandle };

const OWN_TABLE: TableEntry = { own: true };
const TRUNCATE = /^TRUNCATE\s+(?:TABLE\s+)?(?:`((?:[^`]|``)+)`|([\w$]+))(?:\s*\.\s*(?:`((?:[^`]|``)+)`|([\w$]+)))?\s*;?\s*$/i;

/** Seconds since 1970 (ms) as "2024-02-29T08:15:56.000000Z". */
const commitTimeText = (ms: number): string => `${new Date(ms).toISOString().slice(0, -1)}000Z`;

export class MysqlSession implements SourceSession<MysqlPosition> {
  readonly ended: Promise<void>;
  private settle!: { resolve: () => void; reject: (err: unknown) => void };
  private readonly reader: BinlogReader;
  private readonly sink: ChangeSink<MysqlPosition>;
  private readonly tables = new Map<number, TableEntry>();
  private group: Group | null = null;
  private txn: TransactionHandle | null = null;
  /** The end of the last event handled: where a restart would resume at the latest. */
  private reached: MysqlPosition;
  private confirmed: MysqlPosition;
  private stopped = false;
  private lagTimer: NodeJS.Timeout | null = null;
  private readonly errorContext: MysqlErrorContext;
  private readonly writer: PositionWriter;

  constructor(
    private readonly options: MysqlSessionOptions,
    start: MysqlPosition,
  ) {
    this.sink = options.sink;
    this.reached = start;
    this.confirmed = start;
    this.errorContext = { doing: 'reading the binlog', ...options.config };
    this.writer = new PositionWriter(options.store, (err) => this.fail(err), start);
    this.ended = new Promise<void>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    this.ended.catch(() => {});
    this.reader = new BinlogReader(options.config, options.catalog, {
      event: (event) => this.handle(event),
      error: (err) => this.fail(err),
    });
  }

  /** Starts the dump at `start` (the confirmed position); resolves once the server streams. */
  async start(): Promise<void> {
    await this.reader.start(this.reached);
    this.lagTimer = setInterval(() => void this.reportLag(), this.options.lagIntervalMs);
    this.lagTimer.unref();
  }

  /** The newest position written to the store. */
  get durable(): MysqlPosition | undefined {
    return this.writer.durable;
  }

  confirm(position: MysqlPosition): void {
    this.confirmed = position;
    this.writer.set(position);
  }

  stop(): void {
    this.finish();
  }

  /** Stops and waits until every confirmed position is written. */
  async close(): Promise<void> {
    this.finish();
    await this.writer.flush();
  }

  private fail(err: unknown): void {
    this.finish(classifyMysqlError(err, { ...this.errorContext, position: formatPosition(this.reached) }));
  }

  /** Stops reading and settles `ended`, once: resolved on a stop, rejected with the failure. */
  private finish(error?: WalListenerError): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.lagTimer) clearInterval(this.lagTimer);
    this.reader.stop();
    void this.options.release();
    if (error) this.settle.reject(error);
    else this.settle.resolve();
  }

  private handle(event: BinlogEvent): void {
    if (this.stopped) return;
    switch (event.type) {
      case 'group':
        this.group = { start: event.start, commitTime: commitTimeText(event.timestamp), sequence: event.sequence, inTransaction: !event.standalone, own: false };
        return;
      case 'query':
        return this.query(event);
      case 'table':
        return this.table(event);
      case 'insert':
      case 'update':
      case 'delete':
        return this.rows(event);
      case 'commit':
        if (event.xaPrepare) this.options.logger.warn({ position: formatPosition(event.end) }, 'XA transaction published at XA PREPARE (a later XA ROLLBACK is not seen)');
        return this.endGroup(event.end);
      case 'rotate':
        return;
    }
  }

  private query(event: Extract<BinlogEvent, { type: 'query' }>): void {
    const statement = event.query.trim();
    const word = statement.slice(0, 9).toUpperCase();
    if (word === 'BEGIN') {
      this.group ??= { start: event.start, commitTime: commitTimeText(Date.now()), sequence: 0, inTransaction: true, own: false };
      this.group.inTransaction = true;
      return;
    }
    if (word === 'COMMIT' || word === 'ROLLBACK') {
      if (word === 'ROLLBACK' && this.txn) this.options.logger.warn({ position: formatPosition(event.end) }, 'a group of non-transactional changes ended with ROLLBACK; published as committed (they were not undone)');
      return this.endGroup(event.end);
    }
    if (this.group?.inTransaction) return; // SAVEPOINT and the like, inside a transaction.
    const truncate = TRUNCATE.exec(statement);
    if (truncate) {
      const first = truncate[1]?.replaceAll('``', '`') ?? truncate[2]!;
      const second = truncate[3]?.replaceAll('``', '`') ?? truncate[4];
      return this.truncate(second === undefined ? event.schema : first, second ?? first, event);
    }
    const own = statement.includes(OWN_DATABASE);
    if (!own) this.options.logger.info({ position: formatPosition(event.start), statement: statement.slice(0, 200) }, 'DDL skipped; tables are described again');
    this.forgetTables();
    this.group = null;
    if (!own) this.idle(event.end);
    this.reached = event.end;
  }

  private truncate(schema: string, table: string, event: Extract<BinlogEvent, { type: 'query' }>): void {
    const group = this.group ?? { start: event.start, commitTime: commitTimeText(Date.now()), sequence: 0, inTransaction: false, own: false };
    this.group = null;
    this.reached = event.end;
    if (!this.reads(schema)) return this.idle(event.end);
    this.reader.pause('truncate');
    this.options.catalog.lookup(schema, table).then((facts) => {
      if (this.stopped) return;
      if (!facts) {
        this.options.logger.warn({ schema, table, position: formatPosition(event.start) }, 'TRUNCATE of a table that no longer exists: skipped');
        this.idle(event.end);
      } else {
        const handle = this.sink.table(describeTable(facts, undefined, this.options.problem).descriptor);
        const txn = this.sink.begin(this.info(group));
        this.sink.truncate(txn, handle);
        this.sink.commit(txn, event.end);
      }
      this.reader.resume('truncate');
    }, (err: unknown) => this.fail(err));
  }

  /** Whether mysql.databases lets this database's changes through. */
  private reads(schema: string): boolean {
    const { databases } = this.options.config;
    return schema !== OWN_DATABASE && (databases.length === 0 ? !SYSTEM_DATABASES.includes(schema) : databases.includes(schema));
  }

  private forgetTables(): void {
    this.tables.clear();
    this.options.catalog.forget();
  }

  private table(event: Extract<BinlogEvent, { type: 'table' }>): void {
    if (event.schema === OWN_DATABASE) {
      this.tables.set(event.tableId, OWN_TABLE);
      return;
    }
    const known = this.tables.get(event.tableId);
    if (known && !known.own && known.schema === event.schema && known.table === event.table && sameNames(known.columns, event.columns)) return;
    this.reader.pause('table');
    this.options.catalog.lookup(event.schema, event.table).then((facts) => {
      if (this.stopped) return;
      if (!facts) throw new WalListenerError('WAL_MYSQL_PROTOCOL', `table ${event.schema}.${event.table} of a binlog event no longer exists; its rows cannot be described`);
      const described = describeTable(facts, event.columns, this.options.problem);
      const handle = this.sink.table(described.descriptor);
      this.tables.set(event.tableId, { own: false, schema: event.schema, table: event.table, columns: event.columns, described, handle });
      this.reader.resume('table');
    }).catch((err: unknown) => this.fail(err));
  }

  private rows(event: Extract<BinlogEvent, { type: 'insert' | 'update' | 'delete' }>): void {
    const entry = this.tables.get(event.tableId);
    if (!entry) throw new WalListenerError('WAL_MYSQL_PROTOCOL', `rows event for table id ${event.tableId} without a table map event`);
    const group = this.group;
    if (!group) throw new WalListenerError('WAL_MYSQL_PROTOCOL', `rows event outside a transaction (after ${formatPosition(this.reached)})`);
    if (entry.own) {
      group.own = true;
      return;
    }
    const txn = (this.txn ??= this.sink.begin(this.info(group)));
    const { handle, described } = entry;
    const sink = this.sink;
    let apply: (i: number) => void;
    if (event.type === 'update') {
      const rows = event.rows;
      apply = (i) => sink.update(txn, handle, described.toRow(rows[i]!.after), described.toRow(rows[i]!.before), false);
    } else if (event.type === 'insert') {
      const rows = event.rows;
      apply = (i) => sink.insert(txn, handle, described.toRow(rows[i]!));
    } else {
      const rows = event.rows;
      apply = (i) => sink.delete(txn, handle, described.toRow(rows[i]!), false);
    }
    this.handOver(apply, event.rows.length, 0);
  }

  /** Hands rows from `index` on to the sink; when its window fills, the rest waits (and the binlog with it). */
  private handOver(apply: (i: number) => void, count: number, index: number): void {
    const sink = this.sink;
    for (let i = index; i < count; i++) {
      apply(i);
      if (sink.full) {
        this.reader.pause('sink');
        sink.ready().then(() => {
          if (this.stopped) return;
          this.handOver(apply, count, i + 1);
          if (!sink.full) this.reader.resume('sink');
        }, (err: unknown) => this.fail(err));
        return;
      }
    }
  }

  private info(group: Group): { idPrefix: string; commitTime: string; position: string; xid: number | string } {
    return {
      idPrefix: eventIdPrefix(position64(group.start), this.options.source),
      commitTime: group.commitTime,
      position: formatPosition(group.start),
      xid: group.sequence,
    };
  }

  private endGroup(end: MysqlPosition): void {
    const { txn, group } = this;
    this.txn = null;
    this.group = null;
    this.reached = end;
    if (txn) this.sink.commit(txn, end);
    else if (!group?.own) this.idle(end);
  }

  private idle(position: MysqlPosition): void {
    this.reached = position;
    this.sink.idle(position);
  }

  private async reportLag(): Promise<void> {
    const report = this.options.observer.lag;
    if (!report || this.stopped) return;
    try {
      const behind = bytesBehind(this.confirmed, await this.options.binlogFiles());
      if (behind !== undefined) report(behind);
    } catch (err) {
      this.fail(err);
    }
  }
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((name, i) => name === b[i]);
}
