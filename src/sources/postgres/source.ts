/**
 * The PostgreSQL source: a logical replication slot read with pgoutput. Each session checks the
 * server (wal_level), trusts the slot or refuses (slot lost, publication missing: prepare.ts),
 * creates what a first start needs, and streams from the slot's confirmed position; confirmations
 * go back as the slot's flush LSN (session.ts) and, every few seconds, into wal_listener.state.
 */
import type { Config } from '../../config/schema.js';
import { WalListenerError } from '../../errors.js';
import type { Finding } from '../../findings.js';
import type { Logger } from '../../observability/logger.js';
import type { ChangeSink } from '../../pipeline/change.js';
import { compileFilter } from '../../pipeline/filter.js';
import type { DeadLetterStore } from '../../pipeline/dead-letters.js';
import { sourceHash } from '../../pipeline/event-id.js';
import type { PipelineObserver } from '../../pipeline/observer.js';
import type { Source, SourceOptions } from '../source.js';
import { ConfirmRecorder } from './confirm-recorder.js';
import { diagnosePostgres } from './diagnose.js';
import { PostgresDeadLetterStore } from './dead-letter-store.js';
import { tlsError } from './connection-options.js';
import { classifyPgError, type PgErrorContext } from './errors.js';
import { parseLsn, type Lsn } from './pgoutput.js';
import { checkOutboxPublication, checkOutboxTables } from './outbox-tables.js';
import { OutboxRoutes } from './outbox.js';
import { serverVersion } from './publication.js';
import { Backfiller } from './backfiller.js';
import { createSlotWithSnapshot, runInitialSnapshot, type ExportedSnapshot } from './initial-snapshot.js';
import { Relations } from './relations.js';
import { RenameWatch } from './renames.js';
import { ReplicationConnection } from './replication.js';
import { PostgresSession } from './session.js';
import { prepareSlot } from './prepare.js';
import { checkFailoverSupport, checkWalLevel } from './setup.js';
import { assessSlot, readSlotFacts } from './slot-history.js';
import { SqlClient } from './sql-client.js';
import { createValueConverters, type ConvertProblem, type ValueConverters } from './values.js';

export const compareLsn = (a: Lsn, b: Lsn): number => (a < b ? -1 : a > b ? 1 : 0);

