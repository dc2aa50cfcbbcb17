/**
 * Backfills while streaming (DESIGN.md "Snapshots"; the DBLog method, as Debezium's incremental
 * snapshots): the daemon runs the requests in wal_listener.backfills of its slot, one at a time in
 * request order, each table in key-ordered chunks. Per chunk, on its own SQL connection:
 *
 *   1. a low watermark is written through the WAL (a transactional logical message),
 *   2. the chunk is read (`WHERE key > last key ORDER BY key LIMIT n`),
 *   3. a high watermark is written.
 *
 * The stream meets the watermarks in commit order. Between them, every change of the table removes
 * its key from the chunk (the change is at least as new as the row read). The chunk is read in a
 * REPEATABLE READ snapshot whose in-progress xids are kept: a transaction written to the WAL just
 * before the low watermark but not yet visible to the read (a commit becomes visible slightly after
 * its WAL record) removes its keys too. At the high watermark the
 * rows left are published as SNAPSHOT events inside the watermark's transaction, through the same
 * in-flight window as live changes (the stream waits while the window is full). When that
 * transaction is acknowledged (with everything before it), the chunk's last key is stored: a
 * daemon killed at any point goes on from the last acknowledged chunk. Watermarks of an earlier
 * process (re-streamed after a restart) carry another token and are ignored.
 * Snapshot event ids derive from the source, the request and the row key: a row read again carries
 * the same id, and the broker drops it within its dedup window.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { DatabaseConfig } from '../../config/schema.js';
import { describeError, WalListenerError } from '../../errors.js';
import type { Logger } from '../../observability/logger.js';
import type { ChangeSink, TableHandle, TransactionHandle } from '../../pipeline/change.js';
import { hashedEventId } from '../../pipeline/event-id.js';
import type { PipelineObserver } from '../../pipeline/observer.js';
import { finishBackfill, markRunning, nextBackfill, readBackfill, recordProgress, type BackfillRequest } from './backfills.js';
import { connectClient, REPLICATION_SESSION_OPTIONS } from './connection-options.js';
import type { LogicalMessage, Lsn, Tuple } from './pgoutput.js';
import type { Relations } from './relations.js';
import type { StreamWatch } from './session.js';
import { checkPublished, invisible, keyText, keyValues, readChunkInSnapshot, readSnapshotTable, relationOf, type SnapshotHorizon, type SnapshotTable } from './snapshot-table.js';

/** Prefix of the watermark messages (pg_logical_emit_message). */
export const WATERMARK_PREFIX = 'wal-listener-watermark';

export interface BackfillerOptions {
  database: DatabaseConfig;
  slot: string;
  publication: string;
  sink: ChangeSink<Lsn>;
  relations: Relations;
  /** Source hash (event-id.ts), part of snapshot event ids. */
  source: number;
  log: Logger;
  observer?: PipelineObserver;
  /** How often the table of requests is read while none runs (default 1000 ms). */
  pollMs?: number;
}

/** Snapshot rows to publish: the table handle, the rows (text values in pgoutput's column order). */
export interface SnapshotRows {
  table: SnapshotTable;
  handle: TableHandle;
  /** `<source>/<request id>`: with the row key, the event id. */
  idScope: string;
}

/** Hands rows to the sink as SNAPSHOT events, waiting whenever the in-flight window is full. */
export async function publishRows(sink: ChangeSink<Lsn>, txn: TransactionHandle, target: SnapshotRows, rows: readonly (readonly (string | null)[])[]): Promise<void> {
  const { handle, idScope, table } = target;
  for (const row of rows) {
    sink.snapshot(txn, handle, row, hashedEventId(`${idScope}/${keyText(row, table.keyIndexes)}`));
    if (sink.full) await sink.ready();
  }
}

class Deferred<T = void> {
  resolve!: (value: T) => void;
  reject!: (err: unknown) => void;
  readonly promise = new Promise<T>((resolve, reject) => {
    this.resolve = resolve;
    this.reject = reject;
  });

