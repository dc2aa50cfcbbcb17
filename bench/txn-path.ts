/**
 * The daemon's per-transaction work in one process (workload (b): single-row transactions),
 * without PostgreSQL or a broker: Begin/Insert/Commit frames go through PostgresSession (decode,
 * transaction bookkeeping, confirmations), the pipeline and the dispatcher to a publisher that
 * acknowledges at once. Prints CPU-seconds per 100k transactions for several rounds.
 *
 *   node --import tsx bench/txn-path.ts [--txns 100000] [--rounds 5] [--per-turn 100]
 */
import { EventEmitter } from 'node:events';
import { parseArgs } from 'node:util';
import { createLogger } from '../src/observability/logger.js';
import { Dispatcher } from '../src/pipeline/dispatcher.js';
import { nativeEncoder } from '../src/pipeline/encoder.js';
import { compileFilter } from '../src/pipeline/filter.js';
import type { OutboundMessage } from '../src/pipeline/message.js';
import { Pipeline } from '../src/pipeline/pipeline.js';
import { compileRouter } from '../src/pipeline/router.js';
import type { Publisher, PublisherEvents } from '../src/publishers/publisher.js';
import type { Lsn } from '../src/sources/postgres/pgoutput.js';
import { Relations } from '../src/sources/postgres/relations.js';
import type { ReplicationConnection } from '../src/sources/postgres/replication.js';
import { PostgresSession } from '../src/sources/postgres/session.js';
import type { SqlClient } from '../src/sources/postgres/sql-client.js';
import { createValueConverters } from '../src/sources/postgres/values.js';

const { values } = parseArgs({ options: { txns: { type: 'string', default: '100000' }, rounds: { type: 'string', default: '5' }, 'per-turn': { type: 'string', default: '100' } } });
const TXNS = Number(values.txns);
const ROUNDS = Number(values.rounds);
/** Transactions handed over per turn of the event loop (pg hands over what one socket read holds). */
const PER_TURN = 3 * Number(values['per-turn']);

class NullPublisher implements Publisher {
  readonly kind = 'stdout';
  readonly events = new EventEmitter<PublisherEvents>();
  async connect(): Promise<void> {}
  maxPayloadBytes(): number {
    return Infinity;
  }
  publish(_batch: readonly OutboundMessage[]): Promise<void> {
    return Promise.resolve();
  }
  healthy(): boolean {
    return true;
  }
  async close(): Promise<void> {}
}

function xlog(message: Buffer, lsn: bigint): Buffer {
  const head = Buffer.alloc(25);
  head[0] = 0x77;
  head.writeBigUInt64BE(lsn, 1);
  head.writeBigUInt64BE(lsn, 9);
  return Buffer.concat([head, message]);
}
const cstring = (s: string): Buffer => Buffer.concat([Buffer.from(s), Buffer.from([0])]);
const u8 = (n: number): Buffer => Buffer.from([n]);
const u16 = (n: number): Buffer => { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; };
const u32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
const u64 = (n: bigint): Buffer => { const b = Buffer.alloc(8); b.writeBigUInt64BE(n); return b; };

const COLUMNS: [string, number][] = [['id', 20], ['email', 25], ['n', 23], ['amount', 1700], ['profile', 3802], ['created_at', 1184]];
const relation = xlog(Buffer.concat([u8(0x52), u32(16384), cstring('public'), cstring('t_a'), u8(0x64), u16(COLUMNS.length), ...COLUMNS.map(([name, oid], i) => Buffer.concat([u8(i === 0 ? 1 : 0), cstring(name), u32(oid), u32(0xffffffff)]))]), 0x1000000n);
const frames: Buffer[] = [];
for (let i = 0; i < TXNS; i++) {
  const lsn = 0x2000000n + BigInt(i) * 0x200n;
  const micros = 817_000_000_000_000n + BigInt(i) * 37n;
  const texts = [String(i + 1), `user${i}@example.com`, String(i % 1000), `${i % 9999}.${String(i % 100).padStart(2, '0')}`, `{"a": ${i}, "tags": ["x", "y"]}`, '2026-11-26 08:15:56.123456+00'];
  frames.push(xlog(Buffer.concat([u8(0x42), u64(lsn + 0x100n), u64(micros), u32(1000 + i)]), lsn));
  frames.push(xlog(Buffer.concat([u8(0x49), u32(16384), u8(0x4e), u16(texts.length), ...texts.map((t) => { const b = Buffer.from(t); return Buffer.concat([u8(0x74), u32(b.length), b]); })]), lsn + 0x10n));
  frames.push(xlog(Buffer.concat([u8(0x43), u8(0), u64(lsn + 0x100n), u64(lsn + 0x180n), u64(micros)]), lsn + 0x100n));
}

const connection = { onNotice: () => {}, sendStatus: () => {}, pause: () => {}, resume: () => {}, close: async () => {} } as unknown as ReplicationConnection;

async function round(): Promise<number> {
  const logger = createLogger({ level: 'fatal', fmt: 'json' });
  const dispatcher = new Dispatcher({ publisher: new NullPublisher(), logger, maxInFlight: 4096, ackTimeout: 30_000, deadLetters: null, onFatal: () => {} });
  let session: PostgresSession | null = null;
  const pipeline = new Pipeline<Lsn>({
    filter: compileFilter({}),
    router: compileRouter({}, { topic: 'bench', topicPrefix: '' }),
    encoder: nativeEncoder,
    messageKeyFrom: '',
    dispatcher,
    confirm: (lsn) => session?.confirm(lsn),
    confirmEveryMs: 1000,
  });
  const relations = new Relations(pipeline, createValueConverters({ onProblem: () => {} }), null as unknown as SqlClient);
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

const figures: number[] = [];
for (let i = 0; i < ROUNDS; i++) {
  const seconds = await round();
  figures.push((seconds / TXNS) * 100_000);
  process.stderr.write(`round ${i + 1}: ${seconds.toFixed(2)} CPU-s, ${figures.at(-1)!.toFixed(3)} CPU-s/100k txns\n`);
}
const sorted = [...figures].sort((a, b) => a - b);
process.stdout.write(`transaction path, ${TXNS} single-row transactions x ${ROUNDS}: median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(3)} CPU-s/100k (min ${sorted[0]!.toFixed(3)})\n`);
