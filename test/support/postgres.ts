/**
 * A private database (and slot/publication names) on the machine's PostgreSQL for one test file.
 * The machine's server is shared with CI and other tests: every name is unique, and cleanup drops
 * the slots and the database so no WAL is kept forever.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const PG_HOST = process.env.PGHOST_TEST ?? '127.0.0.1';
export const PG_PORT = Number(process.env.PGPORT_TEST ?? 5432);
export const PG_USER = process.env.PGUSER_TEST ?? 'postgres';
/** Set when the suite runs against the embedded PostgreSQL 18 (test/run.mjs pg18). */
export const PG_PASSWORD = process.env.PGPASSWORD_TEST;

export interface TestDatabase {
  readonly name: string;
  /** A slot name unique to this database (call again for more). */
  slotName(tag?: string): string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string | undefined;
  /** Runs SQL on the test database (new connection per call; fine for tests). */
  sql<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
  client(): Promise<pg.Client>;
  /** confirmed_flush_lsn of a slot as "X/Y", or null. */
  confirmedFlush(slot: string): Promise<string | null>;
  drop(): Promise<void>;
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
}

/** Where a test database lives: the machine's server (or the suite's, test/run.mjs pg18) unless a test names its own. */
export interface TestServer {
  host?: string;
  port?: number;
  user?: string;
  password?: string | undefined;
}

type ResolvedServer = { host: string; port: number; user: string; password: string | undefined };

/** `server` with the machine's (or the suite's) settings where it names none; its password only with its user. */
function resolveServer(server: TestServer): ResolvedServer {
  return { host: server.host ?? PG_HOST, port: server.port ?? PG_PORT, user: server.user ?? PG_USER, password: server.user === undefined ? PG_PASSWORD : server.password };
}

async function adminQuery(text: string, params: unknown[], server: ResolvedServer): Promise<pg.QueryResult> {
  const client = new pg.Client({ ...server, database: 'postgres' });
  await client.connect();
  try {
    return await client.query(text, params);
  } finally {
    await client.end();
  }
}

export async function createTestDatabase(prefix = 'wl', opts: TestServer & { /** CREATE DATABASE options, e.g. "ENCODING SQL_ASCII …" */ with?: string } = {}): Promise<TestDatabase> {
  const server = resolveServer(opts);
  const { host, port, user, password } = server;
  const name = uniqueName(prefix);
  await adminQuery(`CREATE DATABASE ${name}${opts.with ? ` ${opts.with}` : ''}`, [], server);
  let slots = 0;
  const client = async (): Promise<pg.Client> => {
    const c = new pg.Client({ host, port, user, password, database: name });
    await c.connect();
    return c;
  };
  const db: TestDatabase = {
    name,
    host,
    port,
    user,
    password,
    slotName: (tag = 's') => `${name}_${tag}${++slots}`.slice(0, 63),
    client,
    async sql(text, params) {
      const c = await client();
      try {
        return await c.query(text, params);
      } finally {
        await c.end();
      }
    },
    async confirmedFlush(slot) {
      const r = await adminQuery('SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1', [slot], server);
      return (r.rows[0]?.lsn as string | undefined) ?? null;
    },
    async drop() {
      // Terminate walsenders still using our slots, then drop slots and the database.
      for (let attempt = 0; attempt < 20; attempt++) {
        await adminQuery('SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL', [name], server);
        try {
          await adminQuery('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1', [name], server);
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 250));
        }
      }
      await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`, [], server);
    },
  };
  return db;
}
