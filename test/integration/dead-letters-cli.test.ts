/**
 * `wal-listener dead-letters list|replay` against letters in a real wal_listener.dead_letters table
 * and a real NATS server: list shows them, replay re-publishes in stored order and removes what
 * the broker acknowledged; usage errors exit 2, unknown ids exit 1.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import YAML from 'yaml';
import { configSchema } from '../../src/config/schema.js';
import type { OutboundMessage } from '../../src/pipeline/message.js';
import { PostgresDeadLetterStore } from '../../src/sources/postgres/dead-letter-store.js';
import { databaseSection, runCli } from '../support/daemon.js';
import { readStream, startNats, type NatsServer } from '../support/nats.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

let db: TestDatabase;
let nats: NatsServer;
let nc: NatsConnection;
let configPath: string;
const topic = 'dl_replay';

before(async () => {
  db = await createTestDatabase('wl_dlcli');
  nats = await startNats();
  nc = await nats.connect();
  const dir = mkdtempSync(join(tmpdir(), 'wl-dlcli-'));
  configPath = join(dir, 'config.yml');
  writeFileSync(configPath, YAML.stringify({ listener: { slotName: db.slotName() }, database: databaseSection(db), publisher: { type: 'nats', address: nats.url, topic } }));
});

after(async () => {
  await nc?.close();
  await nats?.stop();
  await db?.drop();
});

const message = (id: string, payload: string | Buffer, extra: Partial<OutboundMessage> = {}): OutboundMessage => ({
  id,
  subject: `${topic}.public_items`,
  key: '{"id":1}',
  payload,
  lsn: '0/16B3748',
  schema: 'public',
  table: 'items',
  action: 'INSERT',
  headers: null,
  properties: null,
  exchange: null,
  ...extra,
});

test('list, replay in stored order, removal; usage errors exit 2; unknown ids exit 1', async () => {
  const empty = await runCli(['dead-letters', 'list', '-c', configPath]);
  assert.equal(empty.code, 0, empty.stderr);
  assert.equal(empty.stdout, 'no dead letters\n');

  const config = configSchema.parse({ listener: { slotName: 'x' }, database: databaseSection(db), publisher: { type: 'nats', topic } });
  const store = new PostgresDeadLetterStore(config.database);
  const event = '{"id":"00000000-0000-8000-8000-000000000001","schema":"public","table":"items","action":"INSERT","data":{"id":1},"dataOld":{}}';
  await store.store([{ message: message('00000000-0000-8000-8000-000000000001', event), broker: 'nats', reason: 'message of 2097152 bytes exceeds the limit' }]);
  await store.store([
    {
      message: message('00000000-0000-8000-8000-000000000002', Buffer.from([0, 1, 2, 255]), { action: 'MESSAGE', subject: `${topic}.outbox`, headers: { trace: 'abc' } }),
      broker: 'nats',
      reason: 'too large',
    },
  ]);
  await store.close();

  const listed = await runCli(['dead-letters', 'list', '-c', configPath]);
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /#1 .* public\.items INSERT lsn 0\/16B3748 {2}event 00000000-0000-8000-8000-000000000001 {2}\d+ bytes {2}nats: message of 2097152 bytes exceeds the limit/);
  assert.match(listed.stdout, /2 dead letter\(s\)/);
  const json = await runCli(['dead-letters', 'list', '-c', configPath, '--json']);
  const rows = json.stdout.trim().split('\n').map((l) => JSON.parse(l) as { id: string; payload: string; payloadEncoding: string });
  assert.deepEqual(rows.map((r) => r.id), ['1', '2']);
  assert.equal(rows[0]!.payload, event);
  assert.deepEqual([rows[1]!.payload, rows[1]!.payloadEncoding], [Buffer.from([0, 1, 2, 255]).toString('base64'), 'base64']);

  assert.equal((await runCli(['dead-letters', 'replay', '-c', configPath])).code, 2, 'replay needs --id or --all');
  assert.equal((await runCli(['dead-letters', 'frobnicate', '-c', configPath])).code, 2);
  const unknown = await runCli(['dead-letters', 'replay', '-c', configPath, '--id', '99']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /no dead letter with id 99/);

  const replayed = await runCli(['dead-letters', 'replay', '-c', configPath, '--all']);
  assert.equal(replayed.code, 0, replayed.stderr);
  assert.match(replayed.stdout, /2 of 2 replayed/);
  const stored = await readStream(nc, topic);
  assert.deepEqual(stored.map((m) => m.msgId), ['00000000-0000-8000-8000-000000000001', '00000000-0000-8000-8000-000000000002']);
  assert.equal(stored[0]!.raw, event);
  const after = await runCli(['dead-letters', 'list', '-c', configPath]);
  assert.equal(after.stdout, 'no dead letters\n');
});
