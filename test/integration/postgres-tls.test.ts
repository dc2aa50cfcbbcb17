/**
 * TLS to PostgreSQL: database.enableTLS with ihippik/wal-listener's meaning, and tlsError() turning
 * a TLS setting the server cannot satisfy into WAL_PG_TLS with what to change. The machine's
 * PostgreSQL has no TLS; an embedded PostgreSQL 18 with a throwaway CA serves the certificate cases.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startEmbeddedPostgres, type EmbeddedServer } from '../../scripts/embedded-postgres.js';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import type { DatabaseConfig } from '../../src/config/schema.js';
import { WalListenerError } from '../../src/errors.js';
import { connectClient, tlsError } from '../../src/sources/postgres/connection-options.js';
import { decodeFrame, type PgOutputMessage } from '../../src/sources/postgres/pgoutput.js';
import { ReplicationConnection } from '../../src/sources/postgres/replication.js';
import { valueAt } from '../../src/pipeline/change.js';
import { PG_HOST, PG_PASSWORD, PG_PORT, PG_USER } from '../support/postgres.js';

function database(section: Record<string, unknown>): DatabaseConfig {
  const text = JSON.stringify({ listener: { slotName: 'unused' }, publisher: { type: 'stdout', topic: 't' }, database: section });
  return parseConfig(text, 'test').config.database;
}

/** The WAL_PG_TLS error connecting with `db` ends in; fails the test if it connects or fails otherwise. */
async function tlsFailure(db: DatabaseConfig): Promise<WalListenerError> {
  try {
    const client = await connectClient(db);
    await client.end();
  } catch (err) {
    const classified = tlsError(db, err);
    assert.ok(classified, `not classified as a TLS problem: ${String(err)}`);
    assert.equal(classified.code, 'WAL_PG_TLS');
    return classified;
  }
  assert.fail(`connected with sslMode ${db.sslMode}`);
}

/** Whether the session `db` opens is encrypted (pg_stat_ssl). */
async function encrypted(db: DatabaseConfig): Promise<boolean> {
  const client = await connectClient(db);
  try {
    const { rows } = await client.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
    return rows[0]?.ssl ?? false;
  } finally {
    await client.end();
  }
}

const shared = { host: PG_HOST, port: PG_PORT, user: PG_USER, name: 'postgres', ...(PG_PASSWORD ? { password: PG_PASSWORD } : {}) };

async function sslSetting(db: DatabaseConfig): Promise<string | undefined> {
  const client = await connectClient(db);
  try {
    return (await client.query<{ ssl: string }>('SHOW ssl')).rows[0]?.ssl;
  } finally {
    await client.end();
  }
}

const sharedHasTls = (await sslSetting(database(shared))) !== 'off';

describe('a PostgreSQL without TLS', { skip: sharedHasTls && 'this PostgreSQL has TLS on' }, () => {
  test("the Go config_example.yml's enableTLS: false with sslMode: require connects in plain text", async () => {
    const fixture = new URL('../fixtures/go-config_example.yml', import.meta.url).pathname;
    const env = { WAL_DATABASE_HOST: PG_HOST, WAL_DATABASE_PORT: String(PG_PORT), WAL_DATABASE_NAME: 'postgres', WAL_DATABASE_PASSWORD: PG_PASSWORD ?? '' };
    const { config } = loadConfig(fixture, env);
    assert.equal(await encrypted(config.database), false);
  });

  test('enableTLS: true with sslMode require is WAL_PG_TLS, saying the server has no TLS', async () => {
    const err = await tlsFailure(database({ ...shared, enableTLS: true, sslMode: 'require' }));
    assert.match(err.message, new RegExp(`PostgreSQL at ${PG_HOST}:${PG_PORT} does not accept TLS, but database\\.sslMode is require: turn ssl on in PostgreSQL`));
  });

  test('enableTLS: true alone means require, as in the Go daemon', async () => {
    await tlsFailure(database({ ...shared, enableTLS: true }));
  });

  test('sslMode prefer falls back to plain text; a missing database is not a TLS problem', async () => {
    assert.equal(await encrypted(database({ ...shared, sslMode: 'prefer' })), false);
    const err = await connectClient(database({ ...shared, name: 'no_such_database_here' })).then(
      (c) => c.end(),
      (e: unknown) => e,
    );
    assert.equal(tlsError(database(shared), err), null);
  });
});

