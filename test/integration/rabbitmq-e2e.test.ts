/**
 * PostgreSQL → the daemon (publisher.type rabbitmq) → RabbitMQ → a durable queue bound to the
 * exchange with `#`. Workload: inserts, many updates of the same rows in separate transactions,
 * deletes. Every change must arrive as a persistent message whose messageId is the event id, each
 * row's changes in commit order; then the broker closes the daemon's connection mid-stream and
 * every change must still arrive (re-sent copies are duplicates with the same messageId).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ConsumeMessage } from 'amqplib';
import { parseLsn } from '../../src/sources/postgres/pgoutput.js';
import { CHANGES_PER_USER, createKeyedTables, type PublishedEvent, ROWS, runKeyedWorkload, UPDATE_ROUNDS } from '../support/workload.js';
import { databaseSection, startDaemon, type DaemonProcess } from '../support/daemon.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import { cleanup, closeConnectionsNamed, consumeMessages, declareBoundQueue, RABBIT_URL, uniqueName } from '../support/rabbitmq.js';



/** Checks every message's properties and returns the events, first copy of each id only, in queue order. */
function uniqueEvents(messages: readonly ConsumeMessage[], exchange: string): PublishedEvent[] {
  const seen = new Set<string>();
  const events: PublishedEvent[] = [];
  for (const msg of messages) {
    const event = JSON.parse(msg.content.toString('utf8')) as PublishedEvent;
    assert.equal(msg.properties.messageId, event.id, 'messageId is the event id');
    assert.equal(msg.properties.deliveryMode, 2, 'persistent');
    assert.equal(msg.properties.contentType, 'application/json');
    assert.deepEqual(msg.properties.headers, { lsn: event.lsn, table: `public.${event.table}`, action: event.action });
    assert.equal(msg.fields.routingKey, `${exchange}.public_${event.table}`);
    if (seen.has(event.id)) continue;
    seen.add(event.id);
    events.push(event);
  }
  return events;
}

/** Per row: the actions in queue order, and commit LSNs never going backwards. */
function changesByRow(events: readonly PublishedEvent[]): Map<number, PublishedEvent[]> {
  const rows = new Map<number, PublishedEvent[]>();
  for (const e of events) {
    const id = Number(e.action === 'DELETE' ? e.dataOld.id : e.data.id);
    rows.set(id, [...(rows.get(id) ?? []), e]);
  }
  for (const [id, list] of rows) {
    for (let i = 1; i < list.length; i++) assert.ok(parseLsn(list[i]!.lsn) > parseLsn(list[i - 1]!.lsn), `row ${id}: commit LSNs increase`);
  }
  return rows;
}

describe('RabbitMQ end to end through the daemon', () => {
  let db: TestDatabase;
  let daemon: DaemonProcess | undefined;
  const exchange = uniqueName('wl_rmq_e2e');
  const queue = uniqueName('wl_rmq_e2e_q');

  before(async () => {
    db = await createTestDatabase('wlrmq');
    await createKeyedTables(db, { orders: false });
    // Bound before the daemon starts: RabbitMQ drops (and confirms) messages no queue is bound for.
    await declareBoundQueue(exchange, queue, '#');
    daemon = await startDaemon({
      listener: { slotName: db.slotName('rmq'), publication: 'rmq_pub' },
      database: databaseSection(db),
      publisher: { type: 'rabbitmq', address: RABBIT_URL, topic: exchange, ackTimeout: '5s' },
    });
  });

  after(async () => {
    await daemon?.kill();
    await db?.drop();
    await cleanup({ queues: [queue], exchanges: [exchange] });
  });

  it('delivers inserts, updates and deletes as persistent messages, each row in commit order, messageId = event id', async () => {
    await runKeyedWorkload(db, { orders: false });

    const expected = ROWS * CHANGES_PER_USER;
    const messages = await consumeMessages(queue, expected, 60_000);
    const events = uniqueEvents(messages, exchange);
    assert.equal(events.length, expected, 'every change arrives');
    assert.equal(messages.length, expected, 'no duplicate without a fault');
    const rows = changesByRow(events);
    assert.equal(rows.size, ROWS);
    for (const [id, list] of rows) {
      assert.deepEqual(list.map((e) => e.action), ['INSERT', ...Array<string>(UPDATE_ROUNDS).fill('UPDATE'), 'DELETE'], `row ${id}: actions in commit order`);
      assert.deepEqual(list.filter((e) => e.action === 'UPDATE').map((e) => e.data.n), Array.from({ length: UPDATE_ROUNDS }, (_, i) => i + 1), `row ${id}: updates in commit order`);
    }
  });

  it('the broker closes the connection mid-stream: every change still arrives, each row in commit order', async () => {
    const client = await db.client();
    let transactions = 0;
    try {
      await client.query('BEGIN');
      for (let id = 1; id <= ROWS; id++) await client.query('INSERT INTO users VALUES ($1, $2, 0)', [id, `u${id}@example.com`]);
      await client.query('COMMIT');
      transactions++;
      // Single-row update transactions keep the daemon publishing while rabbitmqctl closes its
      // connection (only the daemon's: the broker is shared), and for 100 transactions after.
      let closed = false;
      const closing = closeConnectionsNamed(`wal-listener:${exchange}`, 'test').finally(() => (closed = true));
      let after = 0;
      for (let round = 1; !closed || after < 100; round++) {
        await client.query('UPDATE users SET n = $1 WHERE id = $2', [round, (round % ROWS) + 1]);
        transactions++;
        if (closed) after++;
      }
      assert.equal(await closing, 1, "the daemon's connection was closed by the broker");
      await client.query('DELETE FROM users');
      transactions++;
    } finally {
      await client.end();
    }
    const updates = transactions - 2;
    const expected = ROWS + updates + ROWS;

    // Duplicates (re-sent batches) carry the same messageId; read until every change is there.
    const ids = new Set<string>();
    const messages = await consumeMessages(queue, (got) => {
      for (let i = ids.size; i < got.length; i++) ids.add(got[i]!.properties.messageId as string);
      return ids.size >= expected;
    }, 60_000, 500);
    const events = uniqueEvents(messages, exchange);
    assert.equal(events.length, expected, 'every change arrives');
    const rows = changesByRow(events);
    assert.equal(rows.size, ROWS);
    for (const [id, list] of rows) {
      assert.equal(list[0]!.action, 'INSERT', `row ${id}: insert first`);
      assert.equal(list.at(-1)!.action, 'DELETE', `row ${id}: delete last`);
      const rounds = list.filter((e) => e.action === 'UPDATE').map((e) => e.data.n as number);
      assert.deepEqual(rounds, [...rounds].sort((a, b) => a - b), `row ${id}: updates in commit order`);
    }
    assert.ok(daemon!.logs().some((r) => r.msg === 'RabbitMQ connection lost' && /CONNECTION_FORCED/.test(String(r.err))), 'the daemon saw the close');
    assert.ok(daemon!.logs().filter((r) => r.msg === 'connected to RabbitMQ').length >= 2, 'and reconnected');
    assert.ok(!daemon!.stderr().includes('guest:guest'), 'the password is never logged');

    if (process.env.RMQ_E2E_LOGS) console.log(daemon!.logs().filter((r) => r.level !== 'debug').map((r) => JSON.stringify(r)).join('\n'));
    const code = await daemon!.stop();
    daemon = undefined;
    assert.equal(code, 0);
  });
});