  constructor() {
    this.promise.catch(() => {});
  }
}

/** One chunk between its watermarks. */
interface Chunk {
  readonly request: BackfillRequest;
  readonly target: SnapshotRows;
  readonly token: string;
  /**
   * armed: set up, the stream has not reached the low watermark (changes are recorded with their
   * xid: one may be invisible to the chunk read); open: between the watermarks; closed: past the high one.
   */
  phase: 'armed' | 'open' | 'closed';
  /** Keys changed in the window. */
  readonly seen: Set<string>;
  /** Keys changed before the low watermark, by xid (TRUNCATE as TRUNCATED). */
  readonly early: Map<number, string[]>;
  /** The snapshot the chunk was read in. */
  horizon: SnapshotHorizon | null;
  truncated: boolean;
  rows: (string | null)[][];
  lastKey: string[] | null;
  final: boolean;
  published: number;
  /** Resolved when the stream handed the rows over (at the high watermark). */
  readonly handed: Deferred;
  /** Resolved when the watermark's transaction was acknowledged and the progress stored. */
  readonly acked: Deferred;
}

class Closed extends Error {}

/** In Chunk.early: the table was truncated. */
const TRUNCATED = '\0truncate';

export class Backfiller implements StreamWatch {
  private client: Promise<pg.Client> | null = null;
  private progressClient: Promise<pg.Client> | null = null;
  private chunk: Chunk | null = null;
  /** The chunk whose rows were handed over in the transaction being read; its commit carries the callback. */
  private committingChunk: Chunk | null = null;
  private closed = false;
  private loop: Promise<void> | null = null;
  /** Progress writes, in acknowledgement order. */
  private writes: Promise<void> = Promise.resolve();
  private wake: (() => void) | null = null;
  private readonly pollMs: number;
  private readonly log: Logger;

  constructor(private readonly options: BackfillerOptions) {
    this.pollMs = options.pollMs ?? 1000;
    this.log = options.log;
  }

  get watching(): boolean {
    return this.chunk !== null && this.chunk.phase !== 'closed';
  }

  /** Starts running requests (after the initial snapshot, if any). */
  start(): void {
    this.loop ??= this.run();
  }

  change(xid: number, relationId: number, row: Tuple | null, old: Tuple | null): void {
    const chunk = this.chunk!;
    if (relationId !== chunk.target.table.relid) return;
    const keys = chunk.target.table.keyIndexes;
    if (chunk.phase === 'armed') {
      let early = chunk.early.get(xid);
      if (early === undefined) chunk.early.set(xid, (early = []));
      if (row === null && old === null) early.push(TRUNCATED);
      if (row !== null) early.push(keyText(row, keys));
      if (old !== null) early.push(keyText(old, keys));
      return;
    }
    if (row === null && old === null) chunk.truncated = true;
    if (row !== null) chunk.seen.add(keyText(row, keys));
    if (old !== null) chunk.seen.add(keyText(old, keys));
  }

  message(txn: TransactionHandle | null, message: LogicalMessage): Promise<void> | undefined {
    if (message.prefix !== WATERMARK_PREFIX || txn === null) return undefined;
    const chunk = this.chunk;
    let mark: { token?: string; mark?: string };
    try {
      mark = JSON.parse(message.content.toString('utf8')) as typeof mark;
    } catch {
      return undefined;
    }
    if (chunk === null || mark.token !== chunk.token) return undefined; // another process's, or re-streamed
    if (mark.mark === 'low') {
      chunk.phase = 'open';
      return undefined;
    }
    if (mark.mark !== 'high') return undefined;
    chunk.phase = 'closed';
    // Changes before the low watermark that the read did not see win too.
    for (const [xid, keys] of chunk.early) {
      if (!invisible(chunk.horizon!, xid)) continue;
      for (const key of keys) {
        if (key === TRUNCATED) chunk.truncated = true;
        else chunk.seen.add(key);
      }
    }
    const rows = chunk.truncated ? [] : chunk.rows.filter((row) => !chunk.seen.has(keyText(row, chunk.target.table.keyIndexes)));
    chunk.published = rows.length;
    this.committingChunk = chunk;
    return publishRows(this.options.sink, txn, chunk.target, rows).then(() => chunk.handed.resolve());
  }

