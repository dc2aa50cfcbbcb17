/**
 * `npm run demo` (scripts/demo.ts) as a newcomer runs it: no services needed. It prints JSON change
 * events on stdout for the requested duration and exits 0; Ctrl-C (SIGINT to the whole process
 * group, as a terminal sends it) also stops it cleanly; the temporary PostgreSQL is gone afterwards.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { REPO_ROOT } from '../support/daemon.js';
import { waitFor } from '../support/ports.js';

interface Demo {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  events(): Record<string, unknown>[];
  /** Exit code and when it came. */
  exited: Promise<{ code: number | null; at: number }>;
}

const running: Demo[] = [];

after(() => {
  for (const demo of running) if (demo.child.exitCode === null && demo.child.pid) process.kill(-demo.child.pid, 'SIGKILL');
});

function startDemo(args: string[]): Demo {
  // Its own process group, like a shell job: SIGINT to the group is what Ctrl-C does.
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'scripts/demo.ts'), ...args], { cwd: REPO_ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const demo: Demo = {
    child,
    stdout: () => out,
    stderr: () => err,
    events: () =>
      out
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    exited: new Promise((resolve) => child.once('exit', (code) => resolve({ code, at: Date.now() }))),
  };
  running.push(demo);
  return demo;
}

/** The demo's data directory, from its "data in <dir>" line. */
function dataDir(demo: Demo): string {
  const match = /data in (\S+)/.exec(demo.stderr());
  assert.ok(match, demo.stderr());
  return match[1]!;
}

function assertCleanedUp(dir: string): void {
  assert.ok(!existsSync(dir), `${dir} was removed`);
  const processes = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
  assert.ok(!processes.includes(dir), 'no PostgreSQL process of the demo is left');
}

test('npm run demo -- --duration 10 prints events for 10 s and exits 0', async () => {
  const demo = startDemo(['--duration', '10']);
  await waitFor('the first event', () => demo.events().length > 0, 60_000, 100);
  const firstEventAt = Date.now();
  const { code, at } = await demo.exited;
  assert.equal(code, 0, demo.stderr());
  assert.ok(at - firstEventAt >= 9_000 && at - firstEventAt < 15_000, `ran ${at - firstEventAt} ms after the first event`);

  // stdout carries events only: every line is a JSON event of the sample table.
  const events = demo.events();
  assert.ok(events.length >= 20, `${events.length} events`);
  const actions = new Set(events.map((e) => e.action));
  for (const action of ['INSERT', 'UPDATE', 'DELETE']) assert.ok(actions.has(action), `${action} among ${[...actions].join(', ')}`);
  for (const e of events) {
    assert.equal(e.table, 'orders');
    assert.match(String(e.id), /^[0-9a-f-]{36}$/);
    assert.match(String(e.commitTime), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  }
  const update = events.find((e) => e.action === 'UPDATE')!;
  assert.match(String((update.data as { status: string }).status), /^(paid|shipped|delivered)$/);
  assert.match(demo.stderr(), /stopped \(--duration 10 s elapsed\): \d+ changes written, \d+ events published/);
  assertCleanedUp(dataDir(demo));
});

test('Ctrl-C stops the demo cleanly and removes its data', async () => {
  const demo = startDemo([]);
  await waitFor('a few events', () => demo.events().length >= 3, 60_000, 100);
  const dir = dataDir(demo);
  assert.ok(existsSync(dir));
  process.kill(-demo.child.pid!, 'SIGINT');
  const { code } = await demo.exited;
  assert.equal(code, 0, demo.stderr());
  assert.match(demo.stderr(), /stopped \(SIGINT\)/);
  assert.match(demo.stderr(), /temporary PostgreSQL stopped and its data removed/);
  assertCleanedUp(dir);
});
