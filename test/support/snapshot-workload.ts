/**
 * For snapshot and backfill tests: a table of N rows, writers that insert, update and delete at
 * random while a snapshot runs, a wait until the daemon confirmed everything written so far, and a
 * consumer model that applies events in order (SNAPSHOT, INSERT, UPDATE: upsert; DELETE: delete)
 * and compares the result with the table, row by row.
 */
import assert from 'node:assert/strict';
import { runCli } from './daemon.js';
import type { TestDatabase } from './postgres.js';

export async function createRowsTable(db: TestDatabase, table: string, rows: number): Promise<void> {
  await db.sql(`CREATE TABLE ${table} (id int PRIMARY KEY, grp int NOT NULL, v int NOT NULL, note text)`);
  await db.sql(`INSERT INTO ${table} SELECT g, g % 10, 0, 'row ' || g FROM generate_series(1, $1) g`, [rows]);
}

export interface Writers {
  /** Changes committed so far. */
  readonly count: () => number;
  stop(): Promise<void>;
}

/**
 * `n` writers, each a loop of small transactions: update, delete or insert of a random id in
 * 1..maxId*1.1. `session`: SQL each writer runs first on its connection (e.g. a setting).
 */
export async function startWriters(db: TestDatabase, table: string, n: number, maxId: number, session?: string): Promise<Writers> {
  let stopped = false;
  let count = 0;
  const loops: Promise<void>[] = [];
  for (let w = 0; w < n; w++) {
    const client = await db.client();
    if (session !== undefined) await client.query(session);
    loops.push((async () => {
      try {
        while (!stopped) {
          const id = 1 + Math.floor(Math.random() * maxId * 1.1);
          const pick = Math.random();
          if (pick < 0.6) await client.query(`UPDATE ${table} SET v = v + 1, note = $2 WHERE id = $1`, [id, `w${w} ${count}`]);
          else if (pick < 0.8) await client.query(`DELETE FROM ${table} WHERE id = $1`, [id]);
          else await client.query(`INSERT INTO ${table} VALUES ($1, $1 % 10, 1, 'inserted') ON CONFLICT (id) DO UPDATE SET v = ${table}.v + 100`, [id]);
          count++;
          await new Promise((r) => setTimeout(r, 2));
        }
      } finally {
        await client.end();
      }
    })());
  }
  return {
    count: () => count,
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

/** Requests a backfill through the CLI (`args` after `backfill -c <configPath>`: table and options); returns its id. */
export async function requestBackfill(configPath: string, ...args: string[]): Promise<string> {
  const requested = await runCli(['backfill', '-c', configPath, ...args]);
  assert.equal(requested.code, 0, requested.stderr);
  return /backfill (\d+) of \S+ requested/.exec(requested.stdout)![1]!;
}

/** A request's row in wal_listener.backfills (`rows` as text: a bigint). */
export interface BackfillRow {
  status: string;
  rows: string;
  kind: string;
  started_at: Date | null;
  finished_at: Date | null;
}

export async function backfillRow(db: TestDatabase, id: string): Promise<BackfillRow | undefined> {
  return (await db.sql<BackfillRow>('SELECT status, rows::text, kind, started_at, finished_at FROM wal_listener.backfills WHERE id = $1', [id])).rows[0];
}

/** Waits until the slot confirmed every WAL position written until now (everything published and acknowledged). */
export async function waitConfirmed(db: TestDatabase, slot: string, timeoutMs = 60_000): Promise<void> {
  const target = (await db.sql<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await db.sql<{ ok: boolean }>('SELECT confirmed_flush_lsn >= $2::pg_lsn AS ok FROM pg_replication_slots WHERE slot_name = $1', [slot, target]);
    if (r.rows[0]?.ok) return;
    if (Date.now() > deadline) throw new Error(`slot ${slot} did not confirm ${target} within ${timeoutMs} ms`);
    await new Promise((res) => setTimeout(res, 250));
  }
}

/** The consumer's model of the table: key → row JSON. */
export class TableModel {
  readonly rows = new Map<string, string>();
  readonly actions: Record<string, number> = {};
  /** Per key, what the consumer applied (for a failure's message): position, action, v, note, lsn. */
  private readonly history = new Map<string, string[]>();
  private applied = 0;

  /** Applies one event; `position` (e.g. the stream sequence) goes into the key's history. */
  apply(event: Record<string, unknown>, table: string, position: number = this.applied): void {
    this.applied++;
    if (event.table !== table) return;
    const action = String(event.action);
    this.actions[action] = (this.actions[action] ?? 0) + 1;
    const data = event.data as Record<string, unknown>;
    const row = (action === 'DELETE' ? event.dataOld : data) as Record<string, unknown> | undefined;
    if (row?.id !== undefined) {
      const seen = this.history.get(String(row.id)) ?? [];
      seen.push(`#${position} ${action} v=${String(row.v)} note=${String(row.note)} lsn=${String(event.lsn)} xid=${String(event.xid)}`);
      this.history.set(String(row.id), seen);
    }
    if (action === 'DELETE') this.rows.delete(String((event.dataOld as Record<string, unknown>).id));
    else if (action === 'SNAPSHOT' || action === 'INSERT' || action === 'UPDATE') this.rows.set(String(data.id), JSON.stringify(data));
    else if (action === 'TRUNCATE') this.rows.clear();
  }

  /** Compares every row with the table's (`where` limits both). */
  async assertEquals(db: TestDatabase, table: string, where = 'true'): Promise<void> {
    const actual = await db.sql<{ id: number; grp: number; v: number; note: string | null }>(`SELECT id, grp, v, note FROM ${table} WHERE ${where} ORDER BY id`);
    const expected = new Map(actual.rows.map((r) => [String(r.id), JSON.stringify({ id: r.id, grp: r.grp, v: r.v, note: r.note })]));
    const missing = [...expected.keys()].filter((k) => !this.rows.has(k));
    const extra = [...this.rows.keys()].filter((k) => !expected.has(k));
    const differ = [...expected.keys()].filter((k) => this.rows.has(k) && this.rows.get(k) !== expected.get(k));
    assert.deepEqual(
      { missing: missing.slice(0, 5), extra: extra.slice(0, 5), differ: differ.slice(0, 5).map((k) => [this.rows.get(k), expected.get(k)]), counts: [missing.length, extra.length, differ.length] },
      { missing: [], extra: [], differ: [], counts: [0, 0, 0] },
      `what the consumer applied to the first rows that are wrong:\n${[...missing, ...extra, ...differ].slice(0, 5).map((k) => `${k}: ${(this.history.get(k) ?? ['nothing']).join(' | ')}`).join('\n')}`,
    );
  }
}
