/**
 * ihippik/wal-listener's own config_example.yml (test/fixtures/go-config_example.yml, unchanged)
 * runs the daemon end to end against PostgreSQL and NATS (issue 11, "Must be shown by tests").
 * Overridden through WAL_ variables, as a migrating user would: host, port, database, slot and
 * address; and, because the file names Kafka with TLS files that do not exist here, publisher.type
 * (nats), enable_tls and the three certificate files (emptied); and its fixed ports (80, :2112),
 * which other tests may hold.
 * Everything else comes from the file: the filter (seasons: insert, update), the topic, the
 * logger, enableTLS: false with sslMode: require (plain text, as in the Go daemon).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { startDaemon, type DaemonProcess } from '../support/daemon.js';
import { readStream, startNats, streamCount, type NatsServer } from '../support/nats.js';
import { freePort, waitFor } from '../support/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

const FIXTURE = new URL('../fixtures/go-config_example.yml', import.meta.url).pathname;

let db: TestDatabase;
let nats: NatsServer;
let nc: NatsConnection | undefined;
let daemon: DaemonProcess | undefined;

before(async () => {
  db = await createTestDatabase('wl_ops_goconfig');
  await db.sql('CREATE TABLE seasons (id int PRIMARY KEY, name text)');
  await db.sql('CREATE TABLE other (id int PRIMARY KEY)');
  nats = await startNats();
});

after(async () => {
  await daemon?.kill();
  await nc?.close();
  await nats?.stop();
  await db?.drop();
});

test("the Go project's config_example.yml streams inserts and updates of seasons to NATS", async () => {
  const env: Record<string, string> = {
    WAL_DATABASE_HOST: db.host,
    WAL_DATABASE_PORT: String(db.port),
    WAL_DATABASE_NAME: db.name,
    WAL_LISTENER_SLOTNAME: db.slotName(),
    WAL_PUBLISHER_ADDRESS: nats.url,
    WAL_PUBLISHER_TYPE: 'nats',
    WAL_PUBLISHER_ENABLETLS: 'false',
    WAL_PUBLISHER_CACERT: '',
    WAL_PUBLISHER_CLIENTCERT: '',
    WAL_PUBLISHER_CLIENTKEY: '',
    WAL_LISTENER_SERVERPORT: String(await freePort()),
    WAL_MONITORING_PROMADDR: `127.0.0.1:${await freePort()}`,
    ...(db.password ? { WAL_DATABASE_PASSWORD: db.password } : {}),
  };
  daemon = await startDaemon(null, { args: ['-c', FIXTURE], env, waitForStreaming: true });
  await db.sql("INSERT INTO seasons VALUES (1, 'spring')");
  await db.sql("UPDATE seasons SET name = 'summer' WHERE id = 1");
  await db.sql('DELETE FROM seasons WHERE id = 1'); // not in the filter
  await db.sql('INSERT INTO other VALUES (1)'); // not in the filter
  await db.sql("INSERT INTO seasons VALUES (2, 'autumn')");
  nc = await nats.connect();
  await waitFor('3 events in stream wal_listener', async () => {
    if (daemon!.child.exitCode !== null) throw new Error('the daemon exited');
    return (await streamCount(nc!, 'wal_listener')) >= 3;
  }, 30_000).catch((err: Error) => {
    throw new Error(`${err.message}\n${daemon!.stderr().slice(-3000)}`);
  });
  await new Promise((r) => setTimeout(r, 1_000)); // filtered changes would show up by now
  const stored = await readStream(nc, 'wal_listener');
  assert.deepEqual(stored.map((m) => [m.subject, m.json.action, (m.json.data as { name: string }).name]), [
    ['wal_listener.public_seasons', 'INSERT', 'spring'],
    ['wal_listener.public_seasons', 'UPDATE', 'summer'],
    ['wal_listener.public_seasons', 'INSERT', 'autumn'],
  ]);
  assert.ok(daemon.logs().some((r) => /sslMode require has no effect because database\.enableTLS is false/.test(String(r.msg))), 'the Go meaning of enableTLS: false is said');
  // Its password is "postgres": log fields that say postgres are not blanked out as a secret.
  assert.ok(daemon.logs().some((r) => r.msg === 'replication streaming' && r.source === 'postgres'), daemon.stderr());
  assert.equal(await daemon.stop(), 0);
  daemon = undefined;
});
