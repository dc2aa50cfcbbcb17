/** A server without wal_level=logical stops the daemon with a clear error (exit 1), not a retry loop. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startEmbeddedPostgres, type EmbeddedServer } from '../../scripts/embedded-postgres.js';
import { startDaemon } from '../support/daemon.js';

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