export class PostgresSource implements Source<Lsn> {
  readonly kind = 'postgres';
  readonly compare = compareLsn;
  private readonly sql: SqlClient;
  private readonly converters: ValueConverters;
  private readonly context: PgErrorContext;
  private announced = false;
  private recreateSlot: boolean;
  private deadLetterStore: PostgresDeadLetterStore | null = null;
  /** Only with a filter: a rename can take a table out of it. */
  private readonly renames: RenameWatch | null;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
    private readonly observer: PipelineObserver = {},
    options: SourceOptions = {},
  ) {
    this.sql = new SqlClient(config.database);
    this.recreateSlot = options.recreateSlot === true;
    this.renames = config.listener.filter.tables ? new RenameWatch(compileFilter(config.listener.filter), log) : null;
    this.context = { doing: 'connecting', database: config.database.name, user: config.database.user, slot: config.listener.slotName };
    const lastWarned = new Map<number, number>();
    const onProblem: ConvertProblem = (typeOid, text) => {
      this.observer.convertProblem?.();
      // One warning per type a minute: the counter (problematic_events_total) has the full count.
      const now = Date.now();
      if ((lastWarned.get(typeOid) ?? -Infinity) > now - 60_000) return;
      lastWarned.set(typeOid, now);
      log.warn({ typeOid, length: text.length }, 'value could not be converted; published as PostgreSQL text (logged once a minute per type)');
    };
    // Types not built into PostgreSQL are looked up in pg_type over the SQL connection.
    this.converters = createValueConverters({ query: (text, params) => this.sql.query(text, params), onProblem });
  }

  /** Before the publisher connects: a database that does not exist, a lost slot or publication stop the daemon here. */
  async check(): Promise<void> {
    const { slotName, publication } = this.config.listener;
    let step = 'connecting';
    try {
      const client = await this.sql.connection();
      step = 'checking wal_level';
      await checkWalLevel(client);
      step = 'checking the outbox tables';
      await checkOutboxTables(client, this.config.listener.outbox);
      await checkOutboxPublication(client, publication, this.config.listener.outbox);
      if (this.config.listener.failoverSlot) {
        step = 'checking failover slot support';
        await checkFailoverSupport(client);
      }
      step = 'checking the replication slot';
      const verdict = assessSlot(await readSlotFacts(client, slotName, publication));
      if (verdict.kind === 'foreign' || (verdict.kind === 'broken' && !this.recreateSlot)) throw verdict.error;
    } catch (err) {
      throw tlsError(this.config.database, err) ?? classifyPgError(err, { ...this.context, doing: step });
    }
  }

  diagnose(): Promise<Finding[]> {
    return diagnosePostgres(this.config, this.sql);
  }

  async open(sink: ChangeSink<Lsn>, signal: AbortSignal): Promise<PostgresSession> {
    const { config, log } = this;
    const { slotName, publication } = config.listener;
    let step = 'connecting';
    let connection: ReplicationConnection | null = null;
    let exported: ExportedSnapshot | null = null;
    try {
      const client = await this.sql.connection();
      step = 'checking wal_level';
      await checkWalLevel(client);
      step = 'checking the outbox tables';
      await checkOutboxTables(client, config.listener.outbox);
      // Logical messages (pg_logical_emit_message: outbox messages, backfill watermarks) are in pgoutput since PostgreSQL 14.
      const messages = (await serverVersion(client)) >= 140000;
      step = 'checking the replication slot and the publication';
      const initialTables = config.listener.snapshot.initial;
      if (initialTables.length) connection = await ReplicationConnection.open(config.database);
      const slot = await prepareSlot(client, {
        listener: config.listener,
        database: config.database.name,
        recreateSlot: this.recreateSlot,
        announce: !this.announced,
        log,
        step: (doing) => (step = doing),
        ...(connection && initialTables.length
          ? {
              createSlot: async (failover: boolean) => {
                step = 'creating the replication slot with an exported snapshot (listener.snapshot.initial)';
                exported = await createSlotWithSnapshot({
                  database: config.database, client, connection: connection!, slot: slotName, failover, publication, tables: initialTables, chunkSize: config.listener.snapshot.chunkSize,
                });
              },
            }
          : {}),
      });
      if (slot.recreated) this.recreateSlot = false;
      if (slot.created) log.info({ slot: slotName, lsn: slot.confirmedFlush, failover: slot.failover }, 'created logical replication slot (pgoutput)');
      else if (!this.announced) log.info({ slot: slotName, confirmedFlush: slot.confirmedFlush }, 'using existing replication slot');
      this.announced = true;
      if (slot.activePid !== null) {
        throw new WalListenerError('WAL_PG_SLOT_IN_USE', `replication slot ${slotName} is active for PID ${slot.activePid}; retrying (only one daemon can stream from a slot)`);
      }
      if (signal.aborted) throw new WalListenerError('WAL_PG_CONNECT', 'stopping');
      step = 'opening the replication connection';
      connection ??= await ReplicationConnection.open(config.database);
      if (config.listener.failoverSlot && !slot.failover) {
        step = 'making the replication slot a failover slot';
        await connection.enableFailover(slotName);
        log.info({ slot: slotName }, 'replication slot altered to FAILOVER true (listener.failoverSlot)');
      }
      const identity = await connection.identifySystem();
      const startLsn = slot.confirmedFlush ? parseLsn(slot.confirmedFlush) : 0n;
      const recorder = new ConfirmRecorder(this.sql, slotName, startLsn, log);
      step = 'starting replication';
      const source = sourceHash(identity.systemId, identity.dbName);
      const relations = new Relations(sink, this.converters, this.sql, (id, schema, table) => this.renames?.seen(id, schema, table));
      // Watermarks travel as logical messages (PostgreSQL 14+); an older server gets no backfills.
      const backfiller = messages
        ? new Backfiller({ database: config.database, slot: slotName, publication, sink, relations, source, log, observer: this.observer })
        : null;
      const session = new PostgresSession({
          connection,
          sink,
          relations,
          logger: log,
          heartbeatMs: config.listener.heartbeatInterval,
          source,
          startLsn,
          errorContext: { ...this.context, doing: 'streaming' },
          observer: this.observer,
          recorder,
          ...(config.listener.outbox.length ? { outbox: new OutboxRoutes(config.listener.outbox) } : {}),
          ...(backfiller ? { watch: backfiller } : {}),
      });
      session.ended.finally(() => backfiller?.close()).catch(() => {});
      // A publication gap is kept in wal_listener.state: the problem `--recreate-slot` acknowledges.
      const keepProblem = (err: WalListenerError): WalListenerError => {
        if (err.code === 'WAL_PG_PUBLICATION') recorder.failed(err);
        return err;
      };
      session.ended.catch((err: unknown) => err instanceof WalListenerError && keepProblem(err));
      const snapshot = exported as ExportedSnapshot | null;
      if (snapshot) session.hold();
      const { ended } = await connection.start(slotName, publication, 0n, session.onFrame, { messages }).catch(async (err: unknown) => {
        const error = keepProblem(classifyPgError(err, { ...this.context, doing: step }));
        await recorder.close();
        await backfiller?.close();
        throw error;
      });
      session.watch(ended);
      if (snapshot) {
        const sql = this.sql;
        const initial = runInitialSnapshot(snapshot, { sink, relations, source, query: (text, values) => sql.connection().then((c) => c.query(text, values)), log, observer: this.observer });
        session.release(initial.handed);
        initial.acknowledged.then(() => backfiller?.start(), () => {});
      } else backfiller?.start();
      log.info({ slot: slotName, systemId: identity.systemId, from: slot.confirmedFlush, reusedReadBuffer: connection.reusedReadBuffer }, 'replication streaming');
      return session;
    } catch (err) {
      await connection?.close();
      await (exported as ExportedSnapshot | null)?.client.end().catch(() => {});
      throw tlsError(config.database, err) ?? classifyPgError(err, { ...this.context, doing: step });
    }
  }

  deadLetters(): DeadLetterStore {
    this.deadLetterStore ??= new PostgresDeadLetterStore(this.config.database, this.config.listener.slotName);
    return this.deadLetterStore;
  }

  async close(): Promise<void> {
    await this.deadLetterStore?.close();
    await this.sql.close();
  }
}
