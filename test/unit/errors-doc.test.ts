/** docs/errors.md lists exactly the codes of src/errors.ts, and marks the non-fatal ones with "—". */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { test } from 'node:test';
import { ERROR_CODES, type ErrorCode } from '../../src/errors.js';

const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
const rows = [...doc.matchAll(/^\| `(WAL_[A-Z0-9_]+)` \| ([^|]+) \|/gm)].map((m) => ({ code: m[1]!, exit: m[2]!.trim() }));

test('docs/errors.md and ERROR_CODES list the same codes', () => {
  assert.deepEqual(rows.map((r) => r.code).sort(), Object.keys(ERROR_CODES).sort());
});

test('docs/errors.md marks exactly the non-fatal codes with —', () => {
  for (const { code, exit } of rows) {
    const info = ERROR_CODES[code as ErrorCode];
    if (!info) continue;
    if (info.fatal) assert.notEqual(exit, '—', `${code} is fatal: its exit column must give the exit code`);
    else assert.ok(exit === '—' || exit === '0', `${code} is not fatal: its exit column must be — (or 0), got ${exit}`);
  }
});

test('every WAL_ code the daemon uses is in ERROR_CODES (so docs/errors.md lists it)', () => {
  const root = new URL('../../src/', import.meta.url);
  const used = new Set<string>();
  for (const file of readdirSync(root, { recursive: true }) as string[]) {
    // The consumer SDK has its own catalogue (docs/consumer.md, consumer-errors-doc.test.ts).
    if (!file.endsWith('.ts') || file.startsWith('consumer')) continue;
    for (const m of readFileSync(new URL(file, root), 'utf8').matchAll(/'(WAL_[A-Z0-9_]+)'/g)) used.add(m[1]!);
  }
  assert.ok(used.size > 20, `found ${used.size} codes`);
  for (const code of used) assert.ok(code in ERROR_CODES, `${code} is used in src/ but missing from ERROR_CODES and docs/errors.md`);
});
