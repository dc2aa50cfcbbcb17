/**
 * The initial snapshot (listener.snapshot.initial, DESIGN.md "Snapshots"): when the daemon creates
 * the slot, it creates it on the replication connection with an exported snapshot, imports that
 * snapshot in a REPEATABLE READ transaction on a SQL connection, and reads the named tables there
 * in key-ordered chunks, publishing every row as a SNAPSHOT event before the first streamed change
 * (the session holds the stream meanwhile). The snapshot is exactly the state at the slot's
 * consistent point: every row committed before it arrives as SNAPSHOT, every later change as a
 * change, none twice or missed.
 *
 * Each table is a request in wal_listener.backfills (kind 'initial'), recorded before the slot is
 * created; each chunk's last key is stored once the chunk is acknowledged. A daemon that dies during
 * the initial snapshot cannot read in that snapshot again (it ended with its transaction): on
 * restart the backfiller goes on from the stored last key with watermarks, which keeps the same
 * guarantee for the final state (rows arrive as SNAPSHOT events interleaved with the stream).
 */
import type pg from 'pg';
import type { DatabaseConfig } from '../../config/schema.js';
import { describeError } from '../../errors.js';
import type { Logger } from '../../observability/logger.js';
import type { ChangeSink } from '../../pipeline/change.js';
import { eventIdPrefix } from '../../pipeline/event-id.js';
import type { PipelineObserver } from '../../pipeline/observer.js';
import { publishRows, type SnapshotRows } from './backfiller.js';
import { dropUnfinishedInitial, ensureBackfillTable, finishBackfill, insertBackfill, markRunning, recordProgress, type BackfillRequest } from './backfills.js';
import { connectClient, REPLICATION_SESSION_OPTIONS } from './connection-options.js';
import type { Query } from './dead-letter-table.js';
import { formatLsn, parseLsn, type Lsn } from './pgoutput.js';
import type { Relations } from './relations.js';
import type { ReplicationConnection } from './replication.js';
import { checkPublished, keyValues, parseTableName, readChunk, readSnapshotTable, relationOf, type SnapshotTable } from './snapshot-table.js';

/** The slot's exported snapshot, imported in an open transaction, and the tables to read in it. */
export interface ExportedSnapshot {
  readonly client: pg.Client;
  readonly consistentPoint: Lsn;
  readonly tables: readonly { request: BackfillRequest; table: SnapshotTable }[];
  readonly chunkSize: number;
}

export interface CreateWithSnapshotOptions {
  database: DatabaseConfig;
  /** The SQL connection (requests are recorded on it). */
  client: pg.Client;
  connection: ReplicationConnection;
  slot: string;
  /** Create it as a failover slot (listener.failoverSlot, PostgreSQL 17+). */
  failover: boolean;
  publication: string;
  tables: readonly string[];
  chunkSize: number;
}

/**
 * Checks the tables (each must exist, have a primary key and be published: else
 * WAL_SNAPSHOT_TABLE, before the slot exists), records them, creates the slot with an exported
 * snapshot and imports it.
 */
export async function createSlotWithSnapshot(options: CreateWithSnapshotOptions): Promise<ExportedSnapshot> {
  const { client } = options;
  const query: Query = (text, values) => client.query(text, values);
  const tables: SnapshotTable[] = [];
  for (const name of options.tables) {
    const parsed = parseTableName(name)!;
    const table = await readSnapshotTable(client, parsed.schema, parsed.table);
    await checkPublished(client, options.publication, table);
    tables.push(table);
  }
  await ensureBackfillTable(query);
  await dropUnfinishedInitial(query, options.slot);
  const recorded: { request: BackfillRequest; table: SnapshotTable }[] = [];
  for (const table of tables) {
    const request = await insertBackfill(query, { slotName: options.slot, kind: 'initial', schema: table.schema, table: table.table, where: null, chunkSize: options.chunkSize });
    await markRunning(query, request.id);
    recorded.push({ request, table });
  }
  const { consistentPoint, snapshotName } = await options.connection.createSlotWithSnapshot(options.slot, options.failover);
  const snapshotClient = await connectClient(options.database, { options: REPLICATION_SESSION_OPTIONS, application_name: 'wal-listener snapshot' });
  try {
    await snapshotClient.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await snapshotClient.query(`SET TRANSACTION SNAPSHOT '${snapshotName.replace(/'/g, "''")}'`);
  } catch (err) {
    await snapshotClient.end().catch(() => {});
    throw err;
  }
  return { client: snapshotClient, consistentPoint: parseLsn(consistentPoint), tables: recorded, chunkSize: options.chunkSize };
}

