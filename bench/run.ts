/**
 * `npm run bench`: every workload against the machine's PostgreSQL and a private nats-server,
 * medians of 3 runs, one table. Flags: see bench/lib/runner.ts (--runs, --only, --json, --tsx,
 * --no-build, --cpu-prof <dir>, --scale, --live-seconds, --live-rate, --quiet).
 */
import { workloads as catchup } from './catchup.js';
import { workloads as live } from './live.js';
import { workloads as memory } from './memory.js';
import { runBench } from './lib/runner.js';

await runBench([...catchup, ...live, ...memory], process.argv.slice(2));
