/**
 * Runs the daemon as a child `node` process for a benchmark: the built dist/cli.js by default (as
 * users run it, no compile step in the figures), or src/cli.ts through tsx. Its config is written
 * per run (slot, publication, publisher); its logs (stderr) are read for "replication streaming".
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import YAML from 'yaml';
import { LineChild } from './children.js';
import { readMemory, type ProcMemory } from './proc.js';

export const REPO_ROOT = resolve(import.meta.dirname, '../..');

export interface DaemonLaunch {
  /** 'dist' runs dist/cli.js (build first); 'tsx' runs src/cli.ts through tsx. */
  mode: 'dist' | 'tsx';
  /** Another checkout holding a built daemon (dist/cli.js and its node_modules) to run instead (dist mode). */
  root?: string;
  /** Write a V8 CPU profile (.cpuprofile) into this directory when the daemon exits. */
  cpuProfDir?: string;
  /** Extra node flags for the daemon process (e.g. --max-old-space-size=128), for experiments. */
  nodeArgs?: string[];
}

export interface BenchDaemonConfig {
  slot: string;
  publication: string;
  publisher: { type: 'stdout' | 'nats' | 'rabbitmq'; address?: string; topic: string };
  database: { host: string; port: number; name: string; user: string };
  /** Receives the daemon's stdout (the stdout publisher's events); otherwise stdout is ignored. */
  onStdout?: (chunk: Buffer) => void;
}

export interface BenchDaemon {
  readonly pid: number;
  /** performance.now() when the "replication streaming" log line arrived. */
  readonly streamingAt: number;
  memory(): ProcMemory | undefined;
  /** Log records at warn level or above so far (there should be none). */
  problems(): Record<string, unknown>[];
  /** SIGTERM and wait for the exit (SIGKILL after `timeoutMs`); returns the exit code. */
  stop(timeoutMs?: number): Promise<number | null>;
  kill(): Promise<void>;
}

export async function startBenchDaemon(launch: DaemonLaunch, config: BenchDaemonConfig): Promise<BenchDaemon> {
  const dir = mkdtempSync(join(tmpdir(), 'wl-bench-'));
  const configPath = join(dir, 'config.yml');
  // Logger at info: "replication streaming" is an info line, and nothing is logged per message.
  const yaml = {
    listener: { slotName: config.slot, publication: config.publication },
    logger: { level: 'info', fmt: 'json' },
    database: config.database,
    publisher: config.publisher,
  };
  writeFileSync(configPath, YAML.stringify(yaml));
  const nodeArgs = [...(launch.nodeArgs ?? []), ...(launch.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${launch.cpuProfDir}`] : [])];
  const root = launch.root ?? REPO_ROOT;
  const entry = launch.mode === 'dist' ? [join(root, 'dist/cli.js')] : ['--import', 'tsx', join(root, 'src/cli.ts')];
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('WAL_')) env[k] = v;

  const records: Record<string, unknown>[] = [];
  const child = new LineChild(process.execPath, [...nodeArgs, ...entry, '-c', configPath], {
    cwd: root,
    env,
    stdio: ['ignore', config.onStdout ? 'pipe' : 'ignore', 'pipe'],
    ...(config.onStdout ? { onStdout: config.onStdout } : {}),
    onLine: (line) => {
      if (!line.startsWith('{')) return;
      try {
        records.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not a log record
      }
    },
  });
  void child.exited.then(() => rmSync(dir, { recursive: true, force: true }));
  const streaming = await child.waitLine((line) => line.includes('"replication streaming"'), 60_000, '"replication streaming" log line').catch(async (err: unknown) => {
    await child.stop('SIGKILL');
    throw new Error(`daemon: ${(err as Error).message}`);
  });

  return {
    pid: child.pid,
    streamingAt: streaming.at,
    memory: () => readMemory(child.pid),
    problems: () => records.filter((r) => r.level !== 'info' && r.level !== 'debug' && r.level !== 'trace'),
    stop: (timeoutMs = 30_000) => child.stop('SIGTERM', timeoutMs),
    async kill() {
      await child.stop('SIGKILL');
    },
  };
}
