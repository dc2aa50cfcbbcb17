/**
 * Runs the real daemon (src/cli.ts through tsx) as a child process with a generated YAML config,
 * the way users run it. Collects stdout (events for the stdout publisher) and stderr (JSON logs).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import YAML from 'yaml';
import { waitFor } from './ports.js';

export const REPO_ROOT = resolve(import.meta.dirname, '../..');
export const CLI = join(REPO_ROOT, 'src/cli.ts');

export interface DaemonProcess {
  readonly child: ChildProcess;
  readonly configPath: string;
  /** Everything written to stdout so far. */
  stdout(): string;
  /** Everything written to stderr so far (JSON log lines). */
  stderr(): string;
  /** Parsed JSON log records so far. */
  logs(): Record<string, unknown>[];
  /** Parsed stdout lines (events of the stdout publisher). */
  events(): Record<string, unknown>[];
  /** Resolves when a log record with this `msg` appears. */
  waitForLog(msg: string | RegExp, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  /** SIGTERM, then wait for exit (SIGKILL after `timeoutMs`). */
  stop(timeoutMs?: number): Promise<number | null>;
  /** SIGKILL (kill -9) and wait. */
  kill(): Promise<void>;
}

export interface StartOptions {
  env?: Record<string, string>;
  /** Raw YAML text instead of an object (for bad-config tests). */
  rawConfig?: string;
  /** Pass these CLI args instead of `-c <config>`. */
  args?: string[];
  /** Wait for the "replication streaming" log line before resolving (default true). */
  waitForStreaming?: boolean;
}

/** Deep-merged over defaults: JSON logs at info level, 1s heartbeat. */
export async function startDaemon(config: Record<string, unknown> | null, options: StartOptions = {}): Promise<DaemonProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'wl-daemon-'));
  const configPath = join(dir, 'config.yml');
  const text = options.rawConfig ?? YAML.stringify(withDefaults(config ?? {}));
  writeFileSync(configPath, text);
  const args = options.args ?? ['-c', configPath];
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('WAL_')) env[k] = v;
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: REPO_ROOT, env: { ...env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((resolveExit) => child.once('exit', (code) => resolveExit(code)));
  void exited.then(() => rmSync(dir, { recursive: true, force: true }));
  const parseLines = (text: string): Record<string, unknown>[] =>
    text
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          return { unparsable: l };
        }
      });
  const proc: DaemonProcess = {
    child,
    configPath,
    stdout: () => out,
    stderr: () => err,
    logs: () => parseLines(err),
    events: () => parseLines(out),
    exited,
    waitForLog: (msg, timeoutMs = 30_000) =>
      waitFor(`log ${String(msg)}\n--- daemon stderr so far ---\n${err.slice(-3000)}`, () => {
        if (child.exitCode !== null) throw new Error(`daemon exited with ${child.exitCode}: ${err.slice(-2000)}`);
        return proc.logs().find((r) => (typeof msg === 'string' ? r.msg === msg : msg.test(String(r.msg))));
      }, timeoutMs),
    async stop(timeoutMs = 30_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
  if (options.waitForStreaming ?? (options.rawConfig === undefined && options.args === undefined)) {
    try {
      await proc.waitForLog('replication streaming', 60_000);
    } catch (e) {
      await proc.kill();
      throw e;
    }
  }
  return proc;
}

function withDefaults(config: Record<string, unknown>): Record<string, unknown> {
  const defaults = { listener: { heartbeatInterval: '1s' }, logger: { level: 'info', fmt: 'json' } };
  return merge(defaults, config);
}

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] = isObject(prev) && isObject(v) ? merge(prev, v) : v;
  }
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The `database` section for a test database. */
export function databaseSection(db: { name: string; host: string; port: number; user: string; password?: string | undefined }): Record<string, unknown> {
  return { host: db.host, port: db.port, name: db.name, user: db.user, ...(db.password ? { password: db.password } : {}) };
}

/** Runs a one-shot CLI command (e.g. `dead-letters replay -c …`) to its exit. */
export function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolveRun) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('exit', (code) => resolveRun({ code, stdout, stderr }));
  });
}
