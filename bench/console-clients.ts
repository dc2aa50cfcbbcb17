/**
 * Does a stuck live-console client slow the pipeline? (issue 15, "20 slow clients that never read
 * do not change the daemon's throughput by more than noise").
 *
 * For each round, two drains of the same backlog, in alternating order: the daemon (stdout
 * publisher, stdout to /dev/null, console on loopback) with no console client, and with 20 clients
 * that send their GET /events and never read. Each drain: a new slot, the daemon streaming, the
 * clients connected, then one INSERT … SELECT of `--rows` rows (one transaction); the window runs
 * from that commit until /metrics counts every row published. Figures: rows/s over the window and
 * the daemon's CPU-seconds per 100k rows (utime+stime from /proc over the same window), median
 * over the rounds, and how many clients the daemon dropped.
 *
 *   npm run bench:console                      # 5 rounds of 100,000 rows
 *   npm run bench:console -- --rounds 3 --rows 50000 --clients 20
 *
 * Runs on a private PostgreSQL 15 cluster (bench/lib/cluster.ts) and the daemon from src/ through
 * tsx (start-up is outside the window).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { freePort } from '../test/support/ports.js';
import { metricValue } from '../test/support/ops.js';
import { killTracked, track } from './lib/children.js';
import { startPrivateCluster, type PrivateCluster } from './lib/cluster.js';
import { totalCpu } from './lib/proc.js';
import { REPO_ROOT } from './lib/daemon.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    rows: { type: 'string', default: '100000' },
    clients: { type: 'string', default: '20' },
    'cpu-prof': { type: 'string' },
  },
});
const ROUNDS = Number(args.rounds);
const ROWS = Number(args.rows);
const CLIENTS = Number(args.clients);
const DB = 'console_bench';

const log = (message: string): void => void process.stderr.write(`${message}\n`);

interface Drain {
  stuck: number;
  seconds: number;
  rowsPerSecond: number;
  cpuPer100k: number;
  dropped: number;
  /** Median bytes a stuck client was sent before the daemon dropped it (read after the drain). */
  sentPerStuck: number;
}

async function metrics(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  return res.text();
}

function stuckClient(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.write('GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      socket.pause();
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** What a stuck client was sent before the daemon closed it: read it all now (5 s at most). */
function readToEnd(socket: Socket): Promise<number> {
  return new Promise((resolve) => {
    let bytes = 0;
    const timer = setTimeout(() => resolve(NaN), 5_000);
    socket.on('data', (chunk: Buffer) => (bytes += chunk.length));
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(bytes);
    });
    socket.resume();
  });
}

