/**
 * Setup against real PostgreSQL: a slot already streaming to another process (not a daemon of the
 * same config: that one would wait as an HA standby, see ha.test.ts) is retried with a
 * clear log line (not a hang), and an unreachable database is retried with growing backoff (no busy loop).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import { ReplicationConnection } from '../../src/sources/postgres/replication.js';
import { databaseSection, startDaemon, type DaemonProcess } from '../support/daemon.js';
import { freePort, waitFor } from '../support/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

let db: TestDatabase;
const daemons: DaemonProcess[] = [];

before(async () => {
  db = await createTestDatabase('wl_setup');
  await db.sql('CREATE TABLE t (id int PRIMARY KEY)');
});

after(async () => {
  for (const d of daemons) await d.kill();
  await db?.drop();
});

test('a slot in use by another process is retried with a clear log line, then taken over', async () => {
  const slot = db.slotName();
  const config = { listener: { slotName: slot, refreshConnection: '2s' }, database: databaseSection(db), publisher: { type: 'stdout', topic: 'wl' } };
  // Another process (not a daemon of this config: those wait as standbys) streams from the slot.
  const creator = await startDaemon(config);
  assert.equal(await creator.stop(), 0);
  const other = await ReplicationConnection.open(parseConfig(JSON.stringify(config), 'test').config.database);
  await other.start(slot, 'wal-listener', 0n, () => {});
  const second = await startDaemon(config, { waitForStreaming: false });
  daemons.push(second);
  const line = await second.waitForLog('replication slot in use by another process; retrying');
  assert.match(String(line.err), new RegExp(`replication slot ${slot} is active for PID \\d+`));
  assert.equal(line.level, 'warn');

  await other.close();
  await second.waitForLog('replication streaming', 20_000);
  await db.sql('INSERT INTO t VALUES (2)');
  await waitFor('the daemon publishes the next change', () => second.events().some((e) => (e.data as { id: number }).id === 2));
  assert.equal(await second.stop(), 0);
});

test('an unreachable database is retried with growing backoff, and SIGTERM still stops it cleanly', async () => {
  const port = await freePort(); // nothing listens here
  const daemon = await startDaemon(
    { listener: { slotName: 'never_created', refreshConnection: '4s' }, database: { host: '127.0.0.1', port, name: 'x', user: 'postgres' }, publisher: { type: 'stdout', topic: 'wl' } },
    { waitForStreaming: false },
  );
  daemons.push(daemon);
  await waitFor('four retries', () => daemon.logs().filter((r) => r.msg === 'PostgreSQL not available; retrying').length >= 4, 30_000);
  const retries = daemon.logs().filter((r) => r.msg === 'PostgreSQL not available; retrying');
  const delays = retries.map((r) => Number(r.retryInMs));
  assert.ok(delays[0]! < 1000, `first retry is quick (${delays[0]} ms)`);
  assert.ok(delays[3]! > delays[0]!, `backoff grows: ${delays.join(', ')}`);
  assert.ok(delays.every((d) => d <= 4000 * 1.25), 'capped by refreshConnection (+ jitter)');
  assert.match(String(retries[0]!.err), /ECONNREFUSED/);
  assert.equal(await daemon.stop(), 0);
});
