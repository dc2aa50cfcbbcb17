/** CPU and memory figures of a process from /proc (Linux). */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Clock ticks per second, the unit of the CPU times in /proc/<pid>/stat. */
export const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

export interface ProcCpu {
  /** utime + stime of the process itself, seconds. */
  own: number;
  /** cutime + cstime: CPU of its children that have exited and been waited for, seconds. */
  children: number;
}

/** Parses the CPU fields of a /proc/<pid>/stat line (fields 14–17, counted after the command name). */
export function parseStatCpu(stat: string): ProcCpu {
  // The command name (field 2) is in parentheses and may contain spaces: split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = (i: number): number => Number(fields[i]);
  // fields[0] is field 3 (state), so utime (14) is at 11, stime 12, cutime 13, cstime 14.
  return { own: (ticks(11) + ticks(12)) / CLOCK_TICKS, children: (ticks(13) + ticks(14)) / CLOCK_TICKS };
}

/** CPU of a process (`self` for this one); undefined when it is gone. */
export function readCpu(pid: number | 'self'): ProcCpu | undefined {
  try {
    return parseStatCpu(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * utime + stime of a process's main thread alone (/proc/<pid>/task/<pid>/stat), seconds; undefined
 * when it is gone. The rest of the process's own CPU is its other threads': for Node, V8's
 * background compilers and garbage-collector helpers and libuv's thread pool.
 */
export function mainThreadCpu(pid: number): number | undefined {
  try {
    return parseStatCpu(readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8')).own;
  } catch {
    return undefined;
  }
}

/** utime + stime + cutime + cstime: the process and its waited-for children, seconds. */
export function totalCpu(pid: number | 'self'): number | undefined {
  const cpu = readCpu(pid);
  return cpu ? cpu.own + cpu.children : undefined;
}

export interface ProcMemory {
  /** Resident set size now, MB. */
  rssMb: number;
  /** Peak resident set size since the process started (VmHWM), MB. */
  peakMb: number;
}

/** Reads VmRSS and VmHWM; undefined when the process is gone. */
export function readMemory(pid: number): ProcMemory | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const kb = (field: string): number => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    return match ? Number(match[1]) : NaN;
  };
  return { rssMb: kb('VmRSS') / 1024, peakMb: kb('VmHWM') / 1024 };
}

/** Whether a process exists (a zombie counts as gone: its parent is about to reap it). */
export function alive(pid: number): boolean {
  try {
    return parseState(readFileSync(`/proc/${pid}/stat`, 'utf8')) !== 'Z';
  } catch {
    return false;
  }
}

/** The one-letter state of a /proc/<pid>/stat line (R, S, T, Z, ...). */
export function parseState(stat: string): string {
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}

/** The state letter of a live process, or undefined. */
export function readState(pid: number): string | undefined {
  try {
    return parseState(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Samples VmRSS every `intervalMs` until stopped; keeps every sample. */
export class RssSampler {
  readonly samples: { at: number; rssMb: number }[] = [];
  private readonly timer: NodeJS.Timeout;

  constructor(pid: number, intervalMs = 500) {
    this.timer = setInterval(() => {
      const memory = readMemory(pid);
      if (memory) this.samples.push({ at: Date.now(), rssMb: memory.rssMb });
    }, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Largest sample taken at or after `since` (epoch ms). */
  maxSince(since: number): number | undefined {
    let max: number | undefined;
    for (const s of this.samples) if (s.at >= since && (max === undefined || s.rssMb > max)) max = s.rssMb;
    return max;
  }
}
