#!/usr/bin/env node
// Runs the test suite with node:test. Files are listed explicitly (on Node 20 a quoted glob finds nothing).
// Usage: node test/run.mjs [unit|integration|faults|pg18|all] [extra files...]
//   pg18: the integration tests that talk to PostgreSQL, against an embedded PostgreSQL 18.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';

const suites = { unit: ['test/unit'], integration: ['test/integration'], faults: ['test/faults'], pg18: ['test/integration'], all: ['test/unit', 'test/integration'] };
const arg = process.argv[2] ?? 'all';
const extra = process.argv.slice(3);
const dirs = suites[arg];
if (!dirs) {
  console.error(`unknown suite ${arg}; expected one of ${Object.keys(suites).join(', ')}`);
  process.exit(2);
}
const files = [];
const walk = (dir) => {
  let entries;
  try { entries = readdirSync(dir).sort(); } catch { return; }
  for (const name of entries) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (name.endsWith('.test.ts')) files.push(path);
  }
};
dirs.forEach(walk);
files.push(...extra);
// pg18: the files whose subject differs between PostgreSQL versions (values and their text forms,
// pgoutput, catalogs, slots, publications, server errors), run again against PostgreSQL 18. Broker,
// consumer and fault-timing files test the same daemon code whatever the server, so they run once.
const PG18 = [
  'compat-e2e', 'fidelity-e2e', 'values-text', 'postgres-edges', 'postgres-setup', 'publication-scope',
  'slot-loss', 'stream-errors', 'torture-e2e', 'ops-commands', 'nats-e2e', 'typegen', 'outbox-nats', 'ha', 'snapshots-nats',
].map((name) => join('test', 'integration', `${name}.test.ts`));
for (const f of PG18) if (arg === 'pg18' && !files.includes(f)) {
  console.error(`pg18 list names ${f}, which does not exist`);
  process.exit(1);
}
const selected = arg === 'pg18' ? files.filter((f) => PG18.includes(f) || extra.includes(f)) : files;
if (selected.length === 0) {
  console.error('no test files found');
  process.exit(1);
}

const env = { ...process.env };
let server;
if (arg === 'pg18') {
  server = spawn(process.execPath, ['--import', 'tsx', 'test/support/pg18-server.ts'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const line = await new Promise((resolve, reject) => {
    createInterface({ input: server.stdout }).once('line', resolve);
    server.once('exit', (code) => reject(new Error(`embedded PostgreSQL 18 did not start (exit ${code})`)));
  });
  const info = JSON.parse(line);
  console.log(`# integration tests against embedded PostgreSQL ${info.version} on ${info.host}:${info.port}`);
  Object.assign(env, { PGHOST_TEST: info.host, PGPORT_TEST: String(info.port), PGUSER_TEST: info.user, PGPASSWORD_TEST: info.password });
}
// Two files at a time: each file has its own databases, slots, streams, queues and private servers,
// and most of a file's time is waiting on servers and daemons. WL_TEST_CONCURRENCY=1 runs one by one.
const concurrency = Number(process.env.WL_TEST_CONCURRENCY ?? 2);
const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', `--test-concurrency=${concurrency}`, ...selected], { stdio: 'inherit', env });
if (server) {
  server.stdin.end();
  await new Promise((resolve) => server.once('exit', resolve));
}
process.exit(result.status ?? 1);
