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
 * REPEATABLE READ snapshot whose in-progress xids are kept: a transaction written to the WAL before
 * the low watermark but not yet visible to the read (a commit becomes visible slightly after its WAL
 * record, and much later when commits wait for a synchronous standby) removes its keys too. The
 * stream may have passed such a transaction before the chunk was set up (or in an earlier chunk's
 * window), so while a request runs every change of its table is kept by xid until a chunk's read
 * has seen that transaction. Transactions the stream began before the request started are known
 * by xid only (the last BEGUN_KEPT of them), and so is a transaction once the keys kept would
 * pass KEYS_KEPT (a large UPDATE, say): if one is invisible to a read, that chunk is read again.
 * At the high watermark the rows left are published as SNAPSHOT events inside the watermark's
 * transaction, through the same in-flight window as live changes (the stream waits while the
 * window is full). When that transaction is acknowledged (with everything before it), the chunk's
 * last key is stored: a daemon killed at any point goes on from the last acknowledged chunk.
 * Watermarks of an earlier process (re-streamed after a restart) carry another token and are
 * ignored.
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

/** How many of the stream's latest transactions are remembered by xid (a power of two). */
export const BEGUN_KEPT = 4096;
/**
 * Changed keys kept for transactions no chunk read has seen yet, at most: one that would pass it is
 * kept by xid only, and a chunk whose read does not see it is read again. Commits become visible
 * microseconds after the stream could pass them (unless they wait for a synchronous standby), so
 * rereads are rare, and memory stays bounded whatever the size of a transaction.
 */
export const KEYS_KEPT = 10_000;
/** Before a chunk is read again because a transaction was not yet visible to the read: doubling from the first to the last. */
const REREAD_DELAYS_MS = { first: 100, last: 5_000 };

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
  /** armed: set up, the stream has not reached the low watermark; open: between the watermarks; closed: past the high one. */
  phase: 'armed' | 'open' | 'closed';
  /** Keys changed in the window. */
  readonly seen: Set<string>;
  /** The snapshot the chunk was read in. */
  horizon: SnapshotHorizon | null;
  truncated: boolean;
  rows: (string | null)[][];
  lastKey: string[] | null;
  final: boolean;
  published: number;
  /** The read may have missed a transaction the stream passed before the request started: read the chunk again. */
  reread: boolean;
  /** Resolved when the stream handed the rows over (at the high watermark). */
  readonly handed: Deferred;
  /** Resolved when the watermark's transaction was acknowledged and the progress stored. */
  readonly acked: Deferred;
}

/** The table of the running request, and its changes that some chunk read may not have seen yet. */
interface Recording {
  readonly relid: number;
  readonly keyIndexes: readonly number[];
  /**
   * Keys changed, by xid (TRUNCATE as TRUNCATED), until a chunk's read saw the transaction: a
   * commit can stay invisible to reads past the window it was streamed in (a synchronous standby).
   * null: more than could be kept (KEYS_KEPT), the transaction is known by xid only.
   */
  readonly changed: Map<number, string[] | null>;
  /** The keys in `changed`. */
  kept: number;
  /** Whether a transaction was kept by xid only yet (logged once per request). */
  overflowed: boolean;
  /** The table's name, for logs. */
  readonly name: string;
  /** The count of transactions begun in the stream when recording started. */
  readonly since: number;
  /** Whether every transaction begun before `since` was visible to a chunk's read. */
  settled: boolean;
}

class Closed extends Error {}

/** In Recording.changed: the table was truncated. */
const TRUNCATED = '\0truncate';

