/**
 * Events the broker refuses for good (`publisher.onReject: deadLetter`): mikkoo's rule, retried
 * through pgq.event_retry until `maxFailures`, then stored whole in wal_listener.dead_letters, while
 * the queue moves on. With `pgq.audit`, the audit holds exactly the delivered events, and the audit
 * report finds an event that was finished without an audit row.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { auditReport, formatAuditReport } from '../../src/sources/pgq/audit-report.js';
import { createPgqSource, type PgqPosition } from '../../src/sources/pgq/source.js';
import { captureLogger, consumerInfo, pgqConfig, pgqFixture, queueEvents } from '../support/pgq.js';
import { waitFor } from '../support/ports.js';
import { RecordingSink } from '../support/pgq-recording-sink.js';

const fixture = pgqFixture('wl_pgq_fail', ['refusals']);

test('a refused event is retried maxFailures times, then dead-lettered; the queue moves on; the audit holds exactly the delivered events', async () => {
  const { logger, records } = captureLogger('info');
  const config = pgqConfig(fixture.db, { queue: 'refusals', maxFailures: 2, retryDelay: '200ms', audit: true });
  const source = createPgqSource(config, logger, undefined, { pollMs: 50 });
  const sink = new RecordingSink<PgqPosition>({
    deadLetters: source.deadLetters(),
    refuse: (m) => (m.payload.toString() === 'poison' ? 'message size 9 exceeds the limit' : undefined),
  });
  const session = await source.open(sink, new AbortController().signal);
  sink.attach(session);
  try {
    await fixture.db.sql("SELECT pgq.insert_event('refusals', 'job', x) FROM unnest(ARRAY['ok-1', 'poison', 'ok-2']) x");
    await waitFor('the dead letter', async () => {
      const r = await fixture.db.sql("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'wal_listener' AND tablename = 'dead_letters'");
      return r.rows[0]!.n === 1 && (await fixture.db.sql('SELECT 1 FROM wal_listener.dead_letters')).rowCount === 1;
    }, 30_000);
    await fixture.db.sql("SELECT pgq.insert_event('refusals', 'job', 'ok-3')");
    await waitFor('the queue moved on', () => sink.messages.some((m) => m.payload.toString() === 'ok-3'));
    await waitFor('all finished', async () => (await consumerInfo(fixture.db, 'refusals'))?.current_batch === null);

    const poison = sink.messages.filter((m) => m.payload.toString() === 'poison');
    assert.equal(poison.length, 3, 'handed over once and again after each of the 2 retries');
    assert.equal(new Set(poison.map((m) => m.id)).size, 1, 'every attempt carries the same id');
    assert.equal(sink.refused.length, 3);
    for (const name of ['ok-1', 'ok-2', 'ok-3']) assert.equal(sink.messages.filter((m) => m.payload.toString() === name).length, 1, `${name} once`);

    const events = await queueEvents(fixture.db, 'refusals');
    const poisonRows = events.filter((e) => e.ev_data === 'poison');
    assert.deepEqual(poisonRows.map((e) => e.ev_retry), [null, 1, 2], 'PgQ put it back twice (ev_retry 1 and 2)');

    const dead = (await fixture.db.sql('SELECT source, position, message_id, subject, broker, reason, message, payload FROM wal_listener.dead_letters')).rows;
    assert.equal(dead.length, 1);
    const letter = dead[0]!;
    assert.equal(letter.source, 'pgq');
    assert.equal(letter.message_id, poison[0]!.id);
    assert.equal(letter.subject, 'job');
    assert.match(letter.position, /^pgq:refusals:\d+$/);
    assert.match(letter.reason, /message size 9 exceeds the limit .*retried 2 times/);
    assert.equal(letter.payload.toString(), 'poison');
    assert.equal(letter.message.exchange, 'wal_listener');
    assert.equal(letter.message.properties.appId, 'wal-listener');
    assert.ok(letter.message.properties.headers.sequence, 'the whole message: properties and headers too');

    const listed = await source.deadLetters().list();
    assert.equal(listed.length, 1);
    assert.equal(listed[0]!.message.id, poison[0]!.id);
    assert.equal(listed[0]!.message.payload.toString(), 'poison');

    const audit = (await fixture.db.sql('SELECT ev_id::text, message_id::text, exchange, routing_key FROM wal_listener.audit ORDER BY ev_id')).rows;
    const delivered = sink.messages.filter((m) => m.payload.toString() !== 'poison');
    assert.deepEqual(audit.map((a) => a.message_id), delivered.map((m) => m.id), 'one audit row per delivered event, none for the refused one');
    assert.deepEqual(audit.map((a) => a.ev_id), events.filter((e) => e.ev_data !== 'poison').map((e) => e.ev_id));
    assert.ok(audit.every((a) => a.exchange === 'wal_listener' && a.routing_key === 'job'));

    const warnings = records().filter((r) => r.level === 40 && /rejected event/.test(String(r.msg)));
    assert.equal(warnings.reduce((n, r) => n + Number(r.retried), 0), 2, 'retries logged');
    assert.equal(warnings.reduce((n, r) => n + Number(r.deadLettered), 0), 1, 'the dead letter logged');

    // The audit report accounts for every event: 3 delivered, 1 dead-lettered.
    let report = await auditReport(config, 3_600_000);
    let queue = report.queues.find((q) => q.queue === 'refusals')!;
    assert.deepEqual([queue.events, queue.delivered, queue.deadLettered, queue.pending, queue.missing], [4, 3, 1, 0, 0], formatAuditReport(report));
    assert.equal(queue.auditRows, 3);
    assert.ok(queue.historyFrom);

    // An audit row gone: the report names the event as missing.
    const lost = audit[1]!.ev_id;
    await fixture.db.sql('DELETE FROM wal_listener.audit WHERE ev_id = $1', [lost]);
    report = await auditReport(config, 3_600_000);
    queue = report.queues.find((q) => q.queue === 'refusals')!;
    assert.equal(queue.missing, 1);
    assert.equal(report.missing, 1);
    assert.equal(queue.missingEvents[0]!.evId, lost);
    assert.match(formatAuditReport(report), new RegExp(`missing: ev_id ${lost} `));

    await source.deadLetters().remove([listed[0]!.storeId]);
    assert.equal((await source.deadLetters().list()).length, 0);
  } finally {
    await session.close();
    await source.close();
  }
});
