/**
 * The real daemon (source.type mysql) against a private mariadbd (its own data directory and port;
 * the machine's MariaDB is never restarted or reconfigured):
 *  - binlog off, or binlog_format=STATEMENT: exit 1 naming the setting;
 *  - a stored position whose binlog file was purged: exit 1 with the command to reset, and that
 *    command works;
 *    (both before the publisher connects: the broker given is unreachable), and `wal-listener
 *    check` reports each as a problem (`status`: the position lost, then stored again);
 *  - MariaDB shut down and started again, then killed (-9) and started again, while rows are being
 *    written: the daemon reconnects by itself and every committed row is in JetStream once; /ready
 *    says 503 while MariaDB is away, reconnects_total and replication_lag_bytes are exported.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { runCli, startDaemon, writeConfig, type DaemonProcess } from '../support/daemon.js';
import { createItemsTable, createMysqlDatabase, purgeOldBinlogs, MYSQL_HOST, MYSQL_USER, query, startPrivateMariadb, uniqueServerId, type MysqlTestDatabase, type PrivateMariadb } from '../support/mysql.js';
import { readStream, startNats, streamCount, type NatsServer } from '../support/nats.js';
import { httpGet, metricValue } from '../support/ops.js';
import { ReadyWatcher } from '../support/outage.js';
import { freePort, waitFor } from '../support/ports.js';

let server: PrivateMariadb;
let db: MysqlTestDatabase;
let nats: NatsServer;
let nc: NatsConnection;
const daemons: DaemonProcess[] = [];

before(async () => {
  [server, nats] = await Promise.all([startPrivateMariadb(), startNats()]);
  nc = await nats.connect();
  db = await createMysqlDatabase('wl_my_dfaults', server.port);
  await createItemsTable(db);
});

after(async () => {
  for (const d of daemons) await d.kill();
  await nc?.close();
  await Promise.all([server?.remove(), nats?.stop()]);
});

function daemonConfig(serverId: number, publisher: Record<string, unknown> = { type: 'stdout', topic: 'wlmy' }): Record<string, unknown> {
  return {
    source: { type: 'mysql' },
    mysql: { host: MYSQL_HOST, port: server.port, user: MYSQL_USER, serverId, databases: [db.name] },
    listener: { refreshConnection: '1s' },
    publisher,
  };
}

/**
 * Runs a daemon that must stop by itself with exit 1, before it reaches the broker (a NATS address
 * where nothing listens: it would retry that forever); returns its stderr.
 */
async function exitsWith1(serverId: number): Promise<string> {
  const daemon = await startDaemon(daemonConfig(serverId, { type: 'nats', address: '127.0.0.1:1', topic: 'wlmy' }), { waitForStreaming: false });
  daemons.push(daemon);
  const code = await Promise.race([daemon.exited, new Promise((r) => setTimeout(() => r('still running after 30 s'), 30_000))]);
  await daemon.kill();
  assert.equal(code, 1, daemon.stderr().slice(-2000));
  return daemon.stderr();
}

test('binlog off or binlog_format=STATEMENT: the daemon exits 1 naming the setting and the fix', async () => {
  try {
    await server.stop();
    await server.start({ logBin: false });
    const off = await exitsWith1(uniqueServerId());
    assert.match(off, /WAL_MYSQL_BINLOG/);
    assert.match(off, /does not write a binary log \(log_bin is OFF\): set log_bin = mysql-bin and server_id = 1 in the \[mysqld\] section/);
    await server.stop();
    await server.start({ format: 'STATEMENT' });
    const statement = await exitsWith1(uniqueServerId());
    assert.match(statement, /WAL_MYSQL_BINLOG/);
    assert.match(statement, /binlog_format = STATEMENT; the source reads row events only: set binlog_format = ROW/);
    const checked = await runCli(['check', '-c', writeConfig(daemonConfig(uniqueServerId()))]);
    assert.equal(checked.code, 1, checked.stdout + checked.stderr);
    assert.match(checked.stdout, /^problem binlog: .*binlog_format = STATEMENT; the source reads row events only/m, '`wal-listener check` names it too');
  } finally {
    await server.stop();
    await server.start();
  }
});

