/**
 * The keyed workload the broker end-to-end tests share: rows inserted in one transaction, many
 * updates of the same rows in separate transactions (rows touched in a different order each
 * round), then deletes. Each row's events must arrive in commit order with one key.
 */
import assert from 'node:assert/strict';
import { parseLsn } from '../../src/sources/postgres/pgoutput.js';
import type { TestDatabase } from './postgres.js';

export const ROWS = 8;
export const UPDATE_ROUNDS = 30;
/** Changes per `users` row: insert, every round's update, delete. */
export const CHANGES_PER_USER = 1 + UPDATE_ROUNDS + 1;
/** Changes of the two `orders` rows: two inserts, one update of row 1 per round, two deletes. */
export const ORDER_CHANGES = 2 + UPDATE_ROUNDS + 2;

export async function createKeyedTables(db: TestDatabase, { orders = true } = {}): Promise<void> {
  await db.sql('CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL, n int NOT NULL)');
  if (orders) await db.sql('CREATE TABLE orders (id bigint PRIMARY KEY, note text)');
}

/** Runs the workload; returns the number of changes written per table. */
export async function runKeyedWorkload(db: TestDatabase, { orders = true } = {}): Promise<{ userChanges: number; orderChanges: number }> {
  const client = await db.client();
  try {
    await client.query('BEGIN');
    for (let id = 1; id <= ROWS; id++) await client.query('INSERT INTO users VALUES ($1, $2, 0)', [id, `u${id}@example.com`]);
    if (orders) await client.query("INSERT INTO orders VALUES (1, 'first'), (2, 'second')");
    await client.query('COMMIT');
    for (let round = 1; round <= UPDATE_ROUNDS; round++) {
      await client.query(round % 2 === 0 ? 'UPDATE users SET n = $1' : 'UPDATE users SET n = $1 WHERE id % 2 = 0', [round]);
      if (round % 2 === 1) await client.query('UPDATE users SET n = $1 WHERE id % 2 = 1', [round]);
      if (orders) await client.query('UPDATE orders SET note = $1 WHERE id = 1', [`round ${round}`]);
    }
    await client.query('DELETE FROM users WHERE id <= 3');
    for (let id = 4; id <= ROWS; id++) await client.query('DELETE FROM users WHERE id = $1', [id]);
    if (orders) await client.query('DELETE FROM orders');
  } finally {
    await client.end();
  }
  return { userChanges: ROWS * CHANGES_PER_USER, orderChanges: orders ? ORDER_CHANGES : 0 };
}

export interface KeyedEvent {
  action: string;
  lsn: string;
  data: Record<string, unknown>;
}

/** A published event as consumers parse it (DESIGN.md "The event"). */
export interface PublishedEvent extends KeyedEvent {
  id: string;
  schema: string;
  table: string;
  dataOld: Record<string, unknown>;
}

/**
 * The events of one key (`k` is `<subject> <key>`, e.g. `wal.public_users {"id":3}`) arrived in
 * commit order: insert, the workload's updates, delete, with increasing commit LSNs.
 */
export function assertKeyedOrder(k: string, events: readonly KeyedEvent[]): void {
  const isUsers = k.startsWith('wal.public_users');
  const updated = isUsers || k === 'wal.public_orders {"id":1}';
  const expected = ['INSERT', ...Array<string>(updated ? UPDATE_ROUNDS : 0).fill('UPDATE'), 'DELETE'];
  assert.deepEqual(events.map((e) => e.action), expected, `${k}: actions in commit order`);
  for (let i = 1; i < events.length; i++) {
    assert.ok(parseLsn(events[i]!.lsn) > parseLsn(events[i - 1]!.lsn), `${k}: commit LSNs increase (${events[i - 1]!.lsn} then ${events[i]!.lsn})`);
  }
  if (isUsers) {
    const rounds = events.filter((e) => e.action === 'UPDATE').map((e) => e.data.n);
    assert.deepEqual(rounds, Array.from({ length: UPDATE_ROUNDS }, (_, i) => i + 1), `${k}: updates in commit order`);
  }
}
