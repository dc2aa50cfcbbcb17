/**
 * /metrics through the real daemon after a known workload: published and filter-skipped counts per
 * table, lag back to 0, the confirmed LSN past the last commit, latency observed, nothing in flight,
 * Node process metrics; probes and metrics served from one port when both name it.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { parseLsn } from '../../src/sources/postgres/pgoutput.js';
import { databaseSection, startDaemon, type DaemonProcess } from '../support/daemon.js';
import { freePort, waitFor } from '../support/ports.js';
import { createTestDatabase, PG_PASSWORD, type TestDatabase } from '../support/postgres.js';

const PASSWORD = PG_PASSWORD ?? 'metrics-Pa55word';
import { httpGet, metricValue } from '../support/ops.js';

let db: TestDatabase;
let daemon: DaemonProcess | undefined;

before(async () => {
  db = await createTestDatabase('wl_metrics');
  await db.sql('CREATE TABLE items (id int PRIMARY KEY, n int); CREATE TABLE other (id int PRIMARY KEY)');
  // A FOR ALL TABLES publication, as a setup migrated from ihippik/wal-listener has: the filter then
  // drops what PostgreSQL sends (a publication the daemon creates for a filter carries only the filtered tables).
  await db.sql('CREATE PUBLICATION "wal-listener" FOR ALL TABLES');
});

after(async () => {
  await daemon?.kill();
  await db?.drop();
});

test('metric values after 20 inserts, 3 filtered updates and 5 inserts into a filtered-out table', async () => {
  const port = await freePort();
  const slot = db.slotName();
  daemon = await startDaemon({
    listener: { slotName: slot, serverPort: port, filter: { tables: { items: ['insert'] } } },
    // The machine's server trusts local users, so any password works there; a password-checking server gets its own.
    database: { ...databaseSection(db), password: PASSWORD },
    publisher: { type: 'stdout', topic: 'ops' },
    monitoring: { promAddr: `:${port}` },
  });
  for (let id = 1; id <= 20; id++) await db.sql('INSERT INTO items VALUES ($1, 0)', [id]);
  await db.sql('UPDATE items SET n = 1 WHERE id <= 3');
  await db.sql('INSERT INTO other SELECT generate_series(1, 5)');
  await waitFor('20 events on stdout', () => daemon!.events().length >= 20);
  const lastLsn = parseLsn(String(daemon.events().at(-1)!.lsn));

  // The lag falls back to what other databases of the shared server wrote since our last commit
  // (0 on a quiet server): at most the WAL written after lastLsn, read after the metrics.
  let seen = '';
  const text = await waitFor('everything counted and confirmed', async () => {
    const body = (await httpGet(port, '/metrics')).body;
    const walEnd = parseLsn((await db.sql<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l);
    const skipped = metricValue(body, 'filter_skipped_events_total', { table: 'other' });
    const lag = metricValue(body, 'replication_lag_bytes', {});
    const confirmed = metricValue(body, 'confirmed_lsn_bytes', {});
    seen = `skipped(other)=${skipped} lag=${lag} confirmed=${confirmed} lastLsn=${lastLsn} walEnd=${walEnd}`;
    const done = skipped === 5 && lag !== undefined && lag <= Number(walEnd - lastLsn) && confirmed! > Number(lastLsn);
    return done ? body : undefined;
  }, 30_000, 250).catch((err: Error) => {
    throw new Error(`${err.message}; last seen ${seen}`);
  });

  assert.equal(metricValue(text, 'published_events_total', { subject: 'ops.public_items', table: 'items', app: 'wal-listener' }), 20);
  assert.equal(metricValue(text, 'filter_skipped_events_total', { table: 'items' }), 3);
  assert.equal(metricValue(text, 'filter_skipped_events_total', { table: 'other' }), 5);
  assert.equal(text.match(/^published_events_total\{/gm)?.length, 1, 'no series for filtered tables');
  assert.equal(metricValue(text, 'problematic_events_total', { kind: 'convert' }), 0);
  assert.equal(metricValue(text, 'reconnects_total', { target: 'postgres' }), 0);
  assert.equal(metricValue(text, 'reconnects_total', { target: 'publisher' }), 0);
  assert.equal(metricValue(text, 'in_flight_events', {}), 0);
  const latencyCount = metricValue(text, 'publish_latency_seconds_count', {})!;
  assert.ok(latencyCount >= 1 && latencyCount <= 20, `latency observed per batch: ${latencyCount}`);
  assert.ok(metricValue(text, 'publish_latency_seconds_sum', {})! < 30);
  assert.ok(metricValue(text, 'process_resident_memory_bytes', {})! > 0);
  assert.ok(metricValue(text, 'nodejs_eventloop_lag_seconds', {}) !== undefined);
  assert.ok(!text.includes(PASSWORD));
  // What the gauge reports was sent to PostgreSQL: the slot moved past the last commit too.
  await waitFor('slot confirmed past the last commit', async () => parseLsn((await db.confirmedFlush(slot)) ?? '0/0') > lastLsn);

  // One port serves probes and metrics.
  assert.equal((await httpGet(port, '/ready')).status, 200);
  assert.equal((await httpGet(port, '/healthz')).status, 200);
  assert.equal(await daemon.stop(), 0);
  daemon = undefined;
});
