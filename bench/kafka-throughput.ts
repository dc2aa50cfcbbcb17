/**
 * Quick Kafka throughput check: one 100,000-row transaction through the daemon (run from src/ with
 * tsx, as the integration tests do) into librdkafka's mock cluster. Timed from COMMIT until the
 * slot's confirmed_flush_lsn reaches the commit (the daemon confirms only what Kafka acknowledged);
 * CPU is the daemon process's user+system time over the same span (/proc/<pid>/stat).
 *
 * Run: node --import tsx bench/kafka-throughput.ts [--runs 3] [--rows 100000]
 */
import { readFileSync } from 'node:fs';
import { databaseSection, startDaemon } from '../test/support/daemon.js';
import { startKafkaMock } from '../test/support/kafka.js';
import { createTestDatabase } from '../test/support/postgres.js';
import { waitFor } from '../test/support/ports.js';
import { parseLsn } from '../src/sources/postgres/pgoutput.js';

const args = process.argv.slice(2);
const flag = (name: string, fallback: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const runs = flag('runs', 3);
const rows = flag('rows', 100_000);

/** utime + stime of a process, seconds. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const results: { seconds: number; cpu: number }[] = [];
for (let run = 1; run <= runs; run++) {
  const [db, mock] = await Promise.all([createTestDatabase('wlkbench'), startKafkaMock()]);
  try {
    await db.sql('CREATE TABLE t (id bigint PRIMARY KEY, name text, amount numeric, at timestamptz, doc jsonb, flag boolean)');
    const slot = db.slotName('bench');
    const daemon = await startDaemon({
      listener: { slotName: slot, publication: 'bench_pub' },
      database: databaseSection(db),
      publisher: { type: 'kafka', address: mock.bootstrap, topic: 'bench' },
    });
    try {
      const pid = daemon.child.pid!;
      const cpuBefore = cpuSeconds(pid);
      const started = performance.now();
      await db.sql(`INSERT INTO t SELECT g, 'name ' || g, g * 1.5, now(), jsonb_build_object('g', g, 'tag', 'x'), g % 2 = 0 FROM generate_series(1, ${rows}) AS g`);
      const lsn = (await db.sql<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn')).rows[0]!.lsn;
      await waitFor('slot confirmed past the commit', async () => {
        const confirmed = await db.confirmedFlush(slot);
        return confirmed !== null && parseLsn(confirmed) >= parseLsn(lsn);
      }, 600_000, 50);
      const seconds = (performance.now() - started) / 1000;
      const cpu = cpuSeconds(pid) - cpuBefore;
      results.push({ seconds, cpu });
      console.log(`run ${run}: ${rows} rows in ${seconds.toFixed(2)} s = ${Math.round(rows / seconds)} rows/s; daemon CPU ${cpu.toFixed(2)} s = ${((cpu * 100_000) / rows).toFixed(2)} CPU-s per 100k rows`);
    } finally {
      await daemon.stop();
    }
  } finally {
    await Promise.all([db.drop(), mock.stop()]);
  }
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`median: ${Math.round(rows / median(results.map((r) => r.seconds)))} rows/s, ${median(results.map((r) => (r.cpu * 100_000) / rows)).toFixed(2)} CPU-s per 100k rows`);
