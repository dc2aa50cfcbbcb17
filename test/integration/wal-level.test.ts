/** A server without wal_level=logical stops the daemon with a clear error (exit 1), not a retry loop; `check` says so. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startEmbeddedPostgres, type EmbeddedServer } from '../../scripts/embedded-postgres.js';
import { runCli, startDaemon, writeConfig } from '../support/daemon.js';

let server: EmbeddedServer;

before(async () => {
  server = await startEmbeddedPostgres({ extraFlags: ['-c', 'wal_level=replica'] });
});
after(async () => {
  await server?.destroy();
});

test('wal_level=replica: exit 1 naming the setting and the fix', async () => {
  const daemon = await startDaemon(
    {
      listener: { slotName: 'never_created' },
      database: { host: server.host, port: server.port, name: 'postgres', user: server.user, password: server.password },
      publisher: { type: 'stdout', topic: 'wl' },
    },
    { waitForStreaming: false },
  );
  assert.equal(await daemon.exited, 1);
  const fatal = daemon.logs().find((r) => r.level === 'fatal');
  assert.equal(fatal?.code, 'WAL_PG_WAL_LEVEL');
  assert.match(String(fatal?.err), /wal_level=replica; logical replication needs wal_level=logical \(ALTER SYSTEM SET wal_level = logical, then restart PostgreSQL\)/);
  const c = await server.client('postgres');
  const slots = await c.query('SELECT 1 FROM pg_replication_slots');
  await c.end();
  assert.equal(slots.rowCount, 0, 'nothing was created');
});

test('check: wal_level=replica is a problem (exit 1), with the fix, and nothing is created', async () => {
  const path = writeConfig({
    listener: { slotName: 'never_created' },
    database: { host: server.host, port: server.port, name: 'postgres', user: server.user, password: server.password },
    publisher: { type: 'stdout', topic: 'wl' },
  });
  const r = await runCli(['check', '-c', path]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /^problem wal_level: replica; logical replication needs wal_level=logical\n {8}fix: ALTER SYSTEM SET wal_level = logical, then restart PostgreSQL$/m);
  assert.match(r.stdout, /^1 problem\(s\)/m);
  const c = await server.client('postgres');
  const created = await c.query("SELECT (SELECT count(*) FROM pg_replication_slots)::int AS slots, (SELECT count(*) FROM pg_publication)::int AS publications");
  await c.end();
  assert.deepEqual(created.rows[0], { slots: 0, publications: 0 });
});
