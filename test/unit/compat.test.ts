/** The compat format's value reshaping (ihippik/wal-listener v2.11's shapes). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { goTime, postgresInterval } from '../../src/sources/postgres/compat-values.js';
import { trimFraction } from '../../src/pipeline/compat-encoder.js';

test('intervals: iso_8601 text reprinted as IntervalStyle postgres (pairs printed by PostgreSQL 15)', () => {
  const pairs: [string, string][] = [
    ['P1Y2M-3DT4H5M6.5S', '1 year 2 mons -3 days +04:05:06.5'],
    ['PT0S', '00:00:00'],
    ['P-1D', '-1 days'],
    ['PT-1.5S', '-00:00:01.5'],
    ['P-1Y-2M3DT-4H', '-1 years -2 mons +3 days -04:00:00'],
    ['PT100H', '100:00:00'],
    ['P1M-1DT0.000001S', '1 mon -1 days +00:00:00.000001'],
    ['PT-0.000001S', '-00:00:00.000001'],
    ['P1D', '1 day'],
    ['P1Y', '1 year'],
    ['infinity', 'infinity'],
  ];
  for (const [iso, postgres] of pairs) assert.equal(postgresInterval(iso), postgres, iso);
  for (const bad of ['', 'P', 'PT', '1 day', 'P1X']) assert.equal(postgresInterval(bad), undefined, bad);
});

test('timestamps: Go time.Time JSON, fraction trimmed; what Go cannot parse is undefined', () => {
  assert.equal(goTime('2024-02-29 08:15:56.123400+00'), '2024-02-29T08:15:56.1234Z');
  assert.equal(goTime('2024-02-29 08:15:56+00'), '2024-02-29T08:15:56Z');
  assert.equal(goTime('2024-02-29 13:45:56.000001'), '2024-02-29T13:45:56.000001Z');
  assert.equal(goTime('2024-02-29 13:45:56.000000'), '2024-02-29T13:45:56Z');
  for (const bad of ['infinity', '-infinity', '0044-03-15 12:00:00 BC', '12345-01-01 00:00:00']) assert.equal(goTime(bad), undefined, bad);
  assert.equal(trimFraction('2024-02-29T08:15:56.123400Z'), '2024-02-29T08:15:56.1234Z');
  assert.equal(trimFraction('2024-02-29T08:15:56.000000Z'), '2024-02-29T08:15:56Z');
  assert.equal(trimFraction('2024-02-29T08:15:56.000001Z'), '2024-02-29T08:15:56.000001Z');
});
