import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Metrics } from '../../src/observability/metrics.js';
import type { TableHandle } from '../../src/pipeline/change.js';
import type { OutboundMessage } from '../../src/publishers/publisher.js';
import { metricValue } from '../support/ops.js';

const COMMIT = '2024-02-29T08:15:56.123456Z';
const COMMIT_MS = Date.parse(COMMIT);

function message(subject: string, table: string, lsn = '0/10', commitTime = COMMIT): OutboundMessage {
  const payload = `{"id":"x","schema":"public","table":"${table}","action":"INSERT","data":{"commitTime":"1999-01-01T00:00:00Z"},"dataOld":{},"commitTime":"${commitTime}","lsn":"${lsn}","xid":1}`;
  return { id: 'x', subject, key: '', payload, lsn, schema: 'public', table, action: 'INSERT', headers: null, properties: null, exchange: null };
}

const plan = (table: string): TableHandle => ({ schema: 'public', table });

test('published_events_total counts acknowledged messages per subject and table, per batch', async () => {
  const metrics = new Metrics({ version: '1.2.3', processMetrics: false });
  const observer = metrics.observer();
  observer.acked([message('wal.public_a', 'a'), message('wal.public_a', 'a'), message('wal.public_b', 'b'), message('wal.public_a', 'a')]);
  observer.acked([message('wal.public_a', 'a')]);
  observer.acked([]);
  // topicsMap can send two tables to one subject: still separate series.
  observer.acked([message('notifier', 'users'), message('notifier', 'accounts')]);
  const text = await metrics.text();
  assert.equal(metricValue(text, 'published_events_total', { subject: 'wal.public_a', table: 'a', app: 'wal-listener' }), 4);
  assert.equal(metricValue(text, 'published_events_total', { subject: 'wal.public_b', table: 'b' }), 1);
  assert.equal(metricValue(text, 'published_events_total', { subject: 'notifier', table: 'users' }), 1);
  assert.equal(metricValue(text, 'published_events_total', { subject: 'notifier', table: 'accounts' }), 1);
  // Counting continues after a scrape (cells report deltas).
  observer.acked([message('wal.public_b', 'b'), message('wal.public_b', 'b')]);
  assert.equal(metricValue(await metrics.text(), 'published_events_total', { subject: 'wal.public_b', table: 'b' }), 3);
  assert.equal(metricValue(await metrics.text(), 'published_events_total', { subject: 'wal.public_b', table: 'b' }), 3);
});

test('skipped, convert problems, retries and reconnects; zero series exist from the start', async () => {
  const metrics = new Metrics({ version: '1.2.3', processMetrics: false });
  const observer = metrics.observer();
  let text = await metrics.text();
  assert.equal(metricValue(text, 'problematic_events_total', { kind: 'convert' }), 0);
  assert.equal(metricValue(text, 'reconnects_total', { target: 'postgres' }), 0);
  assert.equal(metricValue(text, 'reconnects_total', { target: 'publisher' }), 0);
  assert.equal(metricValue(text, 'publish_retries_total', {}), 0);
  assert.equal(metricValue(text, 'wal_listener_build_info', { version: '1.2.3' }), 1);
  for (let i = 0; i < 5; i++) observer.skipped(plan('other'));
  observer.skipped(plan('audit'));
  observer.convertProblem();
  observer.convertProblem();
  observer.reconnect('postgres');
  observer.reconnect('postgres');
  observer.reconnect('publisher');
  observer.retrying(1);
  text = await metrics.text();
  assert.equal(metricValue(text, 'filter_skipped_events_total', { table: 'other' }), 5);
  assert.equal(metricValue(text, 'filter_skipped_events_total', { table: 'audit' }), 1);
  assert.equal(metricValue(text, 'problematic_events_total', { kind: 'convert' }), 2);
  assert.equal(metricValue(text, 'reconnects_total', { target: 'postgres' }), 2);
  assert.equal(metricValue(text, 'reconnects_total', { target: 'publisher' }), 1);
  assert.equal(metricValue(text, 'publish_retries_total', {}), 1);
});

test('replication lag, confirmed LSN and in-flight gauges', async () => {
  const metrics = new Metrics({ version: '1', processMetrics: false });
  const observer = metrics.observer();
  let inFlight = 7;
  observer.inFlight(() => inFlight);
  observer.lag(0x1000);
  observer.confirmed(0x2_0000_0000);
  let text = await metrics.text();
  assert.equal(metricValue(text, 'replication_lag_bytes', {}), 0x1000);
  assert.equal(metricValue(text, 'confirmed_lsn_bytes', {}), 0x2_0000_0000);
  assert.equal(metricValue(text, 'in_flight_events', {}), 7);
  inFlight = 0;
  observer.lag(0);
  observer.confirmed(0x2_0000_1000);
  text = await metrics.text();
  assert.equal(metricValue(text, 'replication_lag_bytes', {}), 0);
  assert.equal(metricValue(text, 'in_flight_events', {}), 0);
});

test('publish latency: one observation per batch, commit time (microseconds) to ack, ignoring a column named commitTime', async () => {
  let now = COMMIT_MS + 1500;
  const metrics = new Metrics({ version: '1', processMetrics: false, now: () => now });
  const observer = metrics.observer();
  observer.acked([message('s', 't', '0/1'), message('s', 't', '0/2', '2024-02-29T08:15:57.000000Z')]);
  now = COMMIT_MS + 20;
  observer.acked([message('s', 't')]);
  const text = await metrics.text();
  assert.equal(metricValue(text, 'publish_latency_seconds_count', {}), 2);
  assert.equal(metricValue(text, 'publish_latency_seconds_sum', {}), 1.52);
  assert.equal(metricValue(text, 'publish_latency_seconds_bucket', { le: '0.025' }), 1);
  assert.equal(metricValue(text, 'publish_latency_seconds_bucket', { le: '2.5' }), 2);
});

test('registry is private and includes Node process metrics when asked', async () => {
  const a = new Metrics({ version: '1' });
  const b = new Metrics({ version: '1', processMetrics: false });
  const textA = await a.text();
  assert.match(textA, /^process_cpu_user_seconds_total\{app="wal-listener"\} /m);
  assert.match(textA, /^nodejs_heap_size_used_bytes\{app="wal-listener"\} /m);
  assert.doesNotMatch(await b.text(), /process_cpu_user_seconds_total/);
  const { register } = await import('prom-client');
  assert.doesNotMatch(await register.metrics(), /published_events_total/);
  assert.match(a.contentType, /^text\/plain/);
});

test('snapshot_rows_total per table and backfill_in_progress', async () => {
  const metrics = new Metrics({ version: '1.2.3', processMetrics: false });
  const observer = metrics.observer();
  assert.equal(metricValue(await metrics.text(), 'backfill_in_progress', {}), 0);
  observer.backfillInProgress(1);
  observer.snapshotRows('public.users', 2000);
  observer.snapshotRows('public.users', 17);
  observer.snapshotRows('audit.log', 5);
  const text = await metrics.text();
  assert.equal(metricValue(text, 'snapshot_rows_total', { table: 'public.users' }), 2017);
  assert.equal(metricValue(text, 'snapshot_rows_total', { table: 'audit.log' }), 5);
  assert.equal(metricValue(text, 'backfill_in_progress', {}), 1);
});
