/**
 * The outbox workload (issue 13) shared by the four broker tests: goharvest's outbox table, 1,000
 * records per way of writing (rows by SQL, pg_logical_emit_message by SQL, the wal-listener/outbox
 * stasher into the table and as messages) over 20 keys and 3 topics, written by 4 concurrent
 * transactions at a time; every 5th transaction rolls back, every 3rd committed one deletes its
 * rows before committing, and some update a row (publishing nothing). Each key belongs to one
 * writer and one topic, so its commit order is the writer's order. A record is identified by its
 * `rec` header; its payload is UTF-8 text with multi-byte characters, or NULL (an empty payload, a
 * Kafka tombstone) for every 97th.
 *
 * `assertOutboxDelivery` checks what a broker delivered: per broker-visible id exactly one record
 * (copies of an id identical), every committed record under exactly one id, nothing rolled back or
 * skipped, topic, key, payload bytes and headers as written, and each key's records in commit order.
 */
import assert from 'node:assert/strict';
import type pg from 'pg';
import { createStasher, type OutboxRecord } from '../../src/outbox/index.js';
import type { TestDatabase } from './postgres.js';

/** goharvest's outbox table (README of obsidiandynamics/goharvest), unchanged. */
export const GOHARVEST_TABLE = `CREATE TABLE IF NOT EXISTS outbox (
  id                  BIGSERIAL PRIMARY KEY,
  create_time         TIMESTAMP WITH TIME ZONE NOT NULL,
  kafka_topic         VARCHAR(249) NOT NULL,
  kafka_key           VARCHAR(100) NOT NULL,
  kafka_value         VARCHAR(10000),
  kafka_header_keys   TEXT[] NOT NULL,
  kafka_header_values TEXT[] NOT NULL,
  leader_id           UUID
)`;

export const WAYS = ['table', 'message', 'stasher-table', 'stasher-message'] as const;
export type Way = (typeof WAYS)[number];

const RECORDS = 1000;
const KEYS = 20;
const WRITERS = 4;
const PER_TXN = 10;

export interface WrittenRecord {
  readonly rec: string;
  readonly topic: string;
  readonly key: string;
  /** null: written as NULL (empty payload, a Kafka tombstone). */
  readonly value: string | null;
  readonly headers: Record<string, string>;
  /** Rolled back: must never arrive. */
  readonly rolledBack: boolean;
  /** Its row was deleted in the transaction that inserted it (table ways). */
  readonly deleted: boolean;
}

/** What a broker delivered, in delivery order (per key: the broker's order for that key). */
export interface DeliveredRecord {
  /** The broker-visible id (Nats-Msg-Id, Kafka header id, AMQP messageId, Pub/Sub attribute id). */
  readonly id: string;
  readonly topic: string;
  readonly key: string;
  readonly payload: Buffer;
  readonly headers: Record<string, string>;
  /** Kafka only: the value was null. */
  readonly tombstone?: boolean;
}

export async function createOutboxTable(db: TestDatabase): Promise<void> {
  await db.sql(GOHARVEST_TABLE);
}

