/**
 * One workload in one round: the table and its starting rows, one slot per contender at the same
 * WAL point (the first slot is created, the others are copies of it), the backlog, then each
 * contender drains it in turn, in the round's order.
 */
import { readFileSync } from 'node:fs';
import { createPeerContender, type Contender, type DrainContext } from './contenders.js';
import { createDaemonContender } from './daemon-contenders.js';
import { currentLsn, dropSlot, waitFlushed, type BenchEnv } from './env.js';
import type { DrainFigures } from './measure.js';
import { PEER_CONTENDERS, type ContenderName, type DaemonContenderName, type PeerContenderName } from './names.js';
import type { WorkloadSpec } from './workloads.js';


export interface Measurement extends Partial<DrainFigures> {
  workload: WorkloadSpec['key'];
  contender: ContenderName;
  round: number;
  /** Place in the round's order (0 = first). */
  position: number;
  rows: number;
  rowsPerSecond?: number;
  /** 1-minute load average of the machine when the drain started (the machine is shared). */
  loadAverage?: number;
  /** What the walsender decoded and spilled to disk for this slot (pg_stat_replication_slots), MB. */
  decodedMb?: number;
  spilledMb?: number;
  error?: string;
  notes: string[];
}

function createContender(name: ContenderName): Contender {
  return (PEER_CONTENDERS as readonly string[]).includes(name)
    ? createPeerContender(name as PeerContenderName)
    : createDaemonContender(name as DaemonContenderName);
}

export interface RoundOptions {
  env: BenchEnv;
  workload: WorkloadSpec;
  round: number;
  /** Contenders in this round's order. */
  order: readonly ContenderName[];
  scale: number;
  peerDir: string;
}

export async function runWorkloadRound(options: RoundOptions): Promise<Measurement[]> {
  const { env, workload, round, order } = options;
  const rows = Math.max(1, Math.round(workload.rows * options.scale));
  const tag = `${workload.key}_r${round}`;
  const table = `t_${tag}`;
  const contenders = order.map((name) => ({ name, contender: createContender(name), slot: `bench_${tag}_${name.replace(/\W/g, '_')}` }));
  const context = (slot: string, endLsn: string): DrainContext => ({
    env,
    workload,
    round,
    rows,
    txns: workload.txns(rows),
    endLsn,
    slot,
    tag,
    timeoutMs: 60_000 + rows,
    peerDir: options.peerDir,
  });
  const measurements: Measurement[] = [];
  const finished = new Set<Contender>();
  const finish = async (c: (typeof contenders)[number]): Promise<void> => {
    if (finished.has(c.contender)) return;
    finished.add(c.contender);
    await c.contender.cleanup().catch(() => {});
    if (c.contender.usesSlot) await dropSlot(env, c.slot);
  };
  try {
    const setupStarted = performance.now();
    for (const statement of workload.setup(table, rows)) await env.admin.query(statement);
    await workload.verify?.(env.admin, table, rows);
    const slotted = contenders.filter((c) => c.contender.usesSlot);
    if (slotted.length > 0) {
      await env.admin.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slotted[0]!.slot]);
      for (const c of slotted.slice(1)) await env.admin.query('SELECT pg_copy_logical_replication_slot($1, $2)', [slotted[0]!.slot, c.slot]);
    }
    for (const c of contenders) await c.contender.prepare?.(context(c.slot, ''));

    const backlogStarted = performance.now();
    // The backlog is not timed: no need to wait for a WAL flush at each commit.
    await env.admin.query('SET synchronous_commit = off');
    for (const statement of workload.backlog(table, rows)) await env.admin.query(statement);
    await env.admin.query('RESET synchronous_commit');
    const endLsn = await currentLsn(env);
    await waitFlushed(env, endLsn);
    env.log(
      `${workload.key} ${workload.name} round ${round}: setup ${seconds(backlogStarted - setupStarted)} s, backlog of ${rows} rows ` +
        `${seconds(performance.now() - backlogStarted)} s (WAL up to ${endLsn}); order ${order.join(', ')}`,
    );

    for (const [position, c] of contenders.entries()) {
      const base = { workload: workload.key, contender: c.name, round, position, rows, loadAverage: loadAverage() };
      try {
        const figures = await c.contender.drain(context(c.slot, endLsn));
        const m: Measurement = { ...base, ...figures, rowsPerSecond: rows / figures.seconds, ...(c.contender.usesSlot ? await slotBytes(env, c.slot) : {}) };
        measurements.push(m);
        env.log(`  ${c.name.padEnd(22)} ${describe(m)}${m.notes.length ? ` [${m.notes.join('; ')}]` : ''}`);
      } catch (err) {
        measurements.push({ ...base, error: (err as Error).message, notes: [] });
        env.log(`  ${c.name.padEnd(22)} FAILED: ${(err as Error).message}`);
      } finally {
        await finish(c);
      }
    }
  } finally {
    for (const c of contenders) await finish(c);
    await env.admin.query(`DROP TABLE IF EXISTS ${table}`).catch(() => {});
    await env.admin.query(`DROP PROCEDURE IF EXISTS fill_${table}`).catch(() => {});
  }
  return measurements;
}

function loadAverage(): number | undefined {
  const value = Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  return Number.isFinite(value) ? value : undefined;
}

async function slotBytes(env: BenchEnv, slot: string): Promise<{ decodedMb?: number; spilledMb?: number }> {
  const r = await env.admin.query<{ total: string; spill: string }>('SELECT total_bytes AS total, spill_bytes AS spill FROM pg_stat_replication_slots WHERE slot_name = $1', [slot]);
  const row = r.rows[0];
  return row ? { decodedMb: Number(row.total) / 1e6, spilledMb: Number(row.spill) / 1e6 } : {};
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(1);
}

function describe(m: Measurement): string {
  const per100k = (v: number | undefined): string => (v === undefined ? '-' : ((v / m.rows) * 1e5).toFixed(2));
  return (
    `${Math.round(m.rowsPerSecond ?? 0).toLocaleString('en-US').padStart(9)} rows/s in ${m.seconds?.toFixed(2)} s, ` +
    `CPU/100k ${per100k(m.cpuSeconds)}` +
    `${m.mainThreadCpuSeconds !== undefined && m.cpuSeconds !== undefined ? ` (other threads ${per100k(m.cpuSeconds - m.mainThreadCpuSeconds)})` : ''}, walsender ${per100k(m.walsenderCpuSeconds)}` +
    `${m.brokerCpuSeconds !== undefined ? `, broker ${per100k(m.brokerCpuSeconds)}` : ''}, peak RSS ${m.peakRssMb?.toFixed(0) ?? '-'} MB` +
    `${m.spilledMb ? `, slot spilled ${m.spilledMb.toFixed(0)} MB` : ''}, load ${m.loadAverage?.toFixed(1) ?? '-'}`
  );
}