describe('a PostgreSQL with TLS and a private CA', () => {
  let server: EmbeddedServer;
  let dir: string;
  let caPath: string;
  let base: Record<string, unknown>;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wl-tls-'));
    const openssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=wal-listener test CA');
    openssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=db.example');
    writeFileSync(join(dir, 'san.ext'), 'subjectAltName=DNS:db.example\n');
    openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'san.ext');
    // Only TLS connections are accepted, so a plain one is refused by pg_hba.conf.
    writeFileSync(join(dir, 'pg_hba.conf'), 'hostssl all all 127.0.0.1/32 password\nhostssl replication all 127.0.0.1/32 password\n');
    if (userInfo().uid === 0) {
      // The server runs as the postgres user; its key must be that user's and private.
      const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }));
      const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }));
      for (const file of ['', 'server.key', 'server.crt', 'pg_hba.conf']) chownSync(join(dir, file), uid, gid);
    }
    execFileSync('chmod', ['600', join(dir, 'server.key')]);
    execFileSync('chmod', ['755', dir]);
    caPath = join(dir, 'ca.crt');
    server = await startEmbeddedPostgres({
      extraFlags: ['-c', 'ssl=on', '-c', `ssl_cert_file=${join(dir, 'server.crt')}`, '-c', `ssl_key_file=${join(dir, 'server.key')}`, '-c', `hba_file=${join(dir, 'pg_hba.conf')}`],
    });
    base = { host: server.host, port: server.port, user: server.user, password: server.password, name: 'postgres' };
  });
  after(async () => {
    await server?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('require encrypts without verifying; verify-ca with the CA verifies', async () => {
    assert.equal(await encrypted(database({ ...base, enableTLS: true })), true);
    assert.equal(await encrypted(database({ ...base, enableTLS: true, sslMode: 'verify-ca', sslRootCert: caPath })), true);
    assert.ok(readFileSync(caPath, 'utf8').includes('BEGIN CERTIFICATE'));
  });

  test('verify-ca without the CA: the certificate fails verification', async () => {
    const err = await tlsFailure(database({ ...base, sslMode: 'verify-ca' }));
    assert.match(err.message, /presented a certificate that failed verification .*give the CA that signed it in database\.sslRootCert/);
  });

  test('verify-full by an address the certificate does not list: names the host', async () => {
    const err = await tlsFailure(database({ ...base, sslMode: 'verify-full', sslRootCert: caPath }));
    assert.match(err.message, /presented a certificate that is not for the name 127\.0\.0\.1 .*use sslMode verify-ca/);
  });

  test('the replication stream runs over TLS: frames cut from the TLS stream arrive whole, a row of many TLS records too', async () => {
    const db = database({ ...base, enableTLS: true, sslMode: 'verify-ca', sslRootCert: caPath });
    const sql = await connectClient(db);
    const replication = await ReplicationConnection.open(db);
    try {
      await sql.query('CREATE TABLE tls_stream (id int PRIMARY KEY, body text)');
      await sql.query('CREATE PUBLICATION tls_stream_pub FOR TABLE tls_stream');
      await sql.query(`SELECT pg_create_logical_replication_slot('tls_stream_slot', 'pgoutput')`);
      // 100 rows, every tenth 100 kB (more than six 16 kB TLS records), in separate transactions.
      const body = (i: number): string => (i % 10 === 0 ? `${i}:`.padEnd(100_000, 'abcdefghij') : `row ${i}`);
      for (let i = 0; i < 100; i++) await sql.query('INSERT INTO tls_stream VALUES ($1, $2)', [i, body(i)]);
      // The frames are read by the CopyData framer (not pg's parser) on this connection too.
      assert.notEqual((replication as unknown as { framer: unknown }).framer, null);
      const inserts: string[] = [];
      let commits = 0;
      let done!: () => void;
      const all = new Promise<void>((resolve) => (done = resolve));
      await replication.start('tls_stream_slot', 'tls_stream_pub', 0n, (bytes, start, end) => {
        const decoded = decodeFrame(bytes.subarray(start, end));
        if (decoded.kind !== 'xlog') return;
        const message: PgOutputMessage = decoded.message;
        if (message.tag === 'insert') inserts.push(String(valueAt(message.newTuple, 1)));
        if (message.tag === 'commit' && ++commits === 100) done();
      });
      await all;
      assert.equal(inserts.length, 100);
      inserts.forEach((text, i) => assert.equal(text, body(i), `row ${i}`));
    } finally {
      await replication.close();
      await sql.query(`SELECT pg_drop_replication_slot('tls_stream_slot')`).catch(() => {});
      await sql.end();
    }
  });

  test('a server that takes only TLS, with TLS off: says to turn it on', async () => {
    const err = await tlsFailure(database({ ...base, enableTLS: false, sslMode: 'require' }));
    assert.match(err.message, /accepts this connection only over TLS .*set database\.enableTLS: true or database\.sslMode: require/);
  });
});
