/**
 * Captures real pgoutput bytes for the decoder's unit tests: runs a small workload on a scratch
 * database and stores every message as hex (pg_logical_slot_peek_binary_changes returns exactly
 * the pgoutput messages the walsender would send inside XLogData frames).
 *
 *   node --import tsx scripts/capture-pgoutput.ts > test/fixtures/pgoutput-pg15.json
 */
import pg from 'pg';

const WORKLOAD = [
  "CREATE TYPE mood AS ENUM ('sad', 'happy')",
  'CREATE TABLE users (id int PRIMARY KEY, email text, mood mood, note text)',
  'CREATE TABLE orders (id bigint PRIMARY KEY, user_id int, total numeric)',
  'ALTER TABLE orders REPLICA IDENTITY FULL',
  "INSERT INTO users VALUES (1, 'a@b.c', 'happy', NULL), (2, 'ü€😀', 'sad', (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 400) i))",
  "UPDATE users SET email = 'new@b.c' WHERE id = 1",
  'UPDATE users SET id = 10 WHERE id = 1',
  "UPDATE users SET mood = 'happy' WHERE id = 2",
  'DELETE FROM users WHERE id = 10',
  'INSERT INTO orders VALUES (9007199254740993, 2, 12.50)',
  'UPDATE orders SET total = 13 WHERE id = 9007199254740993',
  'DELETE FROM orders',
  "SELECT pg_logical_emit_message(true, 'wal-listener', 'hello')",
  'TRUNCATE users, orders',
];

async function main(): Promise<void> {
  const admin = new pg.Client({ host: '127.0.0.1', user: 'postgres', database: 'postgres' });
  await admin.connect();
  const db = `capture_${Date.now().toString(36)}`;
  await admin.query(`CREATE DATABASE ${db}`);
  const client = new pg.Client({ host: '127.0.0.1', user: 'postgres', database: db });
  await client.connect();
  const slot = `${db}_slot`;
  try {
    await client.query('CREATE PUBLICATION capture FOR ALL TABLES');
    await client.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slot]);
    for (const sql of WORKLOAD) await client.query(sql);
    const rows = await client.query<{ lsn: string; xid: string; data: Buffer }>(
      "SELECT lsn::text, xid::text, data FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL, 'proto_version', '1', 'publication_names', 'capture', 'messages', 'true')",
      [slot],
    );
    const version = (await client.query<{ server_version: string }>('SHOW server_version')).rows[0]!.server_version;
    process.stdout.write(
      `${JSON.stringify({ serverVersion: version, workload: WORKLOAD, messages: rows.rows.map((r) => ({ lsn: r.lsn, xid: Number(r.xid), hex: r.data.toString('hex') })) }, null, 1)}\n`,
    );
  } finally {
    await client.query('SELECT pg_drop_replication_slot($1)', [slot]).catch(() => {});
    await client.end();
    await admin.query(`DROP DATABASE ${db} WITH (FORCE)`);
    await admin.end();
  }
}

await main();