  committing(): (() => void) | undefined {
    const chunk = this.committingChunk;
    if (chunk === null) return undefined;
    this.committingChunk = null;
    return () => this.acknowledged(chunk);
  }

  /** Stops after the current step; waits for progress writes of acknowledged chunks, closes the connection. */
  async close(): Promise<void> {
    this.closed = true;
    this.wake?.();
    const chunk = this.chunk;
    chunk?.handed.reject(new Closed());
    chunk?.acked.reject(new Closed());
    await this.loop?.catch(() => {});
    await this.writes;
    for (const client of [this.client, this.progressClient]) await client?.then((c) => c.end()).catch(() => {});
    this.client = this.progressClient = null;
  }

  private acknowledged(chunk: Chunk): void {
    const { request } = chunk;
    const table = `${request.schema}.${request.table}`;
    this.writes = this.writes.then(async () => {
      const client = await this.progressConnection();
      if (chunk.lastKey) await recordProgress(client.query.bind(client), request.id, chunk.lastKey, chunk.published);
      this.options.observer?.snapshotRows?.(table, chunk.published);
      if (chunk.final) {
        await finishBackfill(client.query.bind(client), request.id, 'done');
        const done = await readBackfill(client.query.bind(client), request.id);
        // Cancelled (or removed) while its last chunk was in flight: every row went out, but the row says so, and so does the log.
        if (done?.status === 'done') this.log.info({ backfill: request.id, table, rows: done.rows, kind: request.kind }, 'backfill done');
        else this.log.info({ backfill: request.id, table, rows: done?.rows ?? chunk.published, status: done?.status ?? 'removed', lastChunk: true }, 'backfill cancelled');
      }
      chunk.acked.resolve();
    }).catch((err: unknown) => {
      // The chunk is read again after a restart; its rows carry the same ids.
      this.log.warn({ backfill: request.id, err: describeError(err) }, 'backfill progress not stored');
      chunk.acked.reject(err);
    });
  }

  /** The reading connection (watermarks, chunks, requests). */
  private async connection(): Promise<pg.Client> {
    const connecting = (this.client ??= this.connect(() => {
      if (this.client === connecting) this.client = null;
    }));
    return connecting;
  }

  /** Progress is written on its own connection: acknowledgements arrive while a chunk is read in its transaction. */
  private async progressConnection(): Promise<pg.Client> {
    const connecting = (this.progressClient ??= this.connect(() => {
      if (this.progressClient === connecting) this.progressClient = null;
    }));
    return connecting;
  }

  /** Connects; `lost` is called when the connection fails (or could not be made). */
  private connect(lost: () => void): Promise<pg.Client> {
    const connecting = connectClient(this.options.database, { options: REPLICATION_SESSION_OPTIONS, application_name: 'wal-listener backfill' });
    connecting.then((client) => client.on('error', lost), lost);
    return connecting;
  }

  private async sleep(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.wake = null;
  }

  private async run(): Promise<void> {
    const { slot } = this.options;
    while (!this.closed) {
      try {
        const client = await this.connection();
        const request = await nextBackfill(client.query.bind(client), slot);
        if (request === null) {
          this.options.observer?.backfillInProgress?.(0);
          await this.sleep(this.pollMs);
          continue;
        }
        this.options.observer?.backfillInProgress?.(1);
        await this.backfill(request);
      } catch (err) {
        this.chunk = null;
        if (this.closed || err instanceof Closed) return;
        this.log.warn({ err: describeError(err) }, 'backfill interrupted; retrying');
        this.client?.then((c) => c.end()).catch(() => {});
        this.client = null;
        await this.sleep(Math.max(this.pollMs, 2000));
      }
    }
  }

