/**
 * Summarises V8 CPU profiles by self time: top functions, files and packages.
 * Usage: node --import tsx bench/profile-summary.ts <dir or .cpuprofile files...> [--top 25]
 * (profiles come from `npm run bench -- --only a,daemon-nats --runs 1 --cpu-prof /tmp/prof`, one directory per drain).
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { formatProfileSummary, summariseProfiles } from './lib/profile.js';

const { values, positionals } = parseArgs({ options: { top: { type: 'string', default: '25' } }, allowPositionals: true });
const files = positionals.flatMap((p) =>
  statSync(p).isDirectory() ? readdirSync(p).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(p, f)) : [p],
);
if (files.length === 0) {
  process.stderr.write('usage: node --import tsx bench/profile-summary.ts <dir or .cpuprofile files...> [--top 25]\n');
  process.exit(2);
}
process.stdout.write(`${formatProfileSummary(summariseProfiles(files), Number(values.top))}\n`);