export interface RunInitialOptions {
  sink: ChangeSink<Lsn>;
  relations: Relations;
  /** Source hash (event ids). */
  source: number;
  /** Where progress is written (the source's SQL connection). */
  query: Query;
  log: Logger;
  observer?: PipelineObserver;
}

/**
 * Reads every table in the snapshot and hands its rows to the sink. `handed` settles when every row
 * was handed over (the stream may go on), `acknowledged` when every chunk was acknowledged and its
 * progress stored.
 */
export function runInitialSnapshot(snapshot: ExportedSnapshot, options: RunInitialOptions): { handed: Promise<void>; acknowledged: Promise<void> } {
  let writes: Promise<void> = Promise.resolve();
  /** Chunks committed and not yet acknowledged; `allHanded` once the last was committed. */
  let outstanding = 0;
  let allHanded = false;
  let settle: () => void = () => {};
  const settled = new Promise<void>((resolve) => (settle = resolve));
  const check = (): void => {
    if (allHanded && outstanding === 0) void writes.then(settle, settle);
  };
  const { sink, log, query } = options;
  const position = formatLsn(snapshot.consistentPoint);
  const idPrefix = eventIdPrefix(snapshot.consistentPoint, options.source);
  const progress = (request: BackfillRequest, table: string, lastKey: string[] | null, rows: number, final: boolean, total: number): void => {
    outstanding--;
    writes = writes.then(async () => {
      if (lastKey) await recordProgress(query, request.id, lastKey, rows);
      options.observer?.snapshotRows?.(table, rows);
      if (final) {
        await finishBackfill(query, request.id, 'done');
        log.info({ backfill: request.id, table, rows: total, kind: 'initial' }, 'initial snapshot of table done');
      }
    });
    check();
  };
  const handed = (async () => {
    try {
      for (const { request, table } of snapshot.tables) {
        const name = `${table.schema}.${table.table}`;
        const handle = await options.relations.detached(relationOf(table), table.keyIndexes.map((i) => table.columns[i]!.name));
        const target: SnapshotRows = { table, handle, idScope: `${options.source}/${request.id}` };
        log.info({ backfill: request.id, table: name, consistentPoint: position }, 'initial snapshot of table started');
        let lastKey: string[] | null = null;
        let total = 0;
        let lastLog = Date.now();
        for (;;) {
          const rows = await readChunk(snapshot.client, table, null, lastKey, snapshot.chunkSize);
          const txn = sink.begin({ idPrefix, commitTime: `${new Date().toISOString().slice(0, -1)}000Z`, position, xid: 0 });
          await publishRows(sink, txn, target, rows);
          const last = rows.at(-1);
          if (last) lastKey = keyValues(last, table.keyIndexes);
          total += rows.length;
          const final = rows.length < snapshot.chunkSize;
          const chunkKey = lastKey;
          const count = rows.length;
          const sum = total;
          outstanding++;
          sink.commit(txn, snapshot.consistentPoint, () => progress(request, name, chunkKey, count, final, sum));
          if (Date.now() - lastLog >= 60_000) {
            lastLog = Date.now();
            log.info({ backfill: request.id, table: name, rows: total }, 'initial snapshot progress');
          }
          if (final) break;
        }
      }
      await snapshot.client.query('COMMIT');
    } finally {
      await snapshot.client.end().catch(() => {});
    }
  })();
  const acknowledged = handed.then(async () => {
    allHanded = true;
    check();
    await settled;
    await writes;
  });
  acknowledged.catch((err: unknown) => log.warn({ err: describeError(err) }, 'initial snapshot progress not stored'));
  return { handed, acknowledged };
}
