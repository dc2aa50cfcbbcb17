/**
 * Catch-up of the MySQL source alone: a 300,000-row transaction already in the binlog, read by
 * createMysqlSource from the position before it into a sink that (a) only counts, (b) also turns
 * every value into JSON with the columns' toJson, as the encoder would. No broker, no pipeline.
 * Figures: rows/s (from open() until the commit) and this process's CPU-seconds per 100k rows.
 *
 * Run: node --import tsx bench/mysql-catchup.ts [--runs 3] [--rows 300000]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { configSchema } from '../src/config/schema.js';
import type { ChangeSink, Row, TableDescriptor, TableHandle, TransactionHandle, TransactionInfo } from '../src/pipeline/change.js';
import { valueAt } from '../src/pipeline/change.js';
import type { MysqlPosition } from '../src/sources/mysql/position.js';
import { createMysqlSource } from '../src/sources/mysql/source.js';
import { MYSQL, parseRuns, timeDrain, writeBacklog, type DrainFigures } from './lib/mysql-backlog.js';
import { median } from './lib/stats.js';

/** Counts rows; with `encode`, also converts every value to JSON text. Never full. */
class CountingSink implements ChangeSink<MysqlPosition> {
  rows = 0;
  bytes = 0;
  commits = 0;
  readonly full = false;
  private onCommit: (() => void) | null = null;
  private readonly tables = new Map<TableHandle, TableDescriptor>();

  constructor(private readonly encode: boolean) {}

  committed(): Promise<void> {
    return new Promise((resolve) => (this.onCommit = resolve));
  }

  table(descriptor: TableDescriptor): TableHandle {
    const handle = { schema: descriptor.schema, table: descriptor.table };
    this.tables.set(handle, descriptor);
    return handle;
  }
  begin(info: TransactionInfo): TransactionHandle {
    return { info };
  }
  insert(_txn: TransactionHandle, table: TableHandle, row: Row): void {
    this.rows++;
    if (!this.encode) return;
    const columns = this.tables.get(table)!.columns;
    for (let i = 0; i < columns.length; i++) {
      const value = valueAt(row, i);
      if (value !== null) this.bytes += columns[i]!.toJson(value as never).length;
    }
  }
  update(): void {}
  delete(): void {}
  truncate(): void {}
  snapshot(): void {}
  message(): void {}
  skip(): void {}
  commit(): void {
    this.commits++;
    this.onCommit?.();
  }
  idle(): void {}
  ready(): Promise<void> {
    return Promise.resolve();
  }
}

async function drainOnce(database: string, start: MysqlPosition, rows: number, encode: boolean, dir: string, run: number): Promise<DrainFigures> {
  const store = join(dir, `pos-${encode ? 'json' : 'count'}-${run}.json`);
  writeFileSync(store, JSON.stringify(start));
  const config = configSchema.parse({
    source: { type: 'mysql' },
    mysql: { ...MYSQL, serverId: 900_000 + run * 2 + (encode ? 1 : 0), databases: [database], positionStore: `file:${store}` },
    publisher: { type: 'stdout', topic: 'bench' },
  });
  const source = createMysqlSource(config, pino({ level: 'silent' }));
  const sink = new CountingSink(encode);
  try {
    return await timeDrain(rows, async () => {
      const done = sink.committed();
      const session = await source.open(sink, new AbortController().signal);
      await done;
      if (sink.rows !== rows) throw new Error(`read ${sink.rows} rows, expected ${rows}`);
      await session.close();
    });
  } finally {
    await source.close();
  }
}

const { runs, rows } = parseRuns(process.argv.slice(2));
const dir = mkdtempSync(join(tmpdir(), 'wl-bench-mysql-'));
const results: { count: DrainFigures[]; encode: DrainFigures[] } = { count: [], encode: [] };
const backlog = await writeBacklog(rows, 'catchup');
try {
  for (let run = 1; run <= runs; run++) {
    for (const encode of [false, true]) {
      const figures = await drainOnce(backlog.database, backlog.start, rows, encode, dir, run);
      (encode ? results.encode : results.count).push(figures);
      process.stderr.write(`[bench] run ${run} ${encode ? 'source + toJson' : 'source only   '}: ${figures.rowsPerSecond.toFixed(0)} rows/s, ${figures.cpuPer100k.toFixed(2)} CPU-s/100k rows\n`);
    }
  }
} finally {
  await backlog.drop();
  rmSync(dir, { recursive: true, force: true });
}
const line = (name: string, all: DrainFigures[]): string =>
  `| ${name} | ${median(all.map((f) => f.rowsPerSecond))!.toFixed(0)} | ${median(all.map((f) => f.cpuPer100k))!.toFixed(2)} | ${all.map((f) => f.rowsPerSecond.toFixed(0)).join(', ')} |`;
console.log(`MySQL source catch-up, one ${rows}-row transaction, ${runs} runs (medians)\n`);
console.log('| sink | rows/s | CPU-s per 100k rows | rows/s of each run |\n|---|---|---|---|');
console.log(line('counts rows', results.count));
console.log(line('converts every value (toJson)', results.encode));
