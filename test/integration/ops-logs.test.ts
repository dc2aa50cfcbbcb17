/**
 * What an operator sees at info level (issue 11 #9): one progress line per
 * `logger.progressInterval` while events flow (events published, lag, in flight), one line when
 * the stream goes idle and one when events flow again, and never a line per event. The interval is
 * 1 s here; the default is 1 m.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { databaseSection, startDaemon, type DaemonProcess } from '../support/daemon.js';
import { waitFor } from '../support/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

let db: TestDatabase;
let daemon: DaemonProcess | undefined;

before(async () => {
  db = await createTestDatabase('wl_ops_logs');
  await db.sql('CREATE TABLE items (id int PRIMARY KEY, note text)');
});

after(async () => {
  await daemon?.kill();
  await db?.drop();
});

test('a progress line per interval while events flow, idle and flowing-again lines, no line per event', async () => {
  daemon = await startDaemon({
    listener: { slotName: db.slotName() },
    logger: { level: 'info', progressInterval: '1s' },
    database: databaseSection(db),
    publisher: { type: 'stdout', topic: 'logs' },
  });
  const d = daemon;
  const progress = (): Record<string, unknown>[] => d.logs().filter((r) => /^\d+ events published in the last 1 s$/.test(String(r.msg)));
  // 600 rows over about 3 s, in 60 transactions.
  for (let i = 0; i < 60; i++) {
    await db.sql('INSERT INTO items SELECT g, $2 FROM generate_series($1::int, $1::int + 9) g', [i * 10 + 1, 'x']);
    await new Promise((r) => setTimeout(r, 50));
  }
  await waitFor('600 events', () => d.events().length >= 600);
  const busy = d.logs().length;
  const idle = await waitFor('an idle line after the 600 events', () => d.logs().slice(busy).find((r) => r.msg === 'idle: no events published in the last 1 s'), 15_000);
  assert.equal(typeof idle.publishedTotal, 'number');
  await db.sql("INSERT INTO items VALUES (100000, 'after the pause')");
  const again = await waitFor('events flowing again', () => d.logs().slice(busy).find((r) => r.msg === 'events flowing again'), 15_000);
  assert.equal(again.level, 'info');
  await waitFor('a progress line after the pause', () => progress().some((r) => r.time! > again.time!), 15_000);
  assert.equal(await d.stop(), 0);
  daemon = undefined;

  const lines = progress();
  assert.ok(lines.length >= 2, `progress lines: ${JSON.stringify(lines)}`);
  const sum = lines.reduce((s, r) => s + Number(r.published), 0);
  assert.equal(sum, 601, `the progress lines add up to every event published: ${JSON.stringify(d.logs().filter((r) => r.level === 'info'))}`);
  for (const r of lines) {
    assert.equal(r.level, 'info');
    assert.equal(typeof r.inFlight, 'number');
    assert.equal(typeof r.perSecond, 'number');
    assert.ok('lagBytes' in r && 'behindMs' in r, JSON.stringify(r));
  }
  const idleLines = d.logs().slice(busy).filter((r) => String(r.msg).startsWith('idle:') && r.time! < again.time!);
  assert.equal(idleLines.length, 1, 'one idle line for the whole pause');
  // Everything at info level is about the run, not about events: a handful of lines for 601 events.
  const other = d.logs().filter((r) => r.level === 'info' && !/^\d+ events published in the last|^idle:|^events flowing again$/.test(String(r.msg)));
  assert.ok(other.length < 15, `info lines other than progress: ${other.map((r) => r.msg).join(' | ')}`);
  for (const line of d.stderr().split('\n').filter((l) => l !== '')) assert.doesNotThrow(() => JSON.parse(line), `not JSON: ${line}`);
});
