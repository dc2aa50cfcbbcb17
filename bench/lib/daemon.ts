/**
 * Runs the daemon as a child `node` process for a benchmark: the built dist/cli.js by default (no
 * tsx compile step in the figures), or src/cli.ts through tsx. With `--import tsx` the child is
 * still the node process that runs the daemon, so its /proc memory figures are the daemon's.
 */
import { spawn } from 'node:child_process';
import { track } from './children.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import YAML from 'yaml';
import { nowMs } from './stats.js';
import { readMemory, type ProcMemory } from './proc.js';

export const REPO_ROOT = resolve(import.meta.dirname, '../..');

export interface DaemonLaunch {
  /** 'dist' runs dist/cli.js (build first); 'tsx' runs src/cli.ts through tsx. */
  mode: 'dist' | 'tsx';
  /** Write a V8 CPU profile (.cpuprofile) into this directory when the daemon exits. */
  cpuProfDir?: string;
  /** Extra node flags for the daemon process (e.g. --max-old-space-size=128), for experiments. */
  nodeArgs?: string[];
}

export interface BenchDaemonConfig {
  slot: string;
  publication: string;
  topic: string;
  natsUrl: string;
  database: { host: string; port: number; name: string; user: string };
}

export interface BenchDaemon {
  readonly pid: number;
  /** Our clock (epoch ms) when the "replication streaming" log line arrived. */
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
    publisher: { type: 'nats', address: config.natsUrl, topic: config.topic },
  };
  writeFileSync(configPath, YAML.stringify(yaml));
  const nodeArgs = [...(launch.nodeArgs ?? []), ...(launch.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${launch.cpuProfDir}`] : [])];
  const entry = launch.mode === 'dist' ? [join(REPO_ROOT, 'dist/cli.js')] : ['--import', 'tsx', join(REPO_ROOT, 'src/cli.ts')];
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('WAL_')) env[k] = v;
  const child = spawn(process.execPath, [...nodeArgs, ...entry, '-c', configPath], { cwd: REPO_ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
  track(child);
  const exited = new Promise<number | null>((resolveExit) =>
    child.once('exit', (code) => {
      rmSync(dir, { recursive: true, force: true });
      resolveExit(code);
    }),
  );

  const records: Record<string, unknown>[] = [];
  let tail = '';
  let stderrText = '';
  let onStreaming: ((at: number) => void) | undefined;
  const streaming = new Promise<number>((resolveStreaming) => (onStreaming = resolveStreaming));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    const at = nowMs();
    stderrText = (stderrText + chunk).slice(-4000);
    tail += chunk;
    let nl: number;
    while ((nl = tail.indexOf('\n')) !== -1) {
      const line = tail.slice(0, nl);
      tail = tail.slice(nl + 1);
      if (!line.startsWith('{')) continue;
      try {
        const record = JSON.parse(line) as Record<string, unknown>;
        records.push(record);
        if (record.msg === 'replication streaming') onStreaming?.(at);
      } catch {
        // not a log record
      }
    }
  });

  const stop = async (timeoutMs = 30_000): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };

  let timer: NodeJS.Timeout | undefined;
  const streamingAt = await Promise.race([
    streaming,
    exited.then((code) => {
      throw new Error(`daemon exited with ${code} before streaming:\n${stderrText}`);
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`daemon not streaming after 60 s:\n${stderrText}`)), 60_000);
    }),
  ]).catch(async (err: unknown) => {
    child.kill('SIGKILL');
    await exited;
    throw err;
  });
  clearTimeout(timer);

  return {
    pid: child.pid!,
    streamingAt,
    memory: () => readMemory(child.pid!),
    problems: () => records.filter((r) => r.level !== 'info' && r.level !== 'debug' && r.level !== 'trace'),
    stop,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
