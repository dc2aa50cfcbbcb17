/** docs/consumer.md lists exactly the consumer's error codes (src/consumer/errors.ts). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { CONSUMER_ERROR_CODES } from '../../src/consumer/errors.js';

test('docs/consumer.md and CONSUMER_ERROR_CODES list the same codes', () => {
  const doc = readFileSync(new URL('../../docs/consumer.md', import.meta.url), 'utf8');
  const documented = [...doc.matchAll(/^\| `(WAL_CONSUMER_[A-Z_]+)` \|/gm)].map((m) => m[1]).sort();
  assert.deepEqual(documented, Object.keys(CONSUMER_ERROR_CODES).sort());
});
