/**
 * What every bench script shares: building the daemon, opening the environment (private cluster,
 * nats-server), cleaning up on exit or Ctrl-C, and the flags about the daemon itself.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { killTracked } from './children.js';
import { REPO_ROOT, type DaemonLaunch } from './daemon.js';
import { openEnv, type BenchEnv } from './env.js';
import { resumeAllWalsenders } from './walsender.js';

/** parseArgs options for the flags every script takes. */
export const COMMON_OPTIONS = {
  runs: { type: 'string', default: '3' },
  json: { type: 'boolean', default: false },
  tsx: { type: 'boolean', default: false },
  'no-build': { type: 'boolean', default: false },
  'cpu-prof': { type: 'string' },
  'daemon-node-args': { type: 'string' },
  quiet: { type: 'boolean', default: false },
} as const;

export interface CommonFlags {
  tsx: boolean;
  'no-build': boolean;
  'cpu-prof'?: string | undefined;
  'daemon-node-args'?: string | undefined;
  baseline?: string | undefined;
  quiet: boolean;
}

export function positive(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag} expects a positive number, got ${text}`);
  return n;
}

export function daemonLaunch(flags: CommonFlags): DaemonLaunch {
  const cpuProfDir = flags['cpu-prof'] ? resolve(flags['cpu-prof']) : undefined;
  if (cpuProfDir) mkdirSync(cpuProfDir, { recursive: true });
  const nodeArgs = flags['daemon-node-args']?.split(/\s+/).filter(Boolean) ?? [];
  return { mode: flags.tsx ? 'tsx' : 'dist', nodeArgs, ...(cpuProfDir ? { cpuProfDir } : {}) };
}

export function progressLog(flags: CommonFlags): (message: string) => void {
  return flags.quiet ? () => {} : (message: string) => process.stderr.write(`[bench] ${message}\n`);
}

/** Builds the daemon (unless told not to), opens the environment, runs `body`, always cleans up. */
export async function withBenchEnv<T>(flags: CommonFlags, body: (env: BenchEnv) => Promise<T>): Promise<T> {
  const log = progressLog(flags);
  const launch = daemonLaunch(flags);
  if (launch.mode === 'dist' && !flags['no-build']) build(log);
  const baseline = flags.baseline ? resolve(flags.baseline) : undefined;
  if (baseline && !existsSync(join(baseline, 'dist/cli.js'))) throw new Error(`--baseline ${baseline}: no dist/cli.js there (build that checkout first)`);
  const env = await openEnv({ launch, log, ...(baseline ? { baseline } : {}) });
  let closed = false;
  const cleanup = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    resumeAllWalsenders();
    killTracked();
    await env.close().catch((err: unknown) => process.stderr.write(`[bench] cleanup failed: ${String(err)}\n`));
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    process.stderr.write(`[bench] ${signal}: cleaning up\n`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', () => {
    resumeAllWalsenders();
    killTracked();
  });
  try {
    return await body(env);
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function build(log: (message: string) => void): void {
  log('npm run build');
  const result = spawnSync('npm', ['run', 'build', '--silent'], { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  if (result.status !== 0) throw new Error(`npm run build failed (exit ${result.status}); fix the build or pass --tsx`);
}
