/**
 * Holding a walsender still (SIGSTOP) while the backlog is written, for a contender that must
 * connect before it (postgres-subscribe: its temporary slot lives only as long as its connection).
 *
 * A process stopped while it holds a lock or spinlock would hang the cluster, so it is stopped only
 * while it waits for WAL on its latch, which holds none: its wait event is read before and after
 * the SIGSTOP, and it is let go and tried again if it was busy. The private cluster runs with
 * wal_sender_timeout = 0, so the walsender does not give up on its silent client once resumed.
 */
import type { BenchEnv } from './env.js';
import { readState } from './proc.js';

const IDLE_WAITS = new Set(['WalSenderWaitForWAL', 'WalSenderMain']);
const paused = new Set<number>();

async function idle(env: BenchEnv, pid: number): Promise<boolean> {
  const r = await env.admin.query<{ wait_event: string | null }>('SELECT wait_event FROM pg_stat_activity WHERE pid = $1', [pid]);
  return IDLE_WAITS.has(r.rows[0]?.wait_event ?? '');
}

export async function pauseWalsender(env: BenchEnv, pid: number): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    if (await idle(env, pid)) {
      process.kill(pid, 'SIGSTOP');
      paused.add(pid);
      for (let i = 0; i < 100 && readState(pid) !== 'T'; i++) await new Promise((r) => setTimeout(r, 1));
      if (readState(pid) === 'T' && (await idle(env, pid))) return;
      resumeWalsender(pid);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`walsender ${pid} never idle long enough to be paused`);
}

export function resumeWalsender(pid: number): void {
  if (!paused.delete(pid)) return;
  try {
    process.kill(pid, 'SIGCONT');
  } catch {
    // already gone
  }
}

/** Lets every paused walsender go (cleanup: a stopped process cannot act on a shutdown signal). */
export function resumeAllWalsenders(): void {
  for (const pid of [...paused]) resumeWalsender(pid);
}