test('a stored position whose binlog file was purged: exit 1 with the reset command, which lets it start again', async () => {
  const serverId = uniqueServerId();
  const first = await startDaemon(daemonConfig(serverId), { waitForStreaming: false });
  daemons.push(first);
  await first.waitForLog('binlog streaming', 60_000);
  assert.equal(await first.stop(), 0);
  await purgeOldBinlogs(server.port);

  const stderr = await exitsWith1(serverId);
  assert.match(stderr, /WAL_MYSQL_POSITION_LOST/);
  assert.match(stderr, /names a binlog file the server no longer has/);
  const configPath = writeConfig(daemonConfig(serverId));
  const lost = await runCli(['check', '-c', configPath]);
  assert.equal(lost.code, 1, lost.stdout + lost.stderr);
  assert.match(lost.stdout, new RegExp(`^problem binlog position: .*names a binlog file the server no longer has[^]*fix: .*DELETE FROM wal_listener\\.positions WHERE server_id = ${serverId}`, 'm'), '`wal-listener check` names it too');
  const status = await runCli(['status', '-c', configPath]);
  assert.equal(status.code, 1, status.stdout + status.stderr);
  assert.match(status.stdout, /^LOST {7}\S+:\d+ \(wal_listener\.positions \(server_id \d+\)\) names a binlog file the server no longer has/m, '`wal-listener status` says so');
  const reset = /(DELETE FROM wal_listener\.positions WHERE server_id = <mysql\.serverId>)/.exec(stderr);
  assert.ok(reset, `the message gives the reset command: ${stderr.slice(-1500)}`);
  await query(reset[1]!.replace('<mysql.serverId>', String(serverId)), [], server.port);

  const again = await startDaemon(daemonConfig(serverId), { waitForStreaming: false });
  daemons.push(again);
  await again.waitForLog(/no stored binlog position: starting at the current end of the binlog/, 60_000);
  await again.waitForLog('binlog streaming', 30_000);
  assert.equal(await again.stop(), 0);
  const fine = await runCli(['check', '-c', configPath]);
  assert.equal(fine.code, 0, fine.stdout + fine.stderr);
  assert.match(fine.stdout, /^ok {6}binlog position: \S+:\d+ \(wal_listener\.positions \(server_id \d+\)\), \d+ bytes behind the end of the binlog$/m);
  const statusNow = await runCli(['status', '-c', configPath, '--json']);
  assert.equal(statusNow.code, 0, statusNow.stdout + statusNow.stderr);
  const now = JSON.parse(statusNow.stdout) as { position: string; lost: boolean; lagBytes: number };
  assert.equal(now.lost, false);
  assert.match(now.position, /^\S+\.\d{6}:\d+$/);
  assert.equal(typeof now.lagBytes, 'number');
});

test('MariaDB shut down and restarted, then killed and restarted, mid-stream: the daemon reconnects by itself, every committed row in JetStream once; /ready and metrics follow', async () => {
  const topic = 'wlmy_restart';
  const [serverPort, promPort] = [await freePort(), await freePort()];
  const base = daemonConfig(uniqueServerId(), { type: 'nats', address: nats.url, topic });
  const config = { ...base, listener: { ...(base.listener as object), serverPort }, monitoring: { promAddr: `127.0.0.1:${promPort}` } };
  const daemon = await startDaemon(config, { waitForStreaming: false });
  daemons.push(daemon);
  await daemon.waitForLog('binlog streaming', 60_000);
  const ready = new ReadyWatcher(serverPort);
  const writes = keepWritingThroughRestarts();
  try {
    await ready.waitFor(200, Date.now(), 10_000);
    for (const how of ['shutdown', 'kill -9'] as const) {
      const before = writes.written();
      await waitFor('rows before the restart', async () => (writes.written() >= before + 100 && (await streamCount(nc, topic)) >= before + 50) || undefined, 60_000);
      const down = Date.now();
      if (how === 'shutdown') await server.stop();
      else await server.kill();
      await ready.waitFor(503, down, 10_000);
      const body = (await httpGet(serverPort, '/ready')).body;
      assert.match(body, /MySQL binlog connection lost or not available; reconnecting/, `/ready while MariaDB is down (${how})`);
      await server.start();
      const up = Date.now();
      const after = writes.written();
      await waitFor('rows written after the restart', () => writes.written() >= after + 100 || undefined, 60_000);
      await ready.waitFor(200, up, 30_000);
    }
  } finally {
    await writes.stop();
    await ready.stop();
  }
  const rows = (await query<{ id: string }[]>('SELECT id FROM items ORDER BY id', [], server.port, db.name)).map((r) => Number(r.id));
  await waitFor('every committed row in the stream', async () => (await streamCount(nc, topic)) >= rows.length, 60_000);
  await new Promise((r) => setTimeout(r, 500));
  const stored = await readStream(nc, topic);
  assert.deepEqual(stored.map((m) => (m.json.data as { id: number }).id).sort((a, b) => a - b), rows, 'every committed row once, nothing else');
  assert.equal(new Set(stored.map((m) => m.msgId)).size, stored.length);
  const sessions = daemon.logs().filter((l) => /binlog streaming/.test(String(l.msg))).length;
  assert.ok(sessions >= 3, `the daemon opened a new binlog session after each restart (${sessions} sessions)`);
  const metrics = (await httpGet(promPort, '/metrics')).body;
  assert.ok((metricValue(metrics, 'reconnects_total', { target: 'mysql' }) ?? 0) >= 2, 'reconnects_total{target="mysql"} counts both restarts');
  await waitFor('replication_lag_bytes 0 once caught up (binlog bytes behind)', async () => metricValue((await httpGet(promPort, '/metrics')).body, 'replication_lag_bytes', {}) === 0 || undefined, 20_000);
  assert.equal(daemon.child.exitCode, null, 'still running');
  assert.equal(await daemon.stop(), 0);
});

/** Single-row inserts with ids 1, 2, …; a failed insert (server down) is retried with the same id. */
function keepWritingThroughRestarts(): { written: () => number; stop: () => Promise<void> } {
  let n = 0;
  let going = true;
  const done = (async () => {
    while (going) {
      try {
        await db.sql('INSERT INTO items (id, name, amount, at) VALUES (?, ?, 1, NOW(6))', [n + 1, `item ${n + 1}`]);
        n++;
      } catch {
        // Down, or the commit's fate is unknown: the row may exist; then the next id goes on.
        const [row] = await db.sql<{ n: string | null }[]>('SELECT MAX(id) AS n FROM items').catch(() => [{ n: null }]);
        if (row?.n !== null && row?.n !== undefined) n = Number(row.n);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  })();
  return { written: () => n, stop: async () => { going = false; await done; } };
}
