/**
 * Dead letters on Kafka end to end (issue 9, item 4: `publisher.onReject: deadLetter`): a row the
 * broker refuses lands in wal_listener.dead_letters with its reason, in order; the next 1,000
 * changes arrive; nothing is confirmed past the refused change before it is stored; and
 * `wal-listener dead-letters replay` delivers it once when the broker takes it again.
 *
 * What the test broker allows: librdkafka's mock cluster stores records of any size (it enforces
 * neither the broker's message.max.bytes nor a topic's max.message.bytes) and does not answer
 * DescribeConfigs, so the publisher cannot read a topic limit there (maxPayloadBytes stays
 * Infinity) and no size is ever refused. The refusal is therefore injected
 * (test/support/kafka-mock.c): the Produce request carrying the 2 MB row is answered with
 * MESSAGE_TOO_LARGE, the reply a real broker gives a record over max.message.bytes. "Raising the
 * limit" is injecting nothing more. Everything else (kafkajs, the publisher's error mapping, the
 * dispatcher, the store, the checkpointer, the CLI) is the real thing.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import YAML from 'yaml';
import { parseLsn } from '../../src/sources/postgres/pgoutput.js';
import { databaseSection, runCli, startDaemon, type DaemonProcess } from '../support/daemon.js';
import { consumeAll, startControlledKafkaMock, type ControlledKafkaMock } from '../support/kafka.js';
import { waitFor } from '../support/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import type { PublishedEvent } from '../support/workload.js';

const MESSAGE_TOO_LARGE = 10;
const PRODUCE = 0;

let db: TestDatabase;
let cluster: ControlledKafkaMock;
let daemon: DaemonProcess | undefined;
let dir: string;

before(async () => {
  [db, cluster] = await Promise.all([createTestDatabase('wlkdl'), startControlledKafkaMock()]);
  dir = mkdtempSync(join(tmpdir(), 'wl-kdl-'));
});
after(async () => {
  await daemon?.kill();
  await Promise.all([db?.drop(), cluster?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

async function currentLsn(): Promise<bigint> {
  return parseLsn((await db.sql<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn);
}

async function deadLetters(): Promise<{ id: string; table_name: string; lsn: string; broker: string; reason: string; bytes: number; event_id: string }[]> {
  const exists = (await db.sql<{ t: string | null }>("SELECT to_regclass('wal_listener.dead_letters')::text AS t")).rows[0]!.t;
  if (exists === null) return [];
  return (
    await db.sql(
      "SELECT id::text, message->>'table' AS table_name, position AS lsn, broker, reason, octet_length(payload) AS bytes, message_id AS event_id FROM wal_listener.dead_letters ORDER BY id",
    )
  ).rows as never;
}

test('a row Kafka refuses (MESSAGE_TOO_LARGE) is dead-lettered with its reason, the next 1,000 changes arrive, replay delivers it once', async () => {
  await db.sql('CREATE TABLE blobs (id int PRIMARY KEY, body text NOT NULL)');
  const topic = `dl${randomBytes(3).toString('hex')}`;
  const slot = db.slotName('dl');
  const configPath = join(dir, 'config.yml');
  writeFileSync(configPath, YAML.stringify({
    listener: { slotName: slot, publication: 'dl_pub', heartbeatInterval: '1s' },
    logger: { level: 'info', fmt: 'json' },
    database: databaseSection(db),
    publisher: { type: 'kafka', address: cluster.bootstrap, topic, onReject: 'deadLetter' },
  }));
  daemon = await startDaemon(null, { args: ['-c', configPath], waitForStreaming: true });

  await db.sql("INSERT INTO blobs SELECT g, 'small' FROM generate_series(1, 5) AS g");
  const beforeBig = await currentLsn();
  await waitFor('the first rows confirmed', async () => parseLsn((await db.confirmedFlush(slot)) ?? '0/0') >= beforeBig, 30_000);

  // The next Produce request is refused: it carries the big row, alone in its transaction.
  await cluster.injectError(PRODUCE, MESSAGE_TOO_LARGE);
  await db.sql("INSERT INTO blobs VALUES (100, repeat('x', 2000000))");
  const bigEnd = await currentLsn();
  // Until the dead letter is stored, nothing at or after the big row is confirmed.
  await waitFor('the dead letter stored', async () => {
    const confirmedBefore = parseLsn((await db.confirmedFlush(slot)) ?? '0/0');
    const stored = (await deadLetters()).length > 0;
    if (!stored) assert.ok(confirmedBefore < bigEnd, `confirmed ${confirmedBefore} reached the refused row (${bigEnd}) before it was stored`);
    return stored;
  }, 30_000, 20);

  for (let tx = 0; tx < 10; tx++) await db.sql(`INSERT INTO blobs SELECT g, 'after' FROM generate_series(${101 + tx * 100}, ${200 + tx * 100}) AS g`);
  const end = await currentLsn();
  await waitFor('everything confirmed', async () => parseLsn((await db.confirmedFlush(slot)) ?? '0/0') >= end, 60_000);

  const letters = await deadLetters();
  assert.equal(letters.length, 1);
  const letter = letters[0]!;
  assert.equal(letter.table_name, 'blobs');
  assert.equal(letter.broker, 'kafka');
  assert.match(letter.reason, /MESSAGE_TOO_LARGE/);
  assert.ok(letter.bytes > 2_000_000, `stored whole: ${letter.bytes} bytes`);
  assert.ok(daemon.logs().some((r) => r.level === 'error' && /dead letter/.test(String(r.msg))), 'an error log names the dead letter');

  const topics = [`${topic}.public_blobs`];
  const records = await consumeAll(cluster.bootstrap, topics, 5 + 1000);
  const rows = records.map((r) => (JSON.parse(r.value) as PublishedEvent).data.id as number).sort((a, b) => a - b);
  assert.deepEqual(rows, [1, 2, 3, 4, 5, ...Array.from({ length: 1000 }, (_, i) => 101 + i)], 'every change but the refused one, once');
  assert.equal(await daemon.stop(), 0);
  daemon = undefined;

  // The broker takes it now (no refusal injected): replay delivers it once and removes it.
  const replay = await runCli(['dead-letters', 'replay', '-c', configPath, '--all']);
  assert.equal(replay.code, 0, replay.stderr);
  assert.deepEqual(await deadLetters(), []);
  const afterReplay = await consumeAll(cluster.bootstrap, topics, 5 + 1000 + 1);
  const big = afterReplay.filter((r) => r.headers.id === letter.event_id);
  assert.equal(big.length, 1, 'the replayed row arrives once');
  assert.equal((JSON.parse(big[0]!.value) as PublishedEvent).data.id, 100);
});
