/**
 * Reconnects as an operator sees them.
 * - Issue 10 #9: many reconnects of the replication connection in a row leak nothing: no
 *   MaxListenersExceededWarning (the old daemon added an abort listener per pass and never removed
 *   it: a warning after 10), every line on stderr is JSON, nothing is lost.
 * - Issue 11 #6 and 10 #11: a real broker restart moves reconnects_total{target="publisher"} and
 *   problematic_events_total{kind="publish"}, a broker that stops answering moves {kind="ack"}, and
 *   publish_retries_total counts re-send attempts (the probe, each retry, each held batch re-sent
 *   once), not every pass of the retry loop. A kill followed by a freeze also shows that a recovery
 *   woken early by the reconnect does not block the next one (it stalled for good before).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { databaseSection, startDaemon, type DaemonProcess } from '../support/daemon.js';
import { httpGet, metricValue } from '../support/ops.js';
import { freePort, waitFor } from '../support/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import { readStream, startNats, streamCount, type NatsServer } from '../support/nats.js';

let db: TestDatabase;
let nats: NatsServer;
let nc: NatsConnection | undefined;
const daemons: DaemonProcess[] = [];

before(async () => {
  db = await createTestDatabase('wl_ops_reconnects');
  await db.sql('CREATE TABLE items (id int PRIMARY KEY)');
  nats = await startNats();
});

after(async () => {
  for (const d of daemons) await d.kill();
  await nc?.close();
  await nats?.stop();
  await db?.drop();
});

function assertJsonLines(daemon: DaemonProcess): void {
  for (const line of daemon.stderr().split('\n').filter((l) => l !== '')) {
    assert.doesNotThrow(() => JSON.parse(line), `a line on stderr that is not JSON: ${line}`);
    assert.ok(!line.includes('MaxListenersExceeded'), `a listener leak: ${line}`);
  }
}

const metrics = async (port: number): Promise<string> => (await httpGet(port, '/metrics')).body;

test('14 reconnects of the replication connection in a row: no listener leak warning, only JSON on stderr, nothing lost', async () => {
  const slot = db.slotName('many');
  const promPort = await freePort();
  const daemon = await startDaemon({
    listener: { slotName: slot, refreshConnection: '500ms' },
    database: databaseSection(db),
    publisher: { type: 'stdout', topic: 'many' },
    monitoring: { promAddr: `127.0.0.1:${promPort}` },
  });
  daemons.push(daemon);
  const RECONNECTS = 14;
  for (let i = 1; i <= RECONNECTS; i++) {
    await db.sql('INSERT INTO items VALUES ($1)', [i]);
    const pid = await waitFor(`walsender ${i}`, async () => (await db.sql<{ pid: number | null }>('SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1', [slot])).rows[0]?.pid ?? undefined, 30_000, 50);
    await db.sql('SELECT pg_terminate_backend($1)', [pid]);
    await waitFor(`streaming again after reconnect ${i}`, () => daemon.logs().filter((r) => r.msg === 'replication streaming').length > i, 30_000, 50);
  }
  await waitFor('every row', () => new Set(daemon.events().map((e) => (e.data as { id: number }).id)).size >= RECONNECTS, 30_000);
  assert.ok(metricValue(await metrics(promPort), 'reconnects_total', { target: 'postgres' })! >= RECONNECTS);
  assert.equal(await daemon.stop(), 0);
  assertJsonLines(daemon);
  assert.ok(!daemon.logs().some((r) => r.msg === 'Node.js warning'), daemon.stderr());
});

test('a NATS restart and a NATS that stops answering: reconnects, problematic publish and ack, retries counted per attempt', async () => {
  const slot = db.slotName('broker');
  const promPort = await freePort();
  await db.sql('CREATE TABLE ledger (id int PRIMARY KEY)');
  const daemon = await startDaemon({
    listener: { slotName: slot, filter: { tables: { ledger: null } } },
    database: databaseSection(db),
    publisher: { type: 'nats', address: nats.url, topic: 'ops_restart', ackTimeout: '1s' },
    monitoring: { promAddr: `127.0.0.1:${promPort}` },
  });
  daemons.push(daemon);
  let next = 1;
  let writing = true;
  const writer = (async () => {
    while (writing) {
      await db.sql('INSERT INTO ledger VALUES ($1)', [next++]);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  try {
    await waitFor('first rows published', async () => metricValue(await metrics(promPort), 'published_events_total', { table: 'ledger' })! >= 20, 30_000);
    const before = await metrics(promPort);
    assert.equal(metricValue(before, 'problematic_events_total', { kind: 'publish' }), 0);
    assert.equal(metricValue(before, 'problematic_events_total', { kind: 'ack' }), 0);

    // 1. Killed for 3 s and restarted: the publisher reconnects.
    await nats.kill();
    await new Promise((r) => setTimeout(r, 3_000));
    await nats.restart();
    await daemon.waitForLog('publishing recovered', 30_000);
    const restarted = await metrics(promPort);
    assert.ok(metricValue(restarted, 'reconnects_total', { target: 'publisher' })! > metricValue(before, 'reconnects_total', { target: 'publisher' })!, 'reconnects_total{target="publisher"} moved');

    // 2. Frozen (SIGSTOP) for 3 s, longer than ackTimeout (1 s): the publish in flight passes its deadline.
    nats.freeze();
    await new Promise((r) => setTimeout(r, 3_000));
    nats.thaw();
    const written = next - 1;
    nc = await nats.connect();
    await waitFor(`the ${written} rows written until the thaw in the stream`, async () => (await streamCount(nc!, 'ops_restart')) >= written, 30_000).catch(async (err: Error) => {
      throw new Error(`${err.message} (${await streamCount(nc!, 'ops_restart')})\n${daemon.stderr().slice(-6000)}`);
    });
    const frozen = await metrics(promPort);
    assert.ok(metricValue(frozen, 'problematic_events_total', { kind: 'ack' })! > 0, 'problematic_events_total{kind="ack"} moved');
    // A killed broker may find nothing in flight (newer changes are held, not sent); a publish that
    // passed its deadline is a failed publish for sure.
    assert.ok(metricValue(frozen, 'problematic_events_total', { kind: 'publish' })! > 0, 'problematic_events_total{kind="publish"} moved');
  } finally {
    writing = false;
    await writer;
  }
  const rows = next - 1;
  await waitFor(`all ${rows} rows in the stream`, async () => (await streamCount(nc!, 'ops_restart')) >= rows, 30_000);
  const text = await metrics(promPort);
  assert.equal(await daemon.stop(), 0);

  // Each recovery: one probe, then each held batch re-sent once; each failed retry once more.
  const recovered = daemon.logs().filter((r) => r.msg === 'publishing recovered');
  const failedRetries = daemon.logs().filter((r) => r.msg === 'publish retry failed').length;
  const attempts = recovered.reduce((sum, r) => sum + 1 + Number(r.resending), 0) + failedRetries;
  const retries = metricValue(text, 'publish_retries_total', {})!;
  assert.ok(retries >= 1 && retries <= attempts, `publish_retries_total ${retries}: at most the ${attempts} attempts logged (${recovered.length} recoveries, ${failedRetries} failed retries)`);
  const stored = await readStream(nc, 'ops_restart');
  assert.deepEqual(new Set(stored.map((m) => (m.json.data as { id: number }).id)).size, rows, 'every row arrived');
  assertJsonLines(daemon);
});
