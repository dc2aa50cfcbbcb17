/**
 * The consumer SDK end to end, the same for every broker: the real daemon publishes the 1,000
 * changes of consumer-workload.ts; the SDK hands them to handlers. Ten changes fail on their first
 * try. Halfway through the daemon is killed (-9) while the consumer has handled changes whose
 * transaction the slot has not confirmed, and restarted: PostgreSQL sends those again, with the
 * same ids. Checked: every change handled exactly once, with exact typed values, each row's
 * changes in commit order and never two at once, and the redelivered copies skipped.
 */
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { createConsumer } from '../../src/consumer/index.js';
import { HandlerFailedError } from '../../src/consumer/errors.js';
import type { Change, ConsumerOptions, ConsumerOptionsBase, ConsumerStats } from '../../src/consumer/types.js';
import { parseLsn } from '../../src/sources/postgres/pgoutput.js';
import { COLUMN_TYPES, buildWorkload, createWorkloadTables, opSignature, signature, writeOps, type Op } from './consumer-workload.js';
import { databaseSection, startDaemon, type DaemonProcess } from './daemon.js';
import { waitFor } from './ports.js';
import type { TestDatabase } from './postgres.js';

export interface ScenarioBroker {
  /** The daemon's `publisher` section. */
  readonly publisher: Record<string, unknown>;
  readonly daemonEnv?: Record<string, string>;
  /** createConsumer() options for this broker, around the shared ones given. */
  consumerOptions(shared: Pick<ConsumerOptionsBase, 'tables' | 'retry' | 'onError' | 'name'>): ConsumerOptions;
  /** Start the consumer before the daemon publishes (RabbitMQ queues and Pub/Sub subscriptions keep only what arrives after they exist). */
  readonly consumerFirst: boolean;
  /** Waited between the kill and the restart (NATS: longer than the stream's duplicate window, so the copies reach the consumer). */
  readonly pauseBeforeRestartMs?: number;
}

interface Handled {
  readonly change: Change;
  attempts: number;
  successes: number;
}

const FAIL_FIRST = 10;
const PHASE_ONE = 500;

export async function runConsumerScenario(db: TestDatabase, broker: ScenarioBroker): Promise<ConsumerStats> {
  await createWorkloadTables(db);
  const ops = buildWorkload();
  const bySignature = new Map(ops.map((op) => [opSignature(op), op]));
  const failFirst = new Set(ops.filter((op) => op.action !== 'DELETE' && op.index % 97 === 3).slice(0, FAIL_FIRST).map(opSignature));
  assert.equal(failFirst.size, FAIL_FIRST);

  const handled = new Map<string, Handled>();
  const orderByKey = new Map<string, number[]>();
  const runningByKey = new Map<string, number>();
  let running = 0;
  let maxRunning = 0;
  let maxRunningPerKey = 0;
  const reported: Error[] = [];

  const handler = async (change: Change, { attempt }: { attempt: number }): Promise<void> => {
    const row = change.after ?? change.before!;
    const rowKey = `${change.schema}.${change.table} ${String(row.id)}`;
    const sig = signature(`${change.schema}.${change.table}`, String(row.id), change.action, change.after?.v);
    runningByKey.set(rowKey, (runningByKey.get(rowKey) ?? 0) + 1);
    maxRunningPerKey = Math.max(maxRunningPerKey, runningByKey.get(rowKey)!);
    maxRunning = Math.max(maxRunning, ++running);
    try {
      // Some handlers take a moment, so several keys are in flight at once.
      await delay(bySignature.get(sig)!.index % 5 === 0 ? 3 : 0);
      const record = handled.get(sig) ?? { change, attempts: 0, successes: 0 };
      handled.set(sig, record);
      record.attempts++;
      if (failFirst.has(sig) && attempt === 1) throw new Error(`planned failure of ${sig}`);
      record.successes++;
      orderByKey.set(rowKey, [...(orderByKey.get(rowKey) ?? []), bySignature.get(sig)!.index]);
    } finally {
      running--;
      runningByKey.set(rowKey, runningByKey.get(rowKey)! - 1);
    }
  };

  const consumer = createConsumer(
    broker.consumerOptions({ name: `c_${db.name}`, tables: COLUMN_TYPES, retry: { initialDelayMs: 50, maxDelayMs: 200 }, onError: (e) => reported.push(e) }),
  );
  for (const table of Object.keys(COLUMN_TYPES)) consumer.on(table, handler);
  const config = {
    listener: { slotName: db.slotName('sdk'), publication: 'sdk_pub' },
    database: databaseSection(db),
    publisher: broker.publisher,
  };
  const successes = (): number => [...handled.values()].reduce((n, h) => n + h.successes, 0);
  let daemon: DaemonProcess | undefined;
  try {
    if (broker.consumerFirst) await consumer.start();
    daemon = await startDaemon(config, { env: broker.daemonEnv ?? {} });
    if (!broker.consumerFirst) await consumer.start();

    await writeOps(db, ops.slice(0, PHASE_ONE), 25);
    await waitFor(`the first ${PHASE_ONE} changes handled (have ${successes()})`, () => successes() >= PHASE_ONE, 30_000, 20);

    // Phase two, one change per transaction, while the daemon is killed in the middle.
    const writing = writeOps(db, ops.slice(PHASE_ONE), 1, 4);
    await waitFor('phase two under way', () => successes() >= PHASE_ONE + 60, 30_000, 5);
    await killWithUnconfirmedChanges(db, daemon, config.listener.slotName, () => [...handled.values()].map((h) => h.change.lsn));
    await writing;
    await delay(broker.pauseBeforeRestartMs ?? 0);
    daemon = await startDaemon(config, { env: broker.daemonEnv ?? {} });
    await waitFor(`every change handled (have ${successes()})`, () => successes() >= ops.length, 40_000, 50);
    // Redelivered copies may still be on their way: give them a moment, they must all be skipped.
    await waitFor('redelivered copies skipped', () => consumer.stats.duplicates > 0, 10_000, 50);
    await delay(500);
    assert.equal(await daemon.stop(), 0);
    daemon = undefined;
  } finally {
    await daemon?.kill();
    await consumer.stop();
  }
  await consumer.closed;

  assertEveryChangeOnce(ops, handled, failFirst);
  for (const [key, indexes] of orderByKey) {
    const expected = ops.filter((op) => `${op.table} ${String(op.after?.id ?? op.before?.id)}` === key).map((op) => op.index);
    assert.deepEqual(indexes, expected, `${key}: changes in commit order`);
  }
  assert.equal(maxRunningPerKey, 1, 'never two handlers for one key at once');
  assert.ok(maxRunning > 1, `handlers of different keys ran at once (at most ${maxRunning})`);
  assert.equal(reported.length, FAIL_FIRST, `only the planned failures were reported: ${reported.map((e) => e.message).join('; ')}`);
  assert.ok(reported.every((e) => e instanceof HandlerFailedError && e.failed.attempts === 1));
  const stats = consumer.stats;
  assert.equal(stats.handled, ops.length);
  assert.equal(stats.retries, FAIL_FIRST);
  assert.ok(stats.duplicates > 0, 'the restart redelivered changes that were handled already');
  assert.equal(stats.received, stats.handled + stats.duplicates, 'every delivery was handled or skipped as a duplicate');
  return stats;
}

