/**
 * The reader of stdout goes away (issue 10 #11, issue 11 #8): `npm run -s demo | head -1` and
 * `wal-listener -c config.yml | head -1` (stdout publisher) end quietly: exit 0, no stack trace,
 * in json log mode only JSON lines on stderr, one of them with the code WAL_STDOUT_CLOSED, and what
 * was written before the pipe closed is confirmed to PostgreSQL.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { parseLsn } from '../../src/sources/postgres/pgoutput.js';
import { CLI, REPO_ROOT, databaseSection, writeConfig } from '../support/daemon.js';
import { waitFor } from '../support/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

let db: TestDatabase;

before(async () => {
  db = await createTestDatabase('wl_ops_epipe');
  await db.sql('CREATE TABLE items (id int PRIMARY KEY)');
});

after(async () => {
  await db?.drop();
});

/** Runs `bash -c '<command> 2>file | head -1'`; returns command's exit status, head's output and command's stderr. */
async function headOne(command: string, env: Record<string, string> = {}): Promise<{ status: number; stdout: string; stderr: string }> {
  const dir = mkdtempSync('/tmp/wl-ops-epipe-');
  try {
    const child = spawn('bash', ['-c', `${command} 2>"${dir}/err" | head -1; echo "\${PIPESTATUS[0]}" > "${dir}/status"`], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    await new Promise((resolve) => child.once('exit', resolve));
    return { status: Number(readFileSync(`${dir}/status`, 'utf8').trim()), stdout, stderr: readFileSync(`${dir}/err`, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function assertNoStack(stderr: string): void {
  assert.ok(!/^\s+at .+[(:]\d+/m.test(stderr), `a stack trace on stderr:\n${stderr}`);
  assert.ok(!/Unhandled 'error' event|node:events|Error: write EPIPE/.test(stderr), `a raw error on stderr:\n${stderr}`);
}

test('npm run -s demo | head -1: one event, exit 0, no stack trace, the temporary server removed', async () => {
  const run = await headOne('npm run -s demo');
  assert.equal(run.status, 0, run.stderr);
  const lines = run.stdout.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1);
  assert.equal((JSON.parse(lines[0]!) as { table: string }).table, 'orders');
  assertNoStack(run.stderr);
  assert.match(run.stderr, /stopped \(standard output closed by its reader\)/);
  const dir = /data in (\S+)/.exec(run.stderr)?.[1];
  assert.ok(dir && !existsSync(dir), `the demo's data directory ${dir} was removed`);
});

test('wal-listener -c config.yml | head -1 with the stdout publisher: exit 0, only JSON on stderr, what was written is confirmed', async () => {
  const slot = db.slotName();
  const path = writeConfig({ listener: { slotName: slot }, database: databaseSection(db), publisher: { type: 'stdout', topic: 'epipe' } });
  // Rows keep coming until the daemon has gone, so there is always a write after head exits.
  let writing = true;
  const writer = (async () => {
    await waitFor('the slot exists', async () => (await db.confirmedFlush(slot)) !== null, 60_000, 100);
    for (let id = 1; writing; id++) {
      await db.sql('INSERT INTO items VALUES ($1)', [id]);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  let run;
  try {
    run = await headOne(`"${process.execPath}" --import tsx "${CLI}" -c "${path}"`);
  } finally {
    writing = false;
    await writer;
  }
  assert.equal(run.status, 0, run.stderr);
  assertNoStack(run.stderr);
  const lines = run.stderr.split('\n').filter((l) => l !== '');
  for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), `not JSON: ${line}`);
  const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(records.filter((r) => r.code === 'WAL_STDOUT_CLOSED').length, 1, run.stderr);
  assert.ok(!records.some((r) => r.level === 'fatal' || r.level === 'error'), run.stderr);
  const first = JSON.parse(run.stdout.split('\n')[0]!) as { lsn: string };
  const confirmed = await db.confirmedFlush(slot);
  assert.ok(parseLsn(confirmed ?? '0/0') > parseLsn(first.lsn), `the event head read (commit ${first.lsn}) was confirmed (slot at ${confirmed})`);
});