/** Writes 1,000 records the given way; `topics`: the 3 topic names. Returns every record written, committed or not. */
export async function writeOutbox(db: TestDatabase, way: Way, topics: readonly [string, string, string]): Promise<WrittenRecord[]> {
  const written: WrittenRecord[][] = [];
  const clients = await Promise.all(Array.from({ length: WRITERS }, () => db.client()));
  try {
    await Promise.all(clients.map(async (client, writer) => (written[writer] = await writeAs(client, way, writer, topics))));
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
  return written.flat();
}

const stashers = { 'stasher-table': createStasher({ table: 'public.outbox' }), 'stasher-message': createStasher({ via: 'message' }) };

async function writeAs(client: pg.Client, way: Way, writer: number, topics: readonly [string, string, string]): Promise<WrittenRecord[]> {
  const keys = Array.from({ length: KEYS / WRITERS }, (_, i) => i * WRITERS + writer);
  const out: WrittenRecord[] = [];
  let n = 0;
  for (let txn = 0; n < RECORDS / WRITERS; txn++) {
    const rollback = txn % 5 === 4;
    const remove = !rollback && txn % 3 === 1 && (way === 'table' || way === 'stasher-table');
    const batch: WrittenRecord[] = [];
    for (let i = 0; i < PER_TXN && n < RECORDS / WRITERS; i++, n++) {
      const k = keys[n % keys.length]!;
      const rec = `${way}-${writer}-${n}`;
      const global = writer * 1000 + n;
      batch.push({
        rec,
        topic: topics[k % 3]!,
        key: `key-${way}-${k}`,
        value: global % 97 === 0 ? null : `{"rec":"${rec}","text":"grüße ✓ 🚀 ${'x'.repeat(global % 50)}"}`,
        headers: { rec, writer: String(writer), note: n % 2 === 0 ? 'ünïcode ✓' : '' },
        rolledBack: rollback,
        deleted: remove,
      });
    }
    await client.query('BEGIN');
    await write(client, way, batch);
    if (way === 'table' && txn % 4 === 2) await client.query("UPDATE outbox SET kafka_value = 'changed' WHERE id = (SELECT max(id) FROM outbox)");
    if (way === 'message' && txn % 4 === 3) {
      // Neither of these may arrive: another prefix, and a non-transactional message.
      await client.query("SELECT pg_logical_emit_message(true, 'another-prefix', $1)", [JSON.stringify({ topic: topics[0], headers: { rec: `other-${writer}-${txn}` } })]);
      await client.query("SELECT pg_logical_emit_message(false, 'wal-listener', $1)", [JSON.stringify({ topic: topics[0], headers: { rec: `nontx-${writer}-${txn}` } })]);
    }
    if (remove) await client.query('DELETE FROM outbox WHERE kafka_header_values[1] = ANY ($1)', [batch.map((r) => r.rec)]);
    await client.query(rollback ? 'ROLLBACK' : 'COMMIT');
    out.push(...batch);
  }
  return out;
}

async function write(client: pg.Client, way: Way, batch: readonly WrittenRecord[]): Promise<void> {
  if (way === 'stasher-table' || way === 'stasher-message') {
    await stashers[way].stash(client, ...batch.map((r): OutboxRecord => ({ topic: r.topic, key: r.key, value: r.value, headers: r.headers })));
    return;
  }
  for (const r of batch) {
    if (way === 'table') {
      await client.query('INSERT INTO outbox (create_time, kafka_topic, kafka_key, kafka_value, kafka_header_keys, kafka_header_values) VALUES (now(), $1, $2, $3, $4, $5)', [
        r.topic,
        r.key,
        r.value,
        Object.keys(r.headers),
        Object.values(r.headers),
      ]);
    } else {
      await client.query("SELECT pg_logical_emit_message(true, 'wal-listener', $1)", [JSON.stringify({ topic: r.topic, key: r.key, value: r.value, headers: r.headers })]);
    }
  }
}

/** The number of records that must arrive. */
export function committed(written: readonly WrittenRecord[]): number {
  return written.filter((r) => !r.rolledBack).length;
}

/** Checks a broker's deliveries against what was written (see the file header). `extraHeaders`: header names the broker adds (id, lsn, …). */
export function assertOutboxDelivery(broker: string, written: readonly WrittenRecord[], delivered: readonly DeliveredRecord[], extraHeaders: readonly string[] = []): void {
  const byRec = new Map(written.map((r) => [r.rec, r]));
  const firstById = new Map<string, DeliveredRecord>();
  const idByRec = new Map<string, string>();
  for (const d of delivered) {
    const rec = d.headers.rec ?? '';
    const first = firstById.get(d.id);
    if (first) {
      assert.equal(first.headers.rec, rec, `${broker}: id ${d.id} carries two records`);
      continue;
    }
    firstById.set(d.id, d);
    const w = byRec.get(rec);
    assert.ok(w, `${broker}: record ${rec} was never written or must not be routed`);
    assert.ok(!w.rolledBack, `${broker}: rolled-back record ${rec} arrived`);
    const other = idByRec.get(rec);
    assert.equal(other, undefined, `${broker}: record ${rec} arrived under two ids (${other}, ${d.id})`);
    idByRec.set(rec, d.id);
    assert.equal(d.topic, w.topic, `${broker}: topic of ${rec}`);
    assert.equal(d.key, w.key, `${broker}: key of ${rec}`);
    assert.ok(d.payload.equals(Buffer.from(w.value ?? '', 'utf8')), `${broker}: payload of ${rec}: ${JSON.stringify(d.payload.toString())} ≠ ${JSON.stringify(w.value)}`);
    if (d.tombstone !== undefined) assert.equal(d.tombstone, w.value === null, `${broker}: tombstone of ${rec}`);
    const headers = { ...d.headers };
    for (const name of extraHeaders) delete headers[name];
    assert.deepEqual(headers, w.headers, `${broker}: headers of ${rec}`);
  }
  const missing = written.filter((r) => !r.rolledBack && !idByRec.has(r.rec));
  assert.equal(missing.length, 0, `${broker}: ${missing.length} committed record(s) missing, first ${missing[0]?.rec}`);
  assert.ok(written.some((r) => r.rolledBack) && written.some((r) => r.value === null && !r.rolledBack), 'the workload covers rollbacks and NULL values');

  // Per key: first arrivals in delivery order = the writer's commit order.
  const arrived = new Map<string, string[]>();
  for (const d of firstById.values()) arrived.set(d.key, [...(arrived.get(d.key) ?? []), d.headers.rec!]);
  const wanted = new Map<string, string[]>();
  for (const r of written) if (!r.rolledBack) wanted.set(r.key, [...(wanted.get(r.key) ?? []), r.rec]);
  for (const [key, recs] of wanted) assert.deepEqual(arrived.get(key), recs, `${broker}: order of key ${key}`);
}
