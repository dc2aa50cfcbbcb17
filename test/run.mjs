#!/usr/bin/env node
// Runs the test suite with node:test. Files are listed explicitly (on Node 20 a quoted glob finds nothing).
// Usage: node test/run.mjs [unit|integration|faults|all] [extra files...]
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const suites = { unit: ['test/unit'], integration: ['test/integration'], faults: ['test/faults'], all: ['test/unit', 'test/integration'] };
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
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', '--test-concurrency=1', ...files], { stdio: 'inherit' });
process.exit(result.status ?? 1);
