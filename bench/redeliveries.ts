/**
 * Redeliveries per kill -9 (issue 10 #10): a steady writer inserts rows while the daemon (stdout
 * publisher, default heartbeatInterval) is killed with SIGKILL at the same pseudo-random moments in
 * every run and started again at once. Every event line written by every daemon process is kept;
 * a redelivery is an event id seen again. At the end the writer stops, the last daemon catches up
 * and stops with SIGTERM, and the bench checks that every row arrived.
 *
 *   npm run bench:redeliveries                                  this checkout
 *   npm run bench:redeliveries -- --checkout /work/wt/ops-old   another checkout (its src/cli.ts, its node_modules)
 *   flags: --runs 3 --kills 4 --rate 200 (rows/s, 10 per transaction) --seed 1
 *
 * Runs against the machine's PostgreSQL (test/support/postgres.ts: a private database and slot).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { createTestDatabase, type TestDatabase } from '../test/support/postgres.js';

const { values } = parseArgs({
  options: {
    checkout: { type: 'string', default: resolve(import.meta.dirname, '..') },
    runs: { type: 'string', default: '3' },
    kills: { type: 'string', default: '4' },
    rate: { type: 'string', default: '200' },
    seed: { type: 'string', default: '1' },
  },
});
const checkout = resolve(values.checkout);
const runs = Number(values.runs);
const kills = Number(values.kills);
const rate = Number(values.rate);
const ROWS_PER_TXN = 10;

/** mulberry32: the same kill moments for every checkout. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Daemon {
  child: ChildProcess;
  exited: Promise<number | null>;
  streaming: Promise<void>;
}

function startDaemon(configPath: string, lines: string[]): Daemon {
  const child = spawn(process.execPath, ['--import', 'tsx', join(checkout, 'src/cli.ts'), '-c', configPath], { cwd: checkout, stdio: ['ignore', 'pipe', 'pipe'] });
  let rest = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    const parts = (rest + d).split('\n');
    rest = parts.pop()!;
    lines.push(...parts.filter((l) => l.startsWith('{')));
  });
  let err = '';
  const streaming = new Promise<void>((resolveStreaming, reject) => {
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      if (err.includes('"replication streaming"')) resolveStreaming();
    });
    child.once('exit', (code) => reject(new Error(`daemon exited (${code}) before streaming: ${err.slice(-1500)}`)));
  });
  streaming.catch(() => {});
  return { child, streaming, exited: new Promise((r) => child.once('exit', (code) => r(code))) };
}

async function writer(db: TestDatabase, stop: { now: boolean }): Promise<number> {
  const client = await db.client();
  let next = 1;
  const periodMs = (1000 * ROWS_PER_TXN) / rate;
  const started = Date.now();
  try {
    for (let txn = 0; !stop.now; txn++) {
      await client.query('INSERT INTO items SELECT g, $2 FROM generate_series($1::int, $1::int + $3 - 1) g', [next, 'x'.repeat(100), ROWS_PER_TXN]);
      next += ROWS_PER_TXN;
      const wait = started + (txn + 1) * periodMs - Date.now();
      if (wait > 0) await sleep(wait);
    }
  } finally {
    await client.end();
  }
  return next - 1;
}

async function oneRun(run: number): Promise<{ rows: number; lines: number; unique: number; redeliveries: number; missing: number }> {
  const db = await createTestDatabase('wl_ops_redeliv');
  const dir = mkdtempSync(join(tmpdir(), 'wl-ops-redeliv-'));
  try {
    await db.sql('CREATE TABLE items (id int PRIMARY KEY, note text)');
    const configPath = join(dir, 'config.yml');
    // Default heartbeatInterval (10 s in both versions): the point is what a user gets by default.
    writeFileSync(configPath, YAML.stringify({
      listener: { slotName: db.slotName(), refreshConnection: '1s' },
      logger: { level: 'info', fmt: 'json' },
      database: { host: db.host, port: db.port, name: db.name, user: db.user, ...(db.password ? { password: db.password } : {}) },
      publisher: { type: 'stdout', topic: 'redeliv' },
    }));
    const lines: string[] = [];
    const random = prng(Number(values.seed) * 1000 + run);
    let daemon = startDaemon(configPath, lines);
    await daemon.streaming;
    const stop = { now: false };
    const writing = writer(db, stop);
    for (let k = 0; k < kills; k++) {
      await sleep(3_000 + random() * 6_000);
      daemon.child.kill('SIGKILL');
      await daemon.exited;
      daemon = startDaemon(configPath, lines);
      await daemon.streaming;
    }
    await sleep(3_000 + random() * 6_000);
    stop.now = true;
    const rows = await writing;
    // Let the last daemon catch up, then stop it cleanly.
    const ids = (): Set<number> => new Set(lines.map((l) => (JSON.parse(l) as { data: { id: number } }).data.id));
    for (let i = 0; i < 600 && ids().size < rows; i++) await sleep(100);
    daemon.child.kill('SIGTERM');
    await daemon.exited;
    const eventIds = new Set(lines.map((l) => (JSON.parse(l) as { id: string }).id));
    const rowIds = ids();
    let missing = 0;
    for (let id = 1; id <= rows; id++) if (!rowIds.has(id)) missing++;
    return { rows, lines: lines.length, unique: eventIds.size, redeliveries: lines.length - eventIds.size, missing };
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await db.drop();
  }
}

const results = [];
for (let run = 1; run <= runs; run++) {
  const r = await oneRun(run);
  results.push(r);
  process.stderr.write(`run ${run}: ${r.rows} rows, ${r.lines} event lines, ${r.redeliveries} redeliveries (${(r.redeliveries / kills).toFixed(0)} per kill), ${r.missing} missing\n`);
}
const perKill = results.map((r) => r.redeliveries / kills).sort((a, b) => a - b);
const median = perKill[Math.floor(perKill.length / 2)]!;
console.log(JSON.stringify({ checkout, runs, kills, rateRowsPerS: rate, perKill: perKill.map((x) => Math.round(x)), medianPerKill: Math.round(median), missing: results.reduce((s, r) => s + r.missing, 0), results }));
