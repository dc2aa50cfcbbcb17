import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { WalListenerError } from '../../src/errors.js';
import { pgqError } from '../../src/sources/pgq/server-errors.js';

function serverError(code: string, message: string): pg.DatabaseError {
  const err = new pg.DatabaseError(message, message.length, 'error');
  err.code = code;
  return err;
}

test('PgQ call failures: connection and shutdown errors reconnect, privilege and PgQ refusals stop, bugs stay bugs', () => {
  const cases: [unknown, string | undefined][] = [
    [serverError('57P01', 'terminating connection due to administrator command'), 'WAL_PGQ_READ'],
    [serverError('08006', 'connection failure'), 'WAL_PGQ_READ'],
    [serverError('40P01', 'deadlock detected'), 'WAL_PGQ_READ'],
    [serverError('42501', 'permission denied for function next_batch_custom'), 'WAL_PGQ_SQL'],
    [serverError('P0001', 'Not subscriber to queue: q/wal-listener'), 'WAL_PGQ_SQL'],
    [Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET', syscall: 'read' }), 'WAL_PGQ_READ'],
    [new Error('Connection terminated unexpectedly'), 'WAL_PGQ_READ'],
    [new TypeError('x is not a function'), undefined],
  ];
  for (const [err, code] of cases) {
    const out = pgqError(err, 'reading batch 1 of queue q');
    if (code === undefined) {
      assert.equal(out, err, 'not from PostgreSQL: passed on as it is (fatal)');
      continue;
    }
    assert.ok(out instanceof WalListenerError);
    assert.equal(out.code, code, String(err));
    assert.equal(out.fatal, code === 'WAL_PGQ_SQL');
    assert.match(out.message, /^reading batch 1 of queue q: /);
  }
});
