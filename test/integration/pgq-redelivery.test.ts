/**
 * At-least-once through restarts: 10,000 events from 3 concurrent producers while the source is
 * restarted (a new session) eight times at random moments, each time with a batch handed over but
 * not yet confirmed; half of the restarts close the session, half kill its backend
 * (pg_terminate_backend: the session must end with a non-fatal WAL_PGQ_READ). PgQ hands the
 * unfinished batch out again: every event is delivered, and a re-delivered event has the same id.
 * With pgq.audit the audit table ends with exactly one row per event.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WalListenerError } from '../../src/errors.js';
import type { RoutedMessage } from '../../src/pipeline/change.js';
import { eventIdOf } from '../../src/sources/pgq/ids.js';
import { createPgqSource, type PgqPosition } from '../../src/sources/pgq/source.js';
import { captureLogger, consumerInfo, pgqConfig, pgqFixture } from '../support/pgq.js';
import { waitFor } from '../support/ports.js';
import { RecordingSink } from '../support/pgq-recording-sink.js';

const EVENTS = 10_000;
const PRODUCERS = 3;
const RESTARTS = 8;

const fixture = pgqFixture('wl_pgq_redeliver', ['jobs']);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const random = (min: number, max: number) => min + Math.floor(Math.random() * (max - min));

/** Producer `p` inserts its share in transactions of 1–60 events, with short pauses between them. */
async function produce(p: number, count: number): Promise<void> {
  const client = await fixture.db.client();
  try {
    for (let n = 0; n < count; ) {
      const size = Math.min(count - n, random(1, 61));
      await client.query("SELECT pgq.insert_event('jobs', 'job.p' || $1, json_build_object('p', $1::int, 'n', g)::text) FROM generate_series($2::int, $3::int) g", [p, n, n + size - 1]);
      n += size;
      await sleep(random(30, 90)); // production lasts through the restarts (about 7 s)
    }
  } finally {
    await client.end();
  }
}

const distinctEvents = (messages: RoutedMessage[]): number => new Set(messages.map((m) => m.payload.toString())).size;

/** Positions of the batches the sink handed over (whole or in part) and did not confirm. */
function unconfirmed(sink: RecordingSink<PgqPosition>): Set<string> {
  const confirmedTick = sink.confirmed.at(-1)?.tickId ?? -1;
  return new Set(sink.transactions.filter((t) => t.end === undefined || t.end.tickId > confirmedTick).map((t) => t.info.position));
}

test('10,000 events from 3 producers, 8 restarts before confirming: every event delivered, re-deliveries keep their id', async () => {
  const { logger } = captureLogger('info');
  const source = createPgqSource(pgqConfig(fixture.db, { queue: 'jobs', audit: true }), logger, undefined, { pollMs: 50, fetchSize: 200, batchTarget: 1500 });
  const delivered: RoutedMessage[] = [];
  const redeliveredBatches: string[] = [];
  // A new consumer reads from the tick of its registration: register before producing.
  await fixture.db.sql("SELECT pgq.register_consumer('jobs', 'wal-listener')");
  const producers = Promise.all(Array.from({ length: PRODUCERS }, (_, p) => produce(p, Math.floor(EVENTS / PRODUCERS) + (p < EVENTS % PRODUCERS ? 1 : 0))));
  let unconfirmedAtRestart = new Set<string>();
  try {
    for (let restart = 0; restart <= RESTARTS; restart++) {
      const sink = new RecordingSink<PgqPosition>({ manualConfirm: true });
      const session = await source.open(sink, new AbortController().signal);
      sink.attach(session);
      // A pipeline confirming now and then (the checkpointer does so at most once a second).
      const pump = setInterval(() => sink.confirmNow(), random(10, 40));
      try {
        if (restart === RESTARTS) {
          await producers;
          await waitFor('every event', () => distinctEvents(delivered.concat(sink.messages)) === EVENTS, 120_000);
          await waitFor('the last batch finished', async () => (await consumerInfo(fixture.db, 'jobs'))?.pending_events === '0' && (await consumerInfo(fixture.db, 'jobs'))?.current_batch === null, 30_000);
        } else {
          await sleep(random(50, 400));
          clearInterval(pump);
          // A batch handed over (whole or in part) and not confirmed: the restart comes "before confirming".
          await waitFor('a batch in flight', () => unconfirmed(sink).size > 0, 30_000);
          if (restart % 2 === 1) {
            const pid = await waitFor('the session backend', async () => {
              const r = await fixture.db.sql<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'wal-listener' AND query NOT ILIKE '%pg_stat_activity%'");
              return r.rows.length === 1 ? r.rows[0]!.pid : undefined;
            });
            await fixture.db.sql('SELECT pg_terminate_backend($1)', [pid]);
            await assert.rejects(session.ended, (err: unknown) => err instanceof WalListenerError && err.code === 'WAL_PGQ_READ' && !err.fatal);
          }
        }
      } finally {
        clearInterval(pump);
        await session.close();
      }
      for (const t of sink.transactions) if (unconfirmedAtRestart.has(t.info.position)) redeliveredBatches.push(t.info.position);
      unconfirmedAtRestart = unconfirmed(sink);
      delivered.push(...sink.messages);
    }
  } finally {
    await producers.catch(() => undefined);
    await source.close();
  }

  const idsByEvent = new Map<string, Set<string>>();
  for (const m of delivered) {
    const key = m.payload.toString();
    let ids = idsByEvent.get(key);
    if (!ids) idsByEvent.set(key, (ids = new Set()));
    ids.add(m.id!);
  }
  assert.equal(idsByEvent.size, EVENTS, 'every event delivered');
  for (const [event, ids] of idsByEvent) assert.equal(ids.size, 1, `event ${event} was delivered with ${ids.size} different ids`);
  assert.ok(delivered.length > EVENTS, 'some events were delivered again (the restarts hit unconfirmed batches)');
  assert.ok(redeliveredBatches.length >= RESTARTS / 2, `PgQ handed the same batch (same id) out again after restarts: ${redeliveredBatches.length}`);

  // Within a producer, first deliveries come in production order (PgQ's ev_id order).
  const prefix = delivered[0]!.id!.slice(0, 15);
  const firstSeen = new Map<string, number>();
  for (const m of delivered) if (!firstSeen.has(m.payload.toString())) firstSeen.set(m.payload.toString(), Number(eventIdOf(prefix, m.id!)));
  const byProducer = new Map<number, number[]>();
  for (const [payload, evId] of firstSeen) {
    const { p, n } = JSON.parse(payload) as { p: number; n: number };
    (byProducer.get(p) ?? byProducer.set(p, []).get(p)!)[n] = evId;
  }
  for (const [p, evIds] of byProducer) assert.deepEqual(evIds, [...evIds].sort((a, b) => a - b), `producer ${p} in order`);

  // The audit, written with each finish_batch, holds every event exactly once, with the id delivered.
  const audit = (await fixture.db.sql<{ ev_id: string; message_id: string }>("SELECT ev_id::text, message_id::text FROM wal_listener.audit WHERE queue = 'jobs'")).rows;
  assert.equal(audit.length, EVENTS, 'audit rows = finished events');
  assert.deepEqual(new Set(audit.map((a) => a.message_id)), new Set(delivered.map((m) => m.id)));
  assert.ok(audit.every((a) => eventIdOf(prefix, a.message_id) === a.ev_id));
});
