/**
 * The PostgreSQL source: a logical replication slot read with pgoutput. Each session checks the
 * server (wal_level), makes sure the publication and the slot exist, and streams from the slot's
 * confirmed position; confirmations go back as the slot's flush LSN (session.ts).
 */
import type { Config } from '../../config/schema.js';
import { WalListenerError } from '../../errors.js';
import type { Logger } from '../../observability/logger.js';
import type { ChangeSink } from '../../pipeline/change.js';
import type { DeadLetterStore } from '../../pipeline/dead-letters.js';
import { sourceHash } from '../../pipeline/event-id.js';
import type { PipelineObserver } from '../../pipeline/observer.js';
import type { Source } from '../source.js';
import { PostgresDeadLetterStore } from './dead-letter-store.js';
import { tlsError } from './connection-options.js';
import { classifyPgError, type PgErrorContext } from './errors.js';
import { parseLsn, type Lsn } from './pgoutput.js';
import { Relations } from './relations.js';
import { ReplicationConnection } from './replication.js';
import { PostgresSession } from './session.js';
import { checkWalLevel, ensurePublication, ensureSlot } from './setup.js';
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
  private deadLetterStore: PostgresDeadLetterStore | null = null;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
    private readonly observer: PipelineObserver = {},
  ) {
    this.sql = new SqlClient(config.database);
    this.context = { doing: 'connecting', database: config.database.name, user: config.database.user };
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

  async open(sink: ChangeSink<Lsn>, signal: AbortSignal): Promise<PostgresSession> {
    const { config, log } = this;
    const { slotName, publication } = config.listener;
    let step = 'connecting';
    let connection: ReplicationConnection | null = null;
    try {
      const client = await this.sql.connection();
      step = 'checking wal_level';
      await checkWalLevel(client);
      step = 'checking the publication';
      if (await ensurePublication(client, publication)) log.info({ publication }, 'created publication FOR ALL TABLES');
      step = 'checking the replication slot';
      const slot = await ensureSlot(client, slotName, config.database.name);
      if (slot.created) log.info({ slot: slotName }, 'created logical replication slot (pgoutput)');
      else if (!this.announced) log.info({ slot: slotName, confirmedFlush: slot.confirmedFlush }, 'using existing replication slot');
      this.announced = true;
      if (slot.activePid !== null) {
        throw new WalListenerError('WAL_PG_SLOT_IN_USE', `replication slot ${slotName} is active for PID ${slot.activePid}; retrying (only one daemon can stream from a slot)`);
      }
      if (signal.aborted) throw new WalListenerError('WAL_PG_CONNECT', 'stopping');
      step = 'opening the replication connection';
      connection = await ReplicationConnection.open(config.database);
      const identity = await connection.identifySystem();
      const startLsn = slot.confirmedFlush ? parseLsn(slot.confirmedFlush) : 0n;
      step = 'starting replication';
      const session = new PostgresSession({
          connection,
          sink,
          relations: new Relations(sink, this.converters, this.sql),
          logger: log,
          heartbeatMs: config.listener.heartbeatInterval,
          source: sourceHash(identity.systemId, identity.dbName),
          startLsn,
          errorContext: { ...this.context, doing: 'streaming' },
          observer: this.observer,
      });
      const { ended } = await connection.start(slotName, publication, 0n, session.onFrame);
      session.watch(ended);
      log.info({ slot: slotName, systemId: identity.systemId, from: slot.confirmedFlush }, 'replication streaming');
      return session;
    } catch (err) {
      await connection?.close();
      throw tlsError(config.database, err) ?? classifyPgError(err, { ...this.context, doing: step });
    }
  }

  deadLetters(): DeadLetterStore {
    this.deadLetterStore ??= new PostgresDeadLetterStore(this.config.database);
    return this.deadLetterStore;
  }

  async close(): Promise<void> {
    await this.deadLetterStore?.close();
    await this.sql.close();
  }
}
