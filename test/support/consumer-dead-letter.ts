/**
 * What the consumer SDK does with a change whose handler fails every try, on every broker, with
 * the real daemon publishing: with a dead-letter destination the change goes there and its row's
 * later changes are still handled; without one the consumer stops with HandlerFailedError, and
 * the change is not lost: the next consumer of the same name receives it.
 */
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { createConsumer, HandlerFailedError } from '../../src/consumer/index.js';
import type { Change, Consumer, ConsumerOptions, ConsumerOptionsBase } from '../../src/consumer/types.js';
import { databaseSection, startDaemon, type DaemonProcess } from './daemon.js';
import { waitFor } from './ports.js';
import type { TestDatabase } from './postgres.js';

/** The topic of these tests (the daemon's publisher.topic). */
export const DL_TOPIC = 'sdkdl';

export interface DeadLetterBroker {
  /** The daemon's `publisher` section (topic DL_TOPIC). */
  readonly publisher: Record<string, unknown>;
  readonly daemonEnv?: Record<string, string>;
  /** createConsumer() options for this broker, with its dead-letter destination when `deadLetter`. */
  consumerOptions(shared: Pick<ConsumerOptionsBase, 'name' | 'retry' | 'tables'>, deadLetter: boolean): ConsumerOptions;
  /** The message in the dead-letter destination, once there is one: the event JSON, and the error the consumer attached where the broker can carry it. */
  readDeadLetter(): Promise<{ body: string; error: string | undefined }>;
}

export async function runDeadLetterScenario(db: TestDatabase, broker: DeadLetterBroker): Promise<void> {
  await db.sql('CREATE TABLE poison (id int PRIMARY KEY, note text)');
  const daemon: DaemonProcess = await startDaemon(
    { listener: { slotName: db.slotName('dl'), publication: 'dl_pub' }, database: databaseSection(db), publisher: broker.publisher },
    { env: broker.daemonEnv ?? {} },
  );
  const consumers: Consumer[] = [];
  const make = (name: string, deadLetter: boolean, poisonId: number | undefined, handled: string[]): Consumer => {
    const shared = { name: `${name}_${db.name}`, retry: { maxAttempts: 2, initialDelayMs: 10 }, tables: { 'public.poison': { columns: { id: 'int4', note: 'text' }, key: ['id'] } } };
    const consumer = createConsumer(broker.consumerOptions(shared, deadLetter));
    consumer.on('public.poison', (change: Change<{ id: number; note: string | null }>) => {
      if (change.action === 'INSERT' && change.after?.id === poisonId) throw new Error(`poison row ${poisonId}`);
      handled.push(`${change.action} ${(change.after ?? change.before)!.id}`);
    });
    consumers.push(consumer);
    return consumer;
  };
  try {
    // With a dead-letter destination: row 2's insert goes there, its update is still handled.
    const handledA: string[] = [];
    const a = make('dla', true, 2, handledA);
    await a.start();
    for (const sql of ["INSERT INTO poison VALUES (1, 'a')", "INSERT INTO poison VALUES (2, 'b')", "INSERT INTO poison VALUES (3, 'c')", "UPDATE poison SET note = 'fixed' WHERE id = 2"]) await db.sql(sql);
    await waitFor(`three changes handled and one dead-lettered (${handledA.join(', ')})`, () => handledA.length === 3 && a.stats.deadLettered === 1, 30_000, 20);
    assert.deepEqual([...handledA].sort(), ['INSERT 1', 'INSERT 3', 'UPDATE 2']);
    const dead = await broker.readDeadLetter();
    const event = JSON.parse(dead.body) as { action: string; data: { id: number } };
    assert.deepEqual([event.action, event.data.id], ['INSERT', 2], 'the failed change is in the dead-letter destination');
    if (dead.error !== undefined) assert.match(dead.error, /handler for public\.poison failed 2 times on event .*: poison row 2/);
    await a.stop();
    await a.closed;

    // Without one: the consumer stops with a clear error, and the change waits for the next consumer.
    const b = make('dlb', false, 5, []);
    await b.start();
    for (const id of [4, 5, 6]) await db.sql('INSERT INTO poison VALUES ($1, $2)', [id, `row ${id}`]);
    await assert.rejects(b.closed, (err: Error) => {
      assert.ok(err instanceof HandlerFailedError, `HandlerFailedError, got ${err.name}: ${err.message}`);
      assert.equal(err.code, 'WAL_CONSUMER_HANDLER');
      assert.deepEqual([err.failed.table, err.failed.attempts], ['public.poison', 2]);
      assert.match(err.message, /poison row 5/);
      return true;
    });
    const handledC: string[] = [];
    const c = make('dlb', false, undefined, handledC);
    await c.start();
    await waitFor(`row 5 handled by the next consumer (${handledC.join(', ')})`, () => handledC.includes('INSERT 5'), 30_000, 20);
    await delay(200);
    await c.stop();
    await c.closed;
  } finally {
    for (const consumer of consumers) await consumer.stop();
    await daemon.kill();
  }
}
