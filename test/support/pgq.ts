/**
 * PgQ for tests: a private database with the pgq extension and a private `pgqd` (the ticker) for
 * it. Each test file starts its own pgqd with a config naming only its database (`database_list`)
 * and short periods, so ticks, retries and maintenance happen within a second, nothing depends on
 * a shared ticker discovering new databases (pgqd re-reads the database list only every
 * `check_period`, 60 s by default), and stopping the ticker (the ticker-lag test) touches no one else.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { pino, type Logger } from 'pino';
import { configSchema, type Config } from '../../src/config/schema.js';
import { waitFor } from './ports.js';
import { createTestDatabase, type TestDatabase } from './postgres.js';

/** A database with `CREATE EXTENSION pgq` (PostgreSQL 15 with Debian's postgresql-15-pgq3), or without it. */
export async function createPgqDatabase(prefix = 'wl_pgq', options: { extension?: boolean } = {}): Promise<TestDatabase> {
  const db = await createTestDatabase(prefix);
  if (options.extension === false) return db;
  try {
    await db.sql('CREATE EXTENSION pgq');
  } catch (err) {
    await db.drop();
    throw new Error(`CREATE EXTENSION pgq failed (is postgresql-15-pgq3 installed?): ${(err as Error).message}`, { cause: err });
  }
  return db;
}

export interface QueueSettings {
  /** queue_ticker_max_lag: how long new events wait for a tick at most. */
  readonly maxLag?: string;
  /** queue_ticker_max_count: events that make a tick at once. */
  readonly maxCount?: number;
  /** queue_ticker_idle_period: the longest time without a tick on an idle queue. */
  readonly idlePeriod?: string;
}

/** pgq.create_queue plus ticker settings that suit tests (a tick within 100 ms of an event). */
export async function createQueue(db: TestDatabase, queue: string, settings: QueueSettings = {}): Promise<void> {
  await db.sql('SELECT pgq.create_queue($1)', [queue]);
  const values: [string, string][] = [
    ['ticker_max_lag', settings.maxLag ?? '100 milliseconds'],
    ['ticker_max_count', String(settings.maxCount ?? 500)],
    ['ticker_idle_period', settings.idlePeriod ?? '60 seconds'],
  ];
  for (const [name, value] of values) await db.sql('SELECT pgq.set_queue_config($1, $2, $3)', [queue, name, value]);
}

export interface Ticker {
  /** Stops pgqd (SIGTERM) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts it again after stop() (no-op while it runs). */
  start(): Promise<void>;
  /** Stops it and removes its config and log. */
  close(): Promise<void>;
  /** pgqd's log so far. */
  log(): string;
}

/** Starts `pgqd` for one database with `ticker_period` and `retry_period` of `periodSeconds`. */
export async function startTicker(db: TestDatabase, periodSeconds = 0.1): Promise<Ticker> {
  const dir = mkdtempSync(join(tmpdir(), 'wl-pgqd-'));
  const appName = `wl_pgqd_${db.name}`.slice(0, 63);
  const conn = [`host=${db.host}`, `port=${db.port}`, `user=${db.user}`, `application_name=${appName}`, ...(db.password ? [`password=${db.password}`] : [])].join(' ');
  const ini = join(dir, 'pgqd.ini');
  writeFileSync(
    ini,
    [
      '[pgqd]',
      `logfile = ${join(dir, 'pgqd.log')}`,
      `base_connstr = ${conn}`,
      `initial_database = ${db.name}`,
      `database_list = ${db.name}`,
      'syslog = 0',
      `ticker_period = ${periodSeconds}`,
      `retry_period = ${periodSeconds}`,
      'maint_period = 1',
      'check_period = 1',
      '',
    ].join('\n'),
  );
  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    if (child && child.exitCode === null && child.signalCode === null) return; // running
    const c = spawn('pgqd', ['-q', ini], { stdio: 'ignore' });
    child = c;
    const exited = new Promise<never>((_, reject) => c.once('exit', (code) => reject(new Error(`pgqd exited with ${code}: ${readLog()}`))));
    exited.catch(() => undefined);
    await Promise.race([
      exited,
      waitFor('pgqd connected to the test database', async () => {
        const r = await db.sql('SELECT 1 FROM pg_stat_activity WHERE application_name = $1', [appName]);
        return r.rowCount! > 0;
      }, 15_000),
    ]);
  };
  const readLog = (): string => {
    try {
      return readFileSync(join(dir, 'pgqd.log'), 'utf8');
    } catch {
      return '';
    }
  };
  const stop = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((resolve) => c.once('exit', resolve));
    c.kill('SIGTERM');
    await exited;
  };
  await start();
  return {
    start,
    stop,
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
    log: readLog,
  };
}

