/**
 * What goes wrong with the server, on a private mariadbd (its own data directory and port, so the
 * machine's MariaDB is never restarted or reconfigured): binlog off or not in ROW/FULL form, missing
 * grants, a purged binlog file, and a server restart in the middle of a stream.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { WalListenerError } from '../../src/errors.js';
import { formatPosition, type MysqlPosition } from '../../src/sources/mysql/position.js';
import { createMysqlSource } from '../../src/sources/mysql/source.js';
import { createMysqlDatabase, purgeOldBinlogs, mysqlSourceConfig, query, startPrivateMariadb, type MysqlTestDatabase, type PrivateMariadb } from '../support/mysql.js';
import { waitFor } from '../support/ports.js';
import { json, RecordingSink } from '../support/recording-sink.js';

const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
let server: PrivateMariadb;
let db: MysqlTestDatabase;
let dir: string;

before(async () => {
  server = await startPrivateMariadb();
  db = await createMysqlDatabase('wl_faults', server.port);
  await db.sql('CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(20))');
  dir = mkdtempSync(join(tmpdir(), 'wl-mysql-faults-'));
});

after(async () => {
  await server?.remove();
  rmSync(dir, { recursive: true, force: true });
});

const config = (store = 'pos.json', user?: string) => {
  const c = mysqlSourceConfig({ port: server.port, databases: [db.name], positionStore: `file:${join(dir, store)}` });
  return user ? { ...c, mysql: { ...c.mysql!, user } } : c;
};

async function openFails(store: string, pattern: RegExp, code: string, user?: string): Promise<void> {
  const source = createMysqlSource(config(store, user), log);
  try {
    await assert.rejects(source.open(new RecordingSink<MysqlPosition>(), new AbortController().signal), (err: unknown) => {
      assert.ok(err instanceof WalListenerError, String(err));
      assert.equal(err.code, code, err.message);
      assert.equal(err.fatal, true, 'the daemon stops (exit 1)');
      assert.match(err.message, pattern);
      return true;
    });
  } finally {
    await source.close();
  }
}

test('binlog off, STATEMENT or MIXED format, or a MINIMAL row image: a fatal error naming the setting and the fix', async () => {
  try {
    await server.stop();
    await server.start({ logBin: false });
    await openFails('off.json', /log_bin is OFF\): set log_bin = mysql-bin and server_id = 1 in the \[mysqld\] section/, 'WAL_MYSQL_BINLOG');
    await server.stop();
    await server.start({ format: 'STATEMENT' });
    await openFails('stmt.json', /binlog_format = STATEMENT; the source reads row events only: set binlog_format = ROW/, 'WAL_MYSQL_BINLOG');
    await server.stop();
    await server.start({ format: 'MIXED' });
    await openFails('mixed.json', /binlog_format = MIXED/, 'WAL_MYSQL_BINLOG');
    await server.stop();
    await server.start({ rowImage: 'MINIMAL' });
    await openFails('minimal.json', /binlog_row_image = MINIMAL; .* set binlog_row_image = FULL/, 'WAL_MYSQL_BINLOG');
  } finally {
    await server.stop();
    await server.start();
  }
});

test('a user without REPLICATION SLAVE / REPLICATION CLIENT: a fatal error listing what is missing', async () => {
  await query("CREATE USER 'reader'@'127.0.0.1'; GRANT SELECT ON *.* TO 'reader'@'127.0.0.1'", [], server.port);
  await openFails('grants.json', /user reader lacks REPLICATION SLAVE, REPLICATION CLIENT: GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON \*\.\*/, 'WAL_MYSQL_GRANTS', 'reader');
});

test('a stored position whose binlog file was purged: a fatal error with the command to reset', async () => {
  const source = createMysqlSource(config('purged.json'), log);
  const session = await source.open(new RecordingSink<MysqlPosition>(), new AbortController().signal);
  await session.close();
  await source.close();
  await purgeOldBinlogs(server.port);
  await openFails('purged.json', /names a binlog file the server no longer has .*lost to this daemon.*DELETE FROM wal_listener\.positions WHERE server_id = <mysql\.serverId>; positionStore file: remove the file/, 'WAL_MYSQL_POSITION_LOST');
});

test('MariaDB restarted mid-stream: the session ends with a non-fatal error and a new one resumes from the confirmed position, nothing lost', async () => {
  const cfg = config('restart.json');
  const source = createMysqlSource(cfg, log);
  const sink = new RecordingSink<MysqlPosition>();
  let session = await source.open(sink, new AbortController().signal);
  // The pipeline's part: every committed transaction is acknowledged at once and confirmed.
  let confirmedThrough = 0;
  const confirmLoop = setInterval(() => {
    const committed = sink.committed;
    if (committed.length > confirmedThrough) {
      confirmedThrough = committed.length;
      session.confirm(committed[committed.length - 1]!.end as MysqlPosition);
    }
  }, 20);
  const written: number[] = [];
  let writing = true;
  const writer = (async () => {
    for (let id = 1; writing && id < 100_000; id++) {
      try {
        await db.sql('INSERT INTO items VALUES (?, ?)', [id, `v${id}`]);
        written.push(id);
      } catch {
        await new Promise((r) => setTimeout(r, 50)); // the server is restarting: this row was not written
      }
    }
  })();
  try {
    await waitFor('rows before the restart', () => written.length >= 50);
    await server.stop();
    await assert.rejects(session.ended, (err: unknown) => {
      assert.ok(err instanceof WalListenerError, String(err));
      assert.equal(err.code, 'WAL_MYSQL_CONNECT', err.message);
      assert.equal(err.fatal, false, 'the daemon reconnects');
      return true;
    });
    await session.close();
    await server.start();
    session = await waitFor('a new session', async () => source.open(sink, new AbortController().signal), 30_000, 250);
    const before = written.length;
    await waitFor('rows after the restart', () => written.length >= before + 50);
  } finally {
    writing = false;
    await writer;
  }
  const ids = (): Set<number> => new Set(sink.changes.map((ch) => Number(json(ch.table!, ch.row!).id)));
  await waitFor('every written row', () => written.every((id) => ids().has(id)), 20_000);
  clearInterval(confirmLoop);
  const stored = (await query<{ id: number }[]>('SELECT id FROM items', [], server.port, db.name)).map((r) => r.id);
  assert.deepEqual([...ids()].sort((a, b) => a - b), stored.sort((a, b) => a - b), 'every row in the table was handed over, and nothing else');
  const last = sink.committed[sink.committed.length - 1]!.end as MysqlPosition;
  session.confirm(last);
  await session.close();
  await source.close();
  const file = JSON.parse((await import('node:fs')).readFileSync(join(dir, 'restart.json'), 'utf8')) as { file: string; offset: number };
  assert.equal(`${file.file}:${file.offset}`, formatPosition(last), 'the store holds the last confirmed position');
});
