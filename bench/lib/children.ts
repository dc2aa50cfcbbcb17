/** Child processes a benchmark started, so an interrupted run can kill them all (by pid). */
import type { ChildProcess } from 'node:child_process';

const running = new Set<ChildProcess>();

export function track(child: ChildProcess): void {
  running.add(child);
  child.once('exit', () => running.delete(child));
}

export function killTracked(): void {
  for (const child of running) child.kill('SIGKILL');
}