/**
 * kill -9 at a moment when the consumer has handled a change whose transaction the slot has not
 * confirmed (the daemon confirms at most once a second), so PostgreSQL must send it again. The
 * daemon is frozen (SIGSTOP) while that is checked, so it cannot confirm in between.
 */
async function killWithUnconfirmedChanges(db: TestDatabase, daemon: DaemonProcess, slot: string, handledLsns: () => string[]): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    daemon.child.kill('SIGSTOP');
    const confirmed = await db.confirmedFlush(slot);
    const newest = handledLsns().reduce((max, lsn) => (lsn && parseLsn(lsn) > max ? parseLsn(lsn) : max), 0n);
    if (confirmed !== null && newest >= parseLsn(confirmed)) {
      await daemon.kill();
      return;
    }
    daemon.child.kill('SIGCONT');
    await delay(20);
  }
  assert.fail('the consumer never had a handled change the slot had not confirmed');
}

function assertEveryChangeOnce(ops: readonly Op[], handled: ReadonlyMap<string, Handled>, failFirst: ReadonlySet<string>): void {
  assert.equal(handled.size, ops.length, 'no change that was not written');
  const ids = new Set<string>();
  for (const op of ops) {
    const sig = opSignature(op);
    const h = handled.get(sig);
    assert.ok(h, `${sig} handled`);
    assert.equal(h.successes, 1, `${sig} handled exactly once`);
    assert.equal(h.attempts, failFirst.has(sig) ? 2 : 1, `${sig}: tries`);
    ids.add(h.change.id);
    const { change } = h;
    assert.equal(`${change.schema}.${change.table}`, op.table);
    assert.equal(change.action, op.action);
    assert.deepEqual(change.after, op.after, `${sig}: after`);
    assert.deepEqual(change.before, op.before, `${sig}: before`);
    assert.deepEqual(change.unchangedToast, op.unchangedToast, `${sig}: unchangedToast`);
    assert.ok(change.commitTime instanceof Date && !Number.isNaN(change.commitTime.getTime()));
    assert.match(change.commitTimeText, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    assert.equal(change.commitTime.text, change.commitTimeText);
    assert.match(change.lsn, /^[0-9A-F]+\/[0-9A-F]+$/);
  }
  assert.equal(ids.size, ops.length, 'one event id per change');
}