async function drain(cluster: PrivateCluster, round: number, stuck: number): Promise<Drain> {
  const [consolePort, promPort] = [await freePort(), await freePort()];
  const slot = `console_bench_${round}_${stuck}`;
  const dir = mkdtempSync(join(tmpdir(), 'wl-bench-console-'));
  const configPath = join(dir, 'config.yml');
  writeFileSync(
    configPath,
    YAML.stringify({
      listener: { slotName: slot, publication: 'console_bench' },
      logger: { level: 'info', fmt: 'json' },
      database: { host: cluster.host, port: cluster.port, name: DB, user: cluster.user },
      publisher: { type: 'stdout', topic: 'bench' },
      monitoring: { promAddr: `127.0.0.1:${promPort}` },
      console: { addr: `127.0.0.1:${consolePort}`, maxClients: Math.max(50, stuck + 1) },
    }),
  );
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('WAL_')) env[k] = v;
  const child: ChildProcess = spawn(process.execPath, [...(args['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${args['cpu-prof']}/${stuck}-r${round}`] : []), '--import', 'tsx', join(REPO_ROOT, 'src/cli.ts'), '-c', configPath], { cwd: REPO_ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
  track(child);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const sockets: Socket[] = [];
  try {
    const deadline = Date.now() + 60_000;
    while (!stderr.includes('"replication streaming"')) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`daemon did not start: ${stderr.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    for (let i = 0; i < stuck; i++) sockets.push(await stuckClient(consolePort));
    const db = await cluster.client(DB);
    const before = metricValue(await metrics(promPort), 'published_events_total', {}) ?? 0;
    const cpu0 = totalCpu(child.pid!)!;
    const t0 = performance.now();
    await db.query(`INSERT INTO rows (a, b, c, d) SELECT md5(g::text), g, g * 1.5, now() FROM generate_series(1, ${ROWS}) g`);
    await db.end();
    for (;;) {
      const published = metricValue(await metrics(promPort), 'published_events_total', {}) ?? 0;
      if (published - before >= ROWS) break;
      if (child.exitCode !== null) throw new Error(`daemon exited: ${stderr.slice(-2000)}`);
      if (performance.now() - t0 > 300_000) throw new Error(`only ${published - before} of ${ROWS} published after 300 s`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const seconds = (performance.now() - t0) / 1000;
    const cpu = totalCpu(child.pid!)! - cpu0;
    const dropped = metricValue(await metrics(promPort), 'console_clients_closed_total', { reason: 'slow' }) ?? 0;
    const sent = await Promise.all(sockets.map((socket) => readToEnd(socket)));
    return { stuck, seconds, rowsPerSecond: ROWS / seconds, cpuPer100k: (cpu * 100_000) / ROWS, dropped, sentPerStuck: sent.length ? median(sent) : 0 };
  } finally {
    for (const s of sockets) s.destroy();
    child.kill(args['cpu-prof'] ? 'SIGINT' : 'SIGKILL');
    await new Promise((r) => child.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
    const admin = await cluster.client(DB);
    await admin.query('SELECT pg_drop_replication_slot($1) FROM pg_replication_slots WHERE slot_name = $1', [slot]).catch(() => {});
    await admin.end();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

async function main(): Promise<void> {
  const cluster = await startPrivateCluster(log);
  process.once('SIGINT', () => {
    killTracked();
    void cluster.destroy().then(() => process.exit(130));
  });
  try {
    const admin = await cluster.client();
    await admin.query(`CREATE DATABASE ${DB}`);
    await admin.end();
    const db = await cluster.client(DB);
    await db.query('CREATE TABLE rows (id bigserial PRIMARY KEY, a text, b int, c numeric(12,2), d timestamptz)');
    await db.query('CREATE PUBLICATION console_bench FOR TABLE rows');
    await db.end();
    const drains: Drain[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const order = round % 2 ? [0, CLIENTS] : [CLIENTS, 0];
      for (const stuck of order) {
        const d = await drain(cluster, round, stuck);
        drains.push(d);
        log(`round ${round}, ${stuck} stuck clients: ${d.seconds.toFixed(2)} s, ${Math.round(d.rowsPerSecond)} rows/s, ${d.cpuPer100k.toFixed(2)} CPU-s/100k, ${d.dropped} dropped${stuck ? ` (each was sent ${(d.sentPerStuck / 1048576).toFixed(1)} MiB first)` : ''}`);
      }
    }
    const row = (stuck: number): string => {
      const mine = drains.filter((d) => d.stuck === stuck);
      const rates = mine.map((d) => d.rowsPerSecond);
      const cpus = mine.map((d) => d.cpuPer100k);
      return `| ${stuck} | ${Math.round(median(rates))} (${Math.round(Math.min(...rates))}–${Math.round(Math.max(...rates))}) | ${median(cpus).toFixed(2)} (${Math.min(...cpus).toFixed(2)}–${Math.max(...cpus).toFixed(2)}) | ${mine.map((d) => d.dropped).join(', ')} |`;
    };
    console.log(`\n${ROWS.toLocaleString('en')} rows in one transaction, stdout publisher, ${ROUNDS} rounds, median (min–max)\n`);
    console.log('| stuck console clients | rows/s | daemon CPU-s per 100k rows | clients dropped per round |');
    console.log('|---:|---:|---:|---|');
    console.log(row(0));
    console.log(row(CLIENTS));
  } finally {
    await cluster.destroy();
  }
}

await main();
