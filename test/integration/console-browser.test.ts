/**
 * The live console in a real browser: Debian's chromium (/usr/bin/chromium, installed by .ci/run,
 * never downloaded) driven by playwright-core, against the real daemon (stdout publisher, console
 * with a token on loopback). Opens /console?token=…, writes rows and sees them within 1 s, shows
 * an UPDATE as a diff, filters by table, pauses and resumes, draws the sparklines, and shows the
 * connection state across a daemon restart (with the "not replayed" note). The screenshot is a
 * test artifact: .tmp/artifacts/console.png (or $WL_ARTIFACTS/console.png).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { databaseSection, REPO_ROOT, startDaemon, type DaemonProcess } from '../support/daemon.js';
import { freePort } from '../support/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'browser-test-token';
const ARTIFACTS = process.env.WL_ARTIFACTS ?? join(REPO_ROOT, '.tmp/artifacts');

let db: TestDatabase;
let daemon: DaemonProcess | undefined;
let browser: Browser | undefined;
let page: Page;
let port: number;
let config: Record<string, unknown>;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium (.ci/run does)`);
  db = await createTestDatabase('wl_cons');
  await db.sql('CREATE TABLE orders (id int PRIMARY KEY, status text, total numeric(10,2))');
  await db.sql('ALTER TABLE orders REPLICA IDENTITY FULL'); // old rows in UPDATE events: a real diff
  await db.sql('CREATE TABLE users (id int PRIMARY KEY, name text)');
  port = await freePort();
  config = {
    listener: { slotName: db.slotName() },
    database: databaseSection(db),
    publisher: { type: 'stdout', topic: 'browser' },
    console: { addr: `127.0.0.1:${port}`, token: TOKEN },
  };
  daemon = await startDaemon(config);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
});

after(async () => {
  await browser?.close();
  await daemon?.kill();
  await db?.drop();
});

/** The little of the DOM that page-side callbacks use (this project compiles without the DOM library). */
declare const document: {
  getElementById(id: string): { textContent: string | null } | null;
  querySelectorAll(selector: string): { length: number };
};

/** Until the element's text is `text`. */
async function waitText(id: string, text: string, timeout: number): Promise<void> {
  await page.waitForFunction(([i, t]) => document.getElementById(i!)?.textContent === t, [id, text], { timeout });
}

/** Until `selector` matches at least `count` elements. */
async function waitCount(selector: string, count: number, timeout: number): Promise<void> {
  await page.waitForFunction(([sel, n]) => document.querySelectorAll(sel as string).length >= (n as number), [selector, count], { timeout });
}

/** Rows of the change list as "table ACTION", newest first, only those shown. */
function shownRows(): Promise<string[]> {
  return page.$$eval('#changes tbody tr.change:not(.hidden)', (rows) => rows.map((r) => `${r.getAttribute('data-table')} ${r.getAttribute('data-action')}`));
}

test('the page opens with the token and goes live; the token leaves the address bar', async () => {
  await page.goto(`http://127.0.0.1:${port}/console?token=${TOKEN}`);
  await waitText('state', 'live', 10_000);
  assert.ok(!page.url().includes(TOKEN), `address bar: ${page.url()}`);
  // The first stats event arrives at once with the daemon's state.
  await waitText('daemon', 'streaming', 5_000);
});

test('written rows appear within 1 s, newest first, with key and values', async () => {
  await db.sql("INSERT INTO orders VALUES (1, 'new', 19.90)");
  await db.sql("INSERT INTO users VALUES (7, 'ann')");
  await waitCount('#changes tbody tr.change', 2, 1_000);
  assert.deepEqual(await shownRows(), ['users INSERT', 'orders INSERT']);
  const first = await page.$eval('#changes tbody tr.change[data-table="orders"]', (tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent));
  assert.equal(first[1], 'public.orders');
  assert.equal(first[3], 'id=1');
  assert.match(first[4]!, /id 1.*status new.*total 19\.90/);
});

