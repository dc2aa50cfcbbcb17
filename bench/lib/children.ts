/**
 * Child processes of the bench: every one is tracked so that an interrupted run kills them (by
 * pid), and their output lines can be awaited.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

const running = new Set<ChildProcess>();

export function track(child: ChildProcess): void {
  running.add(child);
  child.once('exit', () => running.delete(child));
}

export function killTracked(): void {
  for (const child of running) child.kill('SIGKILL');
}

export interface LineChildOptions extends SpawnOptions {
  /** Every line of stdout and stderr, with performance.now() when its chunk arrived. */
  onLine?: (line: string, at: number) => void;
  /** Takes stdout as raw chunks instead of lines (a stream of events, not messages for the bench). */
  onStdout?: (chunk: Buffer) => void;
}

const HISTORY_LINES = 200;

/** A line of output and performance.now() when the chunk holding it arrived. */
export interface Line {
  text: string;
  at: number;
}

/** A child whose stdout and stderr are read as lines; keeps the last few kB of stderr for errors. */
export class LineChild {
  readonly process: ChildProcess;
  readonly exited: Promise<number | null>;
  private stderrTail = '';
  /** Recent lines, so that a line printed before waitLine() is called is still found. */
  private readonly history: Line[] = [];
  private readonly waiters = new Set<{ test: (line: string) => boolean; resolve: (line: Line) => void }>();

  constructor(command: string, args: string[], options: LineChildOptions = {}) {
    const { onLine, onStdout, ...spawnOptions } = options;
    this.process = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...spawnOptions });
    track(this.process);
    this.exited = new Promise((resolve) => this.process.once('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))));
    this.process.once('error', () => {});
    if (onStdout) this.process.stdout?.on('data', onStdout);
    for (const stream of onStdout ? [this.process.stderr] : [this.process.stdout, this.process.stderr]) {
      let tail = '';
      stream?.setEncoding('utf8').on('data', (chunk: string) => {
        const at = performance.now();
        if (stream === this.process.stderr) this.stderrTail = (this.stderrTail + chunk).slice(-4000);
        tail += chunk;
        let nl: number;
        while ((nl = tail.indexOf('\n')) !== -1) {
          const line = tail.slice(0, nl);
          tail = tail.slice(nl + 1);
          onLine?.(line, at);
          this.history.push({ text: line, at });
          if (this.history.length > HISTORY_LINES) this.history.shift();
          for (const w of this.waiters) if (w.test(line)) w.resolve({ text: line, at });
        }
      });
    }
  }

  get pid(): number {
    return this.process.pid!;
  }

  get stderr(): string {
    return this.stderrTail.trim();
  }

  /** Resolves with the first line (stdout or stderr) matching `test`; rejects if the child exits first or on timeout. */
  waitLine(test: RegExp | ((line: string) => boolean), timeoutMs: number, what: string): Promise<Line> {
    const match = typeof test === 'function' ? test : (line: string) => test.test(line);
    let timer: NodeJS.Timeout | undefined;
    let waiter: { test: (line: string) => boolean; resolve: (line: Line) => void } | undefined;
    const seen = this.history.find((l) => match(l.text));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise<Line>((resolve, reject) => {
      waiter = { test: match, resolve };
      this.waiters.add(waiter);
      timer = setTimeout(() => reject(new Error(`no ${what} after ${Math.round(timeoutMs / 1000)} s${this.stderr ? `:\n${this.stderr}` : ''}`)), timeoutMs);
      void this.exited.then((code) => reject(new Error(`exited with ${code} before ${what}${this.stderr ? `:\n${this.stderr}` : ''}`)));
    }).finally(() => {
      clearTimeout(timer);
      if (waiter) this.waiters.delete(waiter);
    });
  }

  /** Sends `signal`, waits for the exit (SIGKILL after `timeoutMs`), returns the exit code. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 30_000): Promise<number | null> {
    if (this.process.exitCode === null && this.process.signalCode === null) this.process.kill(signal);
    const timer = setTimeout(() => this.process.kill('SIGKILL'), timeoutMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}
