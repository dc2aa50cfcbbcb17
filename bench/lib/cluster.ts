/**
 * A private PostgreSQL 15 cluster for the benchmarks (Debian's /usr/lib/postgresql/15/bin): initdb
 * into a temporary directory, `postgres` on a free port, removed at the end. The machine's shared
 * server has other users' slots, WAL and load; here every byte of WAL and every walsender is ours.
 *
 * PostgreSQL 15 rather than the embedded 18: it is the version the machine's server, the test suite
 * and the issue's figures use, and its pg_recvlogical ships with it. PostgreSQL refuses to run as
 * root; as root the cluster runs as the system user `postgres`.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort, waitFor } from '../../test/support/ports.js';

export const PG_BIN = '/usr/lib/postgresql/15/bin';

/**
 * Server settings, and why: logical decoding with room for one slot and walsender per contender;
 * no walsender timeout (a paused walsender must not be dropped, see contenders.ts); no autovacuum
 * and rare checkpoints so that background work does not land inside a timed drain; fsync off
 * because the data is thrown away (walsenders read WAL once it is written, as with fsync on).
 */
const SETTINGS: Record<string, string> = {
  wal_level: 'logical',
  max_replication_slots: '40',
  max_wal_senders: '40',
  max_connections: '60',
  wal_sender_timeout: '0',
  autovacuum: 'off',
  fsync: 'off',
  checkpoint_timeout: '30min',
  max_wal_size: '8GB',
  shared_buffers: '256MB',
  listen_addresses: '127.0.0.1',
  log_min_messages: 'warning',
};

export interface PrivateCluster {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  /** The postmaster's pid (its /proc cutime grows by the CPU of every backend it reaps). */
  readonly postmasterPid: number;
  readonly dir: string;
  client(database?: string): Promise<pg.Client>;
  /** Fast shutdown, then removes the directory. Safe to call twice. */
  destroy(): Promise<void>;
}

export async function startPrivateCluster(log: (message: string) => void): Promise<PrivateCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'wl-bench-pg-'));
  const data = join(dir, 'data');
  const socketDir = join(dir, 'sock');
  mkdirSync(socketDir);
  const owner = runAs();
  if (owner) for (const path of [dir, socketDir]) chownSync(path, owner.uid, owner.gid);
  let server: ChildProcess | undefined;
  const destroy = async (): Promise<void> => {
    const child = server;
    server = undefined;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGINT'); // fast shutdown: walsenders and sessions are terminated
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', () => {
    server?.kill('SIGQUIT');
    rmSync(dir, { recursive: true, force: true });
  });
  try {
    execFileSync(join(PG_BIN, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      ...(owner ?? {}),
    });
    const port = await freePort();
    const settings = { ...SETTINGS, port: String(port), unix_socket_directories: socketDir };
    const args = ['-D', data, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
    const logFd = openSync(join(dir, 'server.log'), 'a');
    if (owner) chownSync(join(dir, 'server.log'), owner.uid, owner.gid);
    server = spawn(join(PG_BIN, 'postgres'), args, { stdio: ['ignore', logFd, logFd], ...(owner ?? {}) });
    const cluster: PrivateCluster = {
      host: '127.0.0.1',
      port,
      user: 'postgres',
      postmasterPid: server.pid!,
      dir,
      async client(database = 'postgres') {
        const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database });
        await c.connect();
        return c;
      },
      destroy,
    };
    await waitFor(`private PostgreSQL on port ${port}`, async () => {
      if (server?.exitCode !== null) throw new Error(`postgres exited: ${readFileSync(join(dir, 'server.log'), 'utf8').slice(-2000)}`);
      const c = await cluster.client();
      await c.end();
      return true;
    }, 30_000, 100);
    log(`private PostgreSQL 15 on 127.0.0.1:${port} (${dir})`);
    return cluster;
  } catch (err) {
    await destroy();
    throw err;
  }
}

/** The uid/gid to run PostgreSQL as: `postgres` when we are root, nothing otherwise. */
function runAs(): { uid: number; gid: number } | undefined {
  if (userInfo().uid !== 0) return undefined;
  try {
    const id = (flag: string): number => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }));
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    throw new Error('PostgreSQL cannot run as root and there is no "postgres" system user to run it as; run the bench as a regular user');
  }
}
