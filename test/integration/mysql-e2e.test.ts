/**
 * MariaDB (the machine's server, row binlog) → the real daemon (source.type mysql) → NATS JetStream
 * (a private nats-server) and Kafka (librdkafka's mock cluster), two daemons reading the same
 * binlog at once. Workload: inserts, updates and deletes over three tables (every type of
 * test/support/mysql-types.ts, a composite key, no key) plus a database outside mysql.databases.
 * Every published value is compared, as the JSON text the broker holds, with what MariaDB returns
 * for the same row (an oracle query with CAST/HEX/TO_BASE64/BIN, not our converter).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { startDaemon, type DaemonProcess } from '../support/daemon.js';
import { consumeDistinct, startKafkaMock, type KafkaMock } from '../support/kafka.js';
import { comparePositions, type MysqlPosition } from '../../src/sources/mysql/position.js';
import { binlogEndNow, createMysqlDatabase, MYSQL_HOST, MYSQL_PORT, MYSQL_USER, query, requireRowBinlog, storedPosition, uniqueServerId, type MysqlTestDatabase } from '../support/mysql.js';
import { compareRow, oracle, rawMembers, ROWS, TYPES_TABLE, UPDATES } from '../support/mysql-types.js';
import { readStream, startNats, type NatsServer } from '../support/nats.js';
import { waitFor } from '../support/ports.js';

let db: MysqlTestDatabase;
let other: MysqlTestDatabase;
let nats: NatsServer;
let nc: NatsConnection;
let kafka: KafkaMock;
let dir: string;
const daemons: DaemonProcess[] = [];
const serverIds: number[] = [];

before(async () => {
  await requireRowBinlog();
  [db, other, nats, kafka] = await Promise.all([createMysqlDatabase('wl_my_e2e'), createMysqlDatabase('wl_my_other'), startNats(), startKafkaMock()]);
  nc = await nats.connect();
  dir = mkdtempSync(join(tmpdir(), 'wl-my-e2e-'));
});

after(async () => {
  for (const d of daemons) await d.kill();
  await nc?.close();
  await Promise.all([nats?.stop(), kafka?.stop(), db?.drop(), other?.drop()]);
  for (const id of serverIds) await query('DELETE FROM wal_listener.positions WHERE server_id = ?', [id]).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

/** A daemon on the machine's MariaDB reading `db` only. */
async function start(publisher: Record<string, unknown>, listener: Record<string, unknown>, positionStore: string): Promise<DaemonProcess> {
  const serverId = uniqueServerId();
  serverIds.push(serverId);
  const daemon = await startDaemon(
    {
      source: { type: 'mysql' },
      mysql: { host: MYSQL_HOST, port: MYSQL_PORT, user: MYSQL_USER, serverId, databases: [db.name], positionStore },
      listener,
      publisher,
    },
    { waitForStreaming: false },
  );
  daemons.push(daemon);
  await daemon.waitForLog('binlog streaming', 60_000);
  return daemon;
}

interface Published {
  readonly where: string;
  readonly raw: string;
  readonly event: { id: string; schema: string; table: string; action: string; lsn: string; xid: number; commitTime: string; data: Record<string, unknown>; dataOld: Record<string, unknown> };
}

/** The JSON text of each column of `data` or `dataOld`, as published. */
const columns = (p: Published, image: 'data' | 'dataOld'): Record<string, string> => rawMembers(rawMembers(p.raw)[image]!);