/** A validated config for the PgQ source on `db` (PgQ has no slot: listener.slotName is refused). */
export function pgqConfig(db: TestDatabase, pgq: Record<string, unknown>, publisher: Record<string, unknown> = { type: 'rabbitmq', address: 'amqp://127.0.0.1', topic: 'wal_listener' }): Config {
  return configSchema.parse({
    source: { type: 'pgq' },
    listener: {},
    database: { host: db.host, port: db.port, name: db.name, user: db.user, password: db.password ?? '' },
    publisher,
    pgq,
  });
}

/** A pino logger whose records the test can read. */
export function captureLogger(level = 'debug'): { logger: Logger; records(): Record<string, unknown>[] } {
  const lines: string[] = [];
  const logger = pino({ level }, { write: (line: string) => lines.push(line) });
  return { logger, records: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

export interface StoredEvent {
  ev_id: string;
  ev_time: string;
  ev_txid: string;
  ev_retry: number | null;
  ev_owner: number | null;
  ev_type: string;
  ev_data: string;
}

/** Every row of the queue's event tables (retry copies too), in ev_id order, times in UTC ISO text. */
export async function queueEvents(db: TestDatabase, queue: string): Promise<StoredEvent[]> {
  const c = await db.client();
  try {
    await c.query("SET TimeZone = 'UTC'");
    const pfx = (await c.query('SELECT queue_data_pfx FROM pgq.queue WHERE queue_name = $1', [queue])).rows[0]?.queue_data_pfx as string;
    const r = await c.query(`SELECT ev_id::text, ev_time::text, ev_txid::text, ev_retry, ev_owner, ev_type, ev_data FROM ${pfx} ORDER BY ev_id, ev_retry NULLS FIRST`);
    return r.rows as StoredEvent[];
  } finally {
    await c.end();
  }
}

/** The consumer's open batch and pending events (pgq.get_consumer_info). */
export async function consumerInfo(db: TestDatabase, queue: string, consumer = 'wal-listener'): Promise<{ current_batch: string | null; pending_events: string; last_tick: string } | undefined> {
  const r = await db.sql('SELECT current_batch::text, pending_events::text, last_tick::text FROM pgq.get_consumer_info($1, $2)', [queue, consumer]);
  return r.rows[0] as { current_batch: string | null; pending_events: string; last_tick: string } | undefined;
}

/**
 * Registers node:test before/after hooks for a test file: a PgQ database with its own ticker and the
 * given queues, dropped afterwards. Read `db` and `ticker` inside tests (they exist once `before` ran).
 */
export function pgqFixture(prefix: string, queues: string[] = []): { readonly db: TestDatabase; readonly ticker: Ticker } {
  let db: TestDatabase | undefined;
  let ticker: Ticker | undefined;
  before(async () => {
    db = await createPgqDatabase(prefix);
    ticker = await startTicker(db);
    for (const queue of queues) await createQueue(db, queue);
  });
  after(async () => {
    await ticker?.close();
    await db?.drop();
  });
  return {
    get db() {
      return db!;
    },
    get ticker() {
      return ticker!;
    },
  };
}
