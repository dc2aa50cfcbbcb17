/**
 * The daemon's per-transaction work in one process (workload (b): single-row transactions),
 * without PostgreSQL or a broker: Begin/Insert/Commit frames go through PostgresSession (decode,
 * transaction bookkeeping, confirmations), the pipeline and the dispatcher to a publisher that
 * acknowledges at once. Prints CPU-seconds per 100k transactions for several rounds.
 *
 *   node --import tsx bench/txn-path.ts [--txns 100000] [--rounds 5] [--per-turn 100]
 */
import { parseArgs } from 'node:util';
import type { ReplicationConnection } from '../src/sources/postgres/replication.js';
import { PostgresSession } from '../src/sources/postgres/session.js';
import { NARROW_COLUMNS, benchPipeline, insertMessage, narrowTexts, relationMessage, reportRounds, u32, u64, u8, xlog } from './lib/in-process.js';

const { values } = parseArgs({ options: { txns: { type: 'string', default: '100000' }, rounds: { type: 'string', default: '5' }, 'per-turn': { type: 'string', default: '100' } } });
const TXNS = Number(values.txns);
const ROUNDS = Number(values.rounds);
/** Transactions handed over per turn of the event loop (pg hands over what one socket read holds). */
const PER_TURN = 3 * Number(values['per-turn']);

const relation = xlog(relationMessage(NARROW_COLUMNS), 0x1000000n);
const frames: Buffer[] = [];
for (let i = 0; i < TXNS; i++) {
  const lsn = 0x2000000n + BigInt(i) * 0x200n;
  const micros = 817_000_000_000_000n + BigInt(i) * 37n;
  frames.push(xlog(Buffer.concat([u8(0x42), u64(lsn + 0x100n), u64(micros), u32(1000 + i)]), lsn));
  frames.push(xlog(insertMessage(narrowTexts(i)), lsn + 0x10n));
  frames.push(xlog(Buffer.concat([u8(0x43), u8(0), u64(lsn + 0x100n), u64(lsn + 0x180n), u64(micros)]), lsn + 0x100n));
}

const connection = { onNotice: () => {}, sendStatus: () => {}, pause: () => {}, resume: () => {}, close: async () => {} } as unknown as ReplicationConnection;

async function round(): Promise<number> {
  let session: PostgresSession | null = null;
  const { logger, dispatcher, pipeline, relations } = benchPipeline((lsn) => session?.confirm(lsn));
  session = new PostgresSession({ connection, sink: pipeline, relations, logger, heartbeatMs: 10_000, source: 7, startLsn: 0n, errorContext: {} as never });
  const start = process.cpuUsage();
  session.onFrame(relation);
  // As pg hands frames over: many per socket read, then the event loop turns.
  for (let i = 0; i < frames.length; i += PER_TURN) {
    for (let k = i; k < Math.min(i + PER_TURN, frames.length); k++) session.onFrame(frames[k]!);
    await new Promise((resolve) => setImmediate(resolve));
  }
  await dispatcher.drained();
  const used = process.cpuUsage(start);
  dispatcher.stop();
  session.stop();
  return (used.user + used.system) / 1e6;
}

await reportRounds(`transaction path, ${TXNS} single-row transactions`, ' txns', TXNS, ROUNDS, round);