  private async backfill(request: BackfillRequest): Promise<void> {
    const client = await this.connection();
    const query = client.query.bind(client);
    const name = `${request.schema}.${request.table}`;
    let table: SnapshotTable;
    try {
      table = await readSnapshotTable(client, request.schema, request.table);
      await checkPublished(client, this.options.publication, table);
    } catch (err) {
      if (!(err instanceof WalListenerError)) throw err;
      await finishBackfill(query, request.id, 'failed', err.message);
      this.log.error({ backfill: request.id, table: name, code: err.code, err: err.message }, 'backfill refused');
      return;
    }
    const handle = await this.options.relations.detached(relationOf(table), table.keyIndexes.map((i) => table.columns[i]!.name));
    const target: SnapshotRows = { table, handle, idScope: `${this.options.source}/${request.id}` };
    await markRunning(query, request.id);
    this.log.info({ backfill: request.id, table: name, kind: request.kind, where: request.where ?? undefined, chunk: request.chunkSize, from: request.lastKey ?? undefined }, request.status === 'running' ? 'backfill resumed' : 'backfill started');
    let lastKey = request.lastKey;
    let rows = request.rows;
    const startedAt = Date.now();
    let lastLog = startedAt;
    for (;;) {
      if (this.closed) throw new Closed();
      const now = await readBackfill(query, request.id);
      if (!now || now.status !== 'running') {
        this.log.info({ backfill: request.id, table: name, rows: now?.rows ?? rows, status: now?.status ?? 'removed' }, 'backfill cancelled');
        return;
      }
      const chunk: Chunk = {
        request, target, token: randomUUID(), phase: 'armed', seen: new Set(), early: new Map(), horizon: null, truncated: false,
        rows: [], lastKey, final: false, published: 0, handed: new Deferred(), acked: new Deferred(),
      };
      this.chunk = chunk;
      await this.watermark(client, chunk, 'low');
      try {
        ({ rows: chunk.rows, horizon: chunk.horizon } = await readChunkInSnapshot(client, table, request.where, lastKey, request.chunkSize));
      } catch (err) {
        const sqlstate = (err as { code?: string }).code ?? '';
        if (!/^(22|42)/.test(sqlstate)) throw err;
        // A --where that does not work (syntax, unknown column, bad value): this request fails, the next one runs.
        this.chunk = null;
        await finishBackfill(query, request.id, 'failed', (err as Error).message);
        this.log.error({ backfill: request.id, table: name, err: (err as Error).message }, 'backfill failed: the chunk query was refused');
        return;
      }
      chunk.final = chunk.rows.length < request.chunkSize;
      const last = chunk.rows.at(-1);
      if (last) lastKey = chunk.lastKey = keyValues(last, table.keyIndexes);
      await this.watermark(client, chunk, 'high');
      await chunk.handed.promise;
      this.chunk = null;
      rows += chunk.published;
      if (Date.now() - lastLog >= 60_000) {
        lastLog = Date.now();
        this.log.info({ backfill: request.id, table: name, rows, lastKey, rowsPerSecond: Math.round((rows - request.rows) / ((lastLog - startedAt) / 1000)) }, 'backfill progress');
      }
      if (chunk.final) {
        await chunk.acked.promise;
        return;
      }
    }
  }

  private async watermark(client: pg.Client, chunk: Chunk, mark: 'low' | 'high'): Promise<void> {
    const content = JSON.stringify({ backfill: chunk.request.id, token: chunk.token, mark });
    await client.query('SELECT pg_logical_emit_message(true, $1, $2)', [WATERMARK_PREFIX, content]);
  }
}
