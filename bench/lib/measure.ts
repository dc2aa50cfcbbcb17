/**
 * What one contender's drain of one backlog yields, and the timed window it is taken over.
 *
 * - seconds: from the contender's "streaming started" signal to the moment the bench saw the last
 *   row arrive (how each contender signals both: bench/README.md).
 * - cpuSeconds: utime+stime+cutime+cstime of the contender process (/proc/<pid>/stat) at the end
 *   minus at the start of that window: process start-up and module loading are left out.
 * - mainThreadCpuSeconds: utime+stime of the contender's main thread alone over the same window;
 *   cpuSeconds minus this is the CPU of its other threads (for Node: V8's optimizing compiler and
 *   garbage-collector helpers, which work in the background, and libuv's thread pool).
 * - walsenderCpuSeconds: the whole life of the walsender backend serving the contender (it starts
 *   with the contender's replication connection; its start-up costs a few milliseconds).
 * - brokerCpuSeconds: nats-server (or RabbitMQ's beam.smp) over the same window as cpuSeconds.
 * - peakRssMb: VmHWM of the contender process at the end (its peak over its whole life).
 */
import { mainThreadCpu, readMemory, totalCpu } from './proc.js';

export interface DrainFigures {
  seconds: number;
  cpuSeconds: number;
  mainThreadCpuSeconds?: number;
  walsenderCpuSeconds?: number;
  brokerCpuSeconds?: number;
  peakRssMb?: number;
  notes: string[];
}

/** The start of a timed window: when streaming began and the CPU counters at that point. */
export class Window {
  private readonly cpu: number;
  private readonly mainCpu: number | undefined;
  private readonly brokerCpu: number | undefined;

  /** `at`: performance.now() when the contender signalled that it streams. */
  constructor(readonly at: number, private readonly pid: number, private readonly brokerPid?: number) {
    this.cpu = totalCpu(pid) ?? NaN;
    this.mainCpu = mainThreadCpu(pid);
    this.brokerCpu = brokerPid === undefined ? undefined : totalCpu(brokerPid);
  }

  /** Figures at the end of the window, while the contender (and its walsender) are still alive. */
  end(doneAt: number, walsenderPid: number | undefined): DrainFigures {
    const cpu = totalCpu(this.pid);
    const main = mainThreadCpu(this.pid);
    const broker = this.brokerPid === undefined ? undefined : totalCpu(this.brokerPid);
    const walsender = walsenderPid === undefined ? undefined : totalCpu(walsenderPid);
    const memory = readMemory(this.pid);
    const notes: string[] = [];
    if (cpu === undefined) notes.push('contender process gone before its CPU could be read');
    if (walsenderPid !== undefined && walsender === undefined) notes.push(`walsender ${walsenderPid} gone before its CPU could be read`);
    return {
      seconds: (doneAt - this.at) / 1000,
      cpuSeconds: (cpu ?? NaN) - this.cpu,
      ...(main !== undefined && this.mainCpu !== undefined ? { mainThreadCpuSeconds: main - this.mainCpu } : {}),
      ...(walsender !== undefined ? { walsenderCpuSeconds: walsender } : {}),
      ...(broker !== undefined && this.brokerCpu !== undefined ? { brokerCpuSeconds: broker - this.brokerCpu } : {}),
      ...(memory ? { peakRssMb: memory.peakMb } : {}),
      notes,
    };
  }
}

/** Polls `probe` every `intervalMs` until it returns true; resolves with performance.now() of that poll. */
export async function pollUntil(probe: () => Promise<boolean> | boolean, timeoutMs: number, what: string, intervalMs = 20): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await probe()) return performance.now();
    if (performance.now() > deadline) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
