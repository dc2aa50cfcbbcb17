/** Memory figures of a process from /proc/<pid>/status (Linux). */
import { readFileSync } from 'node:fs';

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
