/**
 * The binlog readers on their own (library choice, see src/sources/mysql/binlog-reader.ts): each
 * reads the same 300,000-row transaction from the position before it and counts decoded rows.
 *   @vlasky/zongji          with the options the source uses (exact strings for dates, DECIMAL, JSON)
 *   @powersync/mysql-zongji when installed: `npm install --no-save @powersync/mysql-zongji`
 *                           (not a dependency; npm picks 0.1.0 on Node 20, 0.6.x declares Node >= 24)
 * Figures: rows/s (from start() until the last row) and this process's CPU-seconds per 100k rows.
 *
 * Run: node --import tsx bench/mysql-readers.ts [--runs 3] [--rows 300000]
 */
import { EventEmitter } from 'node:events';
import ZongJi from '@vlasky/zongji';
import { MYSQL, parseRuns, timeDrain, writeBacklog, type Backlog, type DrainFigures } from './lib/mysql-backlog.js';
import { median } from './lib/stats.js';

interface Reader extends EventEmitter {
  start(options: Record<string, unknown>): void;
  stop(): void;
}
type ReaderClass = new (dsn: Record<string, unknown>) => Reader;

async function drain(Reader: ReaderClass, backlog: Backlog, serverId: number, dsn: Record<string, unknown>): Promise<DrainFigures> {
  return timeDrain(backlog.rows, () =>
    new Promise<void>((resolve, reject) => {
      const reader = new Reader({ ...MYSQL, ...dsn });
      let seen = 0;
      reader.on('error', reject);
      reader.on('binlog', (event: { getEventName(): string; rows?: unknown[] }) => {
        if (event.getEventName() !== 'writerows') return;
        seen += event.rows!.length;
        if (seen >= backlog.rows) {
          reader.stop();
          resolve();
        }
      });
      reader.start({
        serverId,
        filename: backlog.start.file,
        position: backlog.start.offset,
        includeEvents: ['tablemap', 'writerows'],
        includeSchema: { [backlog.database]: true },
      });
    }),
  );
}

const { runs, rows } = parseRuns(process.argv.slice(2));
const readers: [string, ReaderClass, Record<string, unknown>][] = [
  ['@vlasky/zongji 0.9 (mysql2)', ZongJi as unknown as ReaderClass, { dateStrings: true, timezone: 'Z', jsonStrings: true, supportBigNumbers: true, bigNumberStrings: true }],
];
try {
  const powersync = (await import('@powersync/mysql-zongji' as string)) as { default: ReaderClass };
  readers.push(['@powersync/mysql-zongji (mysqljs)', powersync.default, { dateStrings: true, supportBigNumbers: true, bigNumberStrings: true }]);
} catch {
  process.stderr.write('[bench] @powersync/mysql-zongji is not installed: npm install --no-save @powersync/mysql-zongji to compare\n');
}
const results = new Map<string, DrainFigures[]>(readers.map(([name]) => [name, []]));
const backlog = await writeBacklog(rows, 'readers');
try {
  for (let run = 1; run <= runs; run++) {
    for (const [i, [name, Reader, dsn]] of readers.entries()) {
      const figures = await drain(Reader, backlog, 910_000 + run * 10 + i, dsn);
      results.get(name)!.push(figures);
      process.stderr.write(`[bench] run ${run} ${name}: ${figures.rowsPerSecond.toFixed(0)} rows/s, ${figures.cpuPer100k.toFixed(2)} CPU-s/100k rows\n`);
    }
  }
} finally {
  await backlog.drop();
}
console.log(`Binlog readers, one ${rows}-row transaction, ${runs} runs (medians)\n`);
console.log('| reader | rows/s | CPU-s per 100k rows | rows/s of each run |\n|---|---|---|---|');
for (const [name, all] of results) {
  console.log(`| ${name} | ${median(all.map((f) => f.rowsPerSecond))!.toFixed(0)} | ${median(all.map((f) => f.cpuPer100k))!.toFixed(2)} | ${all.map((f) => f.rowsPerSecond.toFixed(0)).join(', ')} |`);
}