export class Backfiller implements StreamWatch {
  private client: Promise<pg.Client> | null = null;
  private progressClient: Promise<pg.Client> | null = null;
  private chunk: Chunk | null = null;
  private recording: Recording | null = null;
  /** The xids of the latest BEGUN_KEPT transactions begun in the stream (a ring), and how many began. */
  private readonly begunXids = new Uint32Array(BEGUN_KEPT);
  private begunCount = 0;
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
    return this.recording !== null;
  }

  begun(xid: number): void {
    this.begunXids[this.begunCount++ & (BEGUN_KEPT - 1)] = xid;
  }

  /** Starts running requests (after the initial snapshot, if any). */
  start(): void {
    this.loop ??= this.run();
  }

  change(xid: number, relationId: number, row: Tuple | null, old: Tuple | null): void {
    const recording = this.recording!;
    if (relationId !== recording.relid) return;
    const keys = recording.keyIndexes;
    let changed = recording.changed.get(xid);
    if (changed === null) return; // too many to keep: known by xid only (a window's keys need not be kept either, see below)
    if (changed === undefined) recording.changed.set(xid, (changed = []));
    const from = changed.length;
    if (row === null && old === null) changed.push(TRUNCATED);
    if (row !== null) changed.push(keyText(row, keys));
    if (old !== null) changed.push(keyText(old, keys));
    recording.kept += changed.length - from;
    if (recording.kept > KEYS_KEPT) {
      // A read that sees this transaction read rows at least as new as its changes; one that does not is read again.
      recording.kept -= changed.length;
      recording.changed.set(xid, null);
      if (!recording.overflowed) {
        recording.overflowed = true;
        this.log.info({ table: recording.name, xid, keysKept: KEYS_KEPT }, 'backfill: more changed rows of the table than the backfill keeps keys for; their transactions are kept by xid, and a chunk read before one is visible is read again');
      }
      return;
    }
    const chunk = this.chunk;
    if (chunk === null || chunk.phase !== 'open') return;
    for (let i = from; i < changed.length; i++) {
      if (changed[i] === TRUNCATED) chunk.truncated = true;
      else chunk.seen.add(changed[i]!);
    }
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
    const horizon = chunk.horizon!;
    const recording = this.recording!;
    // Changes the read did not see win too (the window's are in `seen` already). One the read saw, every later read sees.
    let missed: number | undefined;
    for (const [xid, keys] of recording.changed) {
      if (!invisible(horizon, xid)) {
        recording.kept -= keys?.length ?? 0;
        recording.changed.delete(xid);
        continue;
      }
      if (keys === null) {
        missed = xid;
        continue;
      }
      for (const key of keys) {
        if (key === TRUNCATED) chunk.truncated = true;
        else chunk.seen.add(key);
      }
    }
    if (missed === undefined && !recording.settled) {
      missed = this.invisibleBeforeRecording(recording, horizon);
      if (missed === undefined) recording.settled = true;
    }
    if (missed !== undefined) {
      // Its changes are unknown (before the request started, or too many to keep): nothing of this chunk is published, and it is read again.
      chunk.reread = true;
      chunk.final = false;
      chunk.lastKey = null;
      this.log.debug({ backfill: chunk.request.id, xid: missed }, 'backfill chunk read again: a transaction the stream passed was not yet visible to the read');
      chunk.handed.resolve();
      return undefined;
    }
    const rows = chunk.truncated ? [] : chunk.rows.filter((row) => !chunk.seen.has(keyText(row, chunk.target.table.keyIndexes)));
    chunk.published = rows.length;
    this.committingChunk = chunk;
    return publishRows(this.options.sink, txn, chunk.target, rows).then(() => chunk.handed.resolve());
  }

  /** A transaction begun in the stream before `recording` started (of those still remembered) that the read did not see. */
  private invisibleBeforeRecording(recording: Recording, horizon: SnapshotHorizon): number | undefined {
    for (let k = Math.max(0, recording.since - BEGUN_KEPT, this.begunCount - BEGUN_KEPT); k < recording.since; k++) {
      const xid = this.begunXids[k & (BEGUN_KEPT - 1)]!;
      if (invisible(horizon, xid)) return xid;
    }
    return undefined;
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
        try {
          await this.backfill(request);
        } finally {
          this.recording = null;
        }
      } catch (err) {
        this.chunk = null;
        this.recording = null;
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
    this.recording = { relid: table.relid, keyIndexes: table.keyIndexes, changed: new Map(), kept: 0, overflowed: false, name, since: this.begunCount, settled: false };
    const target: SnapshotRows = { table, handle, idScope: `${this.options.source}/${request.id}` };
    await markRunning(query, request.id);
    this.log.info({ backfill: request.id, table: name, kind: request.kind, where: request.where ?? undefined, chunk: request.chunkSize, from: request.lastKey ?? undefined }, request.status === 'running' ? 'backfill resumed' : 'backfill started');
    let lastKey = request.lastKey;
    let rows = request.rows;
    const startedAt = Date.now();
    let lastLog = startedAt;
    let rereads = 0;
    for (;;) {
      if (this.closed) throw new Closed();
      const now = await readBackfill(query, request.id);
      if (!now || now.status !== 'running') {
        this.log.info({ backfill: request.id, table: name, rows: now?.rows ?? rows, status: now?.status ?? 'removed' }, 'backfill cancelled');
        return;
      }
      const chunk: Chunk = {
        request, target, token: randomUUID(), phase: 'armed', seen: new Set(), horizon: null, truncated: false,
        rows: [], lastKey, final: false, published: 0, reread: false, handed: new Deferred(), acked: new Deferred(),
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
      if (last) chunk.lastKey = keyValues(last, table.keyIndexes);
      await this.watermark(client, chunk, 'high');
      await chunk.handed.promise;
      this.chunk = null;
      if (chunk.reread) {
        rereads++;
        // Minutes only when a commit waits that long, e.g. for a synchronous standby that is down.
        if (rereads === 20) this.log.warn({ backfill: request.id, table: name, rereads }, 'backfill waiting: a transaction in the WAL is still not visible to other sessions (a commit waiting for a synchronous standby?); its chunk is read again until it is');
        await this.sleep(Math.min(REREAD_DELAYS_MS.first * 2 ** (rereads - 1), REREAD_DELAYS_MS.last));
        continue;
      }
      rereads = 0;
      lastKey = chunk.lastKey;
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