test('inserts, updates and deletes over several tables and every type reach JetStream and Kafka with the values MariaDB returns', async () => {
  await db.sql(`${TYPES_TABLE};
    CREATE TABLE orders (k1 INT, k2 VARCHAR(10), note VARCHAR(20), PRIMARY KEY (k1, k2)) ENGINE=InnoDB;
    CREATE TABLE nokey (a INT, b VARCHAR(10)) ENGINE=InnoDB`);
  await other.sql('CREATE TABLE t (id INT PRIMARY KEY)');
  const natsDaemon = await start({ type: 'nats', address: nats.url, topic: 'wlmy' }, { topicsMap: { [`${db.name}_orders`]: 'orders' } }, 'table');
  const kafkaDaemon = await start(
    { type: 'kafka', address: kafka.bootstrap, topic: 'wlmyk' },
    { filter: { tables: { vals: null, nokey: null, [`${db.name}.orders`]: ['insert', 'delete'] } } },
    `file:${join(dir, 'kafka-position.json')}`,
  );

  await db.sql(`INSERT INTO vals VALUES ${ROWS.join(',\n')}`);
  const inserted = await oracle(db);
  for (const statement of UPDATES) await db.sql(statement);
  const updated = await oracle(db);
  await db.sql(`BEGIN; INSERT INTO orders VALUES (1, 'a', 'n1'), (2, 'b😀', 'n2'); INSERT INTO nokey VALUES (1, 'x'); INSERT INTO \`${other.name}\`.t VALUES (1); COMMIT`);
  await db.sql("BEGIN; UPDATE orders SET note = 'n3' WHERE k1 = 1; UPDATE nokey SET b = 'y'; COMMIT");
  await db.sql('DELETE FROM vals');
  await db.sql('BEGIN; DELETE FROM orders WHERE k1 = 2; DELETE FROM nokey; COMMIT');
  const end = await binlogEndNow();

  const natsExpected = 3 * ROWS.length + 4 + 3;
  const kafkaExpected = 3 * ROWS.length + 3 + 3;
  await waitFor('every change in JetStream', async () => (await readStream(nc, 'wlmy').catch(() => [])).length >= natsExpected, 60_000);
  const stored = await readStream(nc, 'wlmy');
  const records = await consumeDistinct(kafka.bootstrap, [`wlmyk.${db.name}_vals`, `wlmyk.${db.name}_orders`, `wlmyk.${db.name}_nokey`], kafkaExpected, 60_000);
  assert.equal(stored.length, natsExpected, 'JetStream: every change once');

  const viaNats: Published[] = stored.map((m) => {
    assert.equal(m.msgId, m.json.id, 'Nats-Msg-Id is the event id');
    return { where: `NATS ${m.subject}`, raw: m.raw, event: m.json as unknown as Published['event'] };
  });
  // Kafka is at least once: a redelivered copy carries the same id and is dropped, as consumers do.
  const kafkaById = new Map<string, Published>();
  for (const r of records) {
    const event = JSON.parse(r.value) as Published['event'];
    assert.equal(r.headers.id, event.id, 'the Kafka header id is the event id');
    const keyRow = event.action === 'DELETE' ? event.dataOld : event.data;
    const key = event.table === 'vals' ? JSON.stringify({ id: keyRow.id }) : event.table === 'orders' ? JSON.stringify({ k1: keyRow.k1, k2: keyRow.k2 }) : `${db.name}.nokey`;
    assert.equal(r.key, key, `Kafka key of ${event.action} ${event.table}`);
    assert.equal(r.topic, `wlmyk.${db.name}_${event.table}`);
    kafkaById.set(event.id, { where: `Kafka ${r.topic}`, raw: r.value, event });
  }
  const viaKafka = [...kafkaById.values()];
  assert.equal(viaKafka.length, kafkaExpected, 'Kafka: every change that passes the filter');

  for (const list of [viaNats, viaKafka]) {
    assert.equal(new Set(list.map((p) => p.event.id)).size, list.length, 'every change has its own id');
    const vals = list.filter((p) => p.event.table === 'vals');
    const of = (action: string) => vals.filter((p) => p.event.action === action);
    assert.equal(of('INSERT').length, ROWS.length);
    assert.equal(of('UPDATE').length, ROWS.length);
    assert.equal(of('DELETE').length, ROWS.length);
    for (const p of of('INSERT')) {
      compareRow(columns(p, 'data'), inserted, `${p.where} INSERT`, true);
      assert.deepEqual(p.event.dataOld, {});
    }
    for (const p of of('UPDATE')) {
      compareRow(columns(p, 'dataOld'), inserted, `${p.where} UPDATE before image`, true);
      compareRow(columns(p, 'data'), updated, `${p.where} UPDATE after image`, true);
    }
    for (const p of of('DELETE')) {
      compareRow(columns(p, 'dataOld'), updated, `${p.where} DELETE`, true);
      assert.deepEqual(p.event.data, {});
    }
    for (const p of list) {
      assert.equal(p.event.schema, db.name, 'schema is the database; nothing from the database outside mysql.databases');
      assert.match(p.event.lsn, /^[\w.-]+\.\d{6}:\d+$/, 'lsn is binlog file:offset');
      assert.equal(typeof p.event.xid, 'number');
      assert.match(p.event.commitTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000000Z$/);
    }
  }
  const rest = (list: Published[]) => list.filter((p) => p.event.table !== 'vals').map((p) => ({ table: p.event.table, action: p.event.action, data: p.event.data, dataOld: p.event.dataOld }));
  assert.deepEqual(rest(viaNats), [
    { table: 'orders', action: 'INSERT', data: { k1: 1, k2: 'a', note: 'n1' }, dataOld: {} },
    { table: 'orders', action: 'INSERT', data: { k1: 2, k2: 'b😀', note: 'n2' }, dataOld: {} },
    { table: 'nokey', action: 'INSERT', data: { a: 1, b: 'x' }, dataOld: {} },
    { table: 'orders', action: 'UPDATE', data: { k1: 1, k2: 'a', note: 'n3' }, dataOld: { k1: 1, k2: 'a', note: 'n1' } },
    { table: 'nokey', action: 'UPDATE', data: { a: 1, b: 'y' }, dataOld: { a: 1, b: 'x' } },
    { table: 'orders', action: 'DELETE', data: {}, dataOld: { k1: 2, k2: 'b😀', note: 'n2' } },
    { table: 'nokey', action: 'DELETE', data: {}, dataOld: { a: 1, b: 'y' } },
  ], 'NATS: the other tables\' changes in commit order, whole rows before and after');
  assert.deepEqual(
    stored.map((m) => m.subject.replace(db.name, '<db>')),
    stored.map((m) => (m.json.table === 'orders' ? 'wlmy.orders' : `wlmy.<db>_${String(m.json.table)}`)),
    'subjects: <topic>.<database>_<table>, topicsMap applied',
  );
  const kafkaRest = rest(viaKafka).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  const natsFiltered = rest(viaNats).filter((c) => !(c.table === 'orders' && c.action === 'UPDATE')).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  assert.deepEqual(kafkaRest, natsFiltered, 'Kafka: the same changes, less what the filter drops');
  for (const p of viaKafka) {
    const twin = viaNats.find((n) => n.event.id === p.event.id);
    assert.ok(twin, `the Kafka event ${p.event.id} has the same id as its JetStream twin (ids come from the binlog position)`);
    assert.equal(p.raw, twin.raw, 'the same event text on both brokers');
  }
  // NATS stream order is binlog order: transactions' lsn never go back.
  const offsets = viaNats.map((p) => p.event.lsn);
  assert.deepEqual(offsets, [...offsets].sort((a, b) => a.localeCompare(b, 'en', { numeric: true })));

  // Both daemons confirm through the end of the binlog, each in its own store.
  await waitFor('the table store reaches the end of the workload', async () => {
    const stored = await storedPosition(serverIds[0]!);
    return stored !== undefined && comparePositions(stored, end) >= 0;
  }, 20_000);
  await waitFor('the file store reaches the end of the workload', () => {
    const stored = JSON.parse(readFileSync(join(dir, 'kafka-position.json'), 'utf8')) as MysqlPosition;
    return comparePositions(stored, end) >= 0;
  }, 20_000);
  assert.equal(await natsDaemon.stop(), 0);
  assert.equal(await kafkaDaemon.stop(), 0);
  daemons.splice(0);
});
