/**
 * Runs the broker-outage tests several times and prints their figures per case (issue 9: "the
 * figures of 5 runs per broker"). Not part of CI: each run restarts brokers and takes 20-60 s.
 *
 *   npx tsx scripts/outage-runs.ts              5 runs of every case
 *   npx tsx scripts/outage-runs.ts 3 rabbitmq   3 runs of the cases whose name contains "rabbitmq"
 *
 * Each test prints one `OUTAGE {json}` line (test/support/outage.ts); a run that fails is reported
 * with its output tail and counts as failed.
 */
import { spawnSync } from 'node:child_process';
import type { OutageFigures } from '../test/support/outage.js';

interface Case {
  readonly name: string;
  readonly file: string;
  readonly pattern: string;
}

const CASES: readonly Case[] = [
  { name: 'nats: server killed and restarted', file: 'test/integration/nats-faults.test.ts', pattern: 'nats-server killed and restarted' },
  { name: 'kafka: cluster killed and restarted', file: 'test/integration/kafka-faults.test.ts', pattern: 'killed and restarted' },
  { name: 'google_pubsub: emulator killed and restarted', file: 'test/integration/pubsub-faults.test.ts', pattern: 'killed and restarted' },
  { name: 'rabbitmq: connection closed by the server', file: 'test/integration/rabbitmq-faults.test.ts', pattern: "closes the daemon's connection" },
  { name: 'rabbitmq: private node stopped and started', file: 'test/integration/rabbitmq-faults.test.ts', pattern: 'private RabbitMQ node stopped' },
];

const runs = Number(process.argv[2] ?? 5);
const filter = process.argv[3] ?? '';
const selected = CASES.filter((c) => c.name.includes(filter));
if (!(runs > 0) || selected.length === 0) {
  console.error('usage: tsx scripts/outage-runs.ts [runs] [case filter]');
  process.exit(2);
}

const fmt = (value: number | null): string => (value === null ? '   -' : value.toFixed(2).padStart(5));
let failed = 0;
for (const c of selected) {
  const figures: OutageFigures[] = [];
  for (let run = 1; run <= runs; run++) {
    const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', `--test-name-pattern=${c.pattern}`, c.file], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    const output = `${result.stdout}${result.stderr}`;
    const line = /OUTAGE (\{.*\})/.exec(output)?.[1];
    if (result.status !== 0 || line === undefined) {
      failed++;
      console.log(`${c.name}, run ${run}: FAILED (exit ${result.status})\n${output.slice(-3000)}`);
      continue;
    }
    figures.push(JSON.parse(line) as OutageFigures);
  }
  console.log(`\n${c.name}: ${figures.length} of ${runs} runs passed`);
  console.log('  run  /ready 503 s  error log s  caught up s  outage ms  changes  reconnects');
  figures.forEach((f, i) => {
    console.log(`  ${String(i + 1).padStart(3)}  ${fmt(f.readySeconds).padStart(12)}  ${fmt(f.errorLogSeconds).padStart(11)}  ${fmt(f.catchUpSeconds).padStart(11)}  ${String(f.outageMs ?? '-').padStart(9)}  ${String(f.changes).padStart(7)}  ${f.reconnectsBefore} → ${f.reconnectsAfter}`);
  });
}
process.exit(failed === 0 ? 0 : 1);