test('an UPDATE shows the changed column as old → new', async () => {
  await db.sql("UPDATE orders SET status = 'paid' WHERE id = 1");
  const cell = await page.waitForSelector('#changes tbody tr.change[data-action="UPDATE"] td:last-child', { timeout: 1_000 });
  assert.equal(await cell.$eval('.old', (e) => e.textContent), 'new');
  assert.equal(await cell.$eval('.new', (e) => e.textContent), 'paid');
  assert.deepEqual(await cell.$$eval('.same', (es) => es.map((e) => e.textContent)), ['1', '19.90'], 'unchanged columns are dimmed');
});

test('filter by table: other tables are hidden and no longer sent', async () => {
  await page.fill('#tables', 'users');
  await page.press('#tables', 'Enter');
  await waitText('state', 'live', 5_000);
  assert.deepEqual(await shownRows(), ['users INSERT']);
  await db.sql("INSERT INTO orders VALUES (2, 'new', 5); INSERT INTO users VALUES (8, 'bob')");
  await waitCount('#changes tbody tr.change[data-table="users"]', 2, 1_000);
  await page.waitForTimeout(300);
  assert.deepEqual(await shownRows(), ['users INSERT', 'users INSERT']);
  assert.equal(await page.$$eval('#changes tbody tr.change[data-table="orders"]', (rows) => rows.length), 2, 'order 2 was not sent while filtered');
  await page.fill('#tables', '');
  await page.press('#tables', 'Enter');
  await waitText('state', 'live', 5_000);
  assert.equal((await shownRows()).length, 4);
});

test('pause holds new changes back; resume shows them', async () => {
  await page.click('#pause');
  assert.equal(await page.textContent('#state'), 'paused');
  const before = (await shownRows()).length;
  await db.sql("INSERT INTO orders VALUES (3, 'new', 7.5)");
  await waitText('waiting', '1 waiting', 2_000);
  assert.equal((await shownRows()).length, before, 'nothing added while paused');
  await page.click('#pause');
  assert.equal(await page.textContent('#state'), 'live');
  assert.equal(await page.textContent('#pause'), 'Pause');
  assert.equal((await shownRows())[0], 'orders INSERT');
  assert.equal((await shownRows()).length, before + 1);
});

test('sparklines draw throughput and lag; screenshot saved as a test artifact', async () => {
  // A few seconds of mixed traffic, so the sparklines (one point a second) and the list show something.
  const statuses = ['paid', 'packed', 'shipped', 'delivered'];
  for (let i = 0; i < 5; i++) {
    const base = 100 + i * 80;
    await db.sql(`INSERT INTO users SELECT g, 'user ' || g FROM generate_series(${base}, ${base + 19 + i * 10}) g`);
    await db.sql(`INSERT INTO orders SELECT g, 'new', g * 1.25 FROM generate_series(${base}, ${base + 2}) g`);
    await db.sql(`UPDATE orders SET status = '${statuses[i % 4]}', total = total + 1 WHERE id IN (${base}, 1)`);
    await db.sql(`DELETE FROM users WHERE id = ${base + 1}`);
    await page.waitForTimeout(1_100);
  }
  await page.waitForFunction(() => Number(document.getElementById('total')?.textContent) >= 150, null, { timeout: 5_000 });
  const points = await page.$eval('#spark-rate polyline', (p) => p.getAttribute('points') ?? '');
  assert.ok(points.split(' ').length >= 3, `throughput sparkline points: ${points}`);
  assert.ok(await page.$('#spark-lag polyline'));
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, 'console.png');
  await page.screenshot({ path });
  assert.ok(existsSync(path));
  console.log(`# screenshot: ${path}`);
});

test('connection state: the daemon stops → reconnecting; it is back → live, with a note that nothing was replayed', async () => {
  assert.equal(await daemon!.stop(), 0);
  await waitText('state', 'reconnecting', 5_000);
  daemon = await startDaemon(config);
  await waitText('state', 'live', 15_000);
  const note = await page.waitForSelector('#changes tbody tr.note', { timeout: 5_000 });
  assert.match((await note.textContent()) ?? '', /Reconnected after event .+: this feed is live: changes published while you were disconnected are not replayed/);
  await db.sql("INSERT INTO orders VALUES (900, 'after restart', 1)");
  await waitCount('#changes tbody tr.change[data-table="orders"]:first-child', 1, 2_000);
});
