/**
 * `npm run demo` as root from a directory the postgres system user cannot enter (a clone under
 * /root, or a mode-700 `mktemp -d`). PostgreSQL refuses root, so it runs as that user, who must
 * still reach its binaries: the demo prints events and exits 0, with no stack trace.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { REPO_ROOT } from '../support/daemon.js';

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A copy of the repository in a fresh mode-700 directory; node_modules hard-linked (cp -al), so it is quick. */
function privateCopy(): string | null {
  const dir = mkdtempSync(join(tmpdir(), 'wl-private-'));
  dirs.push(dir);
  chmodSync(dir, 0o700);
  const repo = join(dir, 'repo');
  for (const entry of ['package.json', 'tsconfig.json', 'src', 'scripts']) cpSync(join(REPO_ROOT, entry), join(repo, entry), { recursive: true });
  try {
    execFileSync('cp', ['-al', join(REPO_ROOT, 'node_modules'), join(repo, 'node_modules')], { stdio: 'ignore' });
  } catch {
    return null; // another file system: a full copy of node_modules is too slow for a test
  }
  return repo;
}

function postgresUserExists(): boolean {
  try {
    execFileSync('id', ['postgres'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const reason = userInfo().uid !== 0 ? 'needs root' : !postgresUserExists() ? 'needs a postgres system user' : false;

test('as root, from a directory the postgres user cannot enter, the demo runs and exits 0', { skip: reason }, async (t) => {
  const repo = privateCopy();
  if (repo === null) return t.skip('cannot hard-link node_modules into the temporary directory');
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/demo.ts', '--duration', '3'], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  clearTimeout(timer);
  assert.equal(code, 0, err);
  assert.doesNotMatch(err, /^\s+at /m, 'no stack trace');
  const events = out.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as { table: string });
  assert.ok(events.length > 0, `events on stdout; stderr:\n${err}`);
  assert.ok(events.every((e) => e.table === 'orders'));
  assert.match(err, /temporary PostgreSQL stopped and its data removed/);
});
