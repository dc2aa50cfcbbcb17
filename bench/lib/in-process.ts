/**
 * What the in-process benches (bench/encode.ts, bench/txn-path.ts) share: a publisher that
 * acknowledges at once, pgoutput frames built as a walsender sends them, workload (a)'s rows, and
 * the rounds loop that prints CPU-seconds per 100k.
 */
import { EventEmitter } from 'node:events';
import { createLogger, type Logger } from '../../src/observability/logger.js';
import { Dispatcher } from '../../src/pipeline/dispatcher.js';
import { nativeEncoder } from '../../src/pipeline/encoder.js';
import { compileFilter } from '../../src/pipeline/filter.js';
import type { OutboundMessage } from '../../src/pipeline/message.js';
import { Pipeline } from '../../src/pipeline/pipeline.js';
import { compileRouter } from '../../src/pipeline/router.js';
import type { Publisher, PublisherEvents } from '../../src/publishers/publisher.js';
import type { Lsn } from '../../src/sources/postgres/pgoutput.js';
import { Relations } from '../../src/sources/postgres/relations.js';
import type { SqlClient } from '../../src/sources/postgres/sql-client.js';
import { createValueConverters } from '../../src/sources/postgres/values.js';

/** A publisher that acknowledges every batch at once, counting bytes (nothing is written). */
export class NullPublisher implements Publisher {
  readonly kind = 'stdout';
  readonly events = new EventEmitter<PublisherEvents>();
  bytes = 0;
  async connect(): Promise<void> {}
  maxPayloadBytes(): number {
    return Infinity;
  }
  publish(batch: readonly OutboundMessage[]): Promise<void> {
    for (const m of batch) this.bytes += m.payload.length;
    return Promise.resolve();
  }
  healthy(): boolean {
    return true;
  }
  async close(): Promise<void> {}
}

/**
 * The daemon's pipeline as it runs for PostgreSQL (native format, no filter, topic `bench`) over a
 * NullPublisher, with its relation cache; `confirm` gets the confirmed positions.
 */
export function benchPipeline(confirm: (lsn: Lsn) => void = () => {}): { logger: Logger; dispatcher: Dispatcher; pipeline: Pipeline<Lsn>; relations: Relations } {
  const logger = createLogger({ level: 'fatal', fmt: 'json' });
  const dispatcher = new Dispatcher({ publisher: new NullPublisher(), logger, maxInFlight: 4096, ackTimeout: 30_000, deadLetters: null, onFatal: () => {} });
  const pipeline = new Pipeline<Lsn>({
    filter: compileFilter({}),
    router: compileRouter({}, { topic: 'bench', topicPrefix: '' }),
    encoder: nativeEncoder,
    messageKeyFrom: '',
    dispatcher,
    confirm,
    confirmEveryMs: 1000,
  });
  const relations = new Relations(pipeline, createValueConverters({ onProblem: () => {} }), null as unknown as SqlClient);
  return { logger, dispatcher, pipeline, relations };
}

/** An XLogData frame ('w', WAL start and end = `lsn`, send time 0) around a pgoutput message. */
export function xlog(message: Buffer, lsn = 0n): Buffer {
  const head = Buffer.alloc(25);
  head[0] = 0x77;
  head.writeBigUInt64BE(lsn, 1);
  head.writeBigUInt64BE(lsn, 9);
  return Buffer.concat([head, message]);
}
export const cstring = (s: string): Buffer => Buffer.concat([Buffer.from(s), Buffer.from([0])]);
export const u8 = (n: number): Buffer => Buffer.from([n]);
export const u16 = (n: number): Buffer => { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; };
export const u32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
export const u64 = (n: bigint): Buffer => { const b = Buffer.alloc(8); b.writeBigUInt64BE(n); return b; };

/** Relation 16384 `public.t_a` with these columns (name, type oid); the first is the key. */
export function relationMessage(columns: readonly (readonly [string, number])[]): Buffer {
  return Buffer.concat([u8(0x52), u32(16384), cstring('public'), cstring('t_a'), u8(0x64), u16(columns.length), ...columns.map(([name, oid], i) => Buffer.concat([u8(i === 0 ? 1 : 0), cstring(name), u32(oid), u32(0xffffffff)]))]);
}

/** An Insert into relation 16384 of these column texts. */
export function insertMessage(texts: readonly string[]): Buffer {
  return Buffer.concat([u8(0x49), u32(16384), u8(0x4e), u16(texts.length), ...texts.map((t) => { const b = Buffer.from(t); return Buffer.concat([u8(0x74), u32(b.length), b]); })]);
}

/** Workload (a)'s table: bigint key, text, int, numeric, jsonb, timestamptz. */
export const NARROW_COLUMNS: readonly [string, number][] = [['id', 20], ['email', 25], ['n', 23], ['amount', 1700], ['profile', 3802], ['created_at', 1184]];

/** The text PostgreSQL sends for row i of workload (a). */
export function narrowTexts(i: number): string[] {
  return [String(i + 1), `user${i}@example.com`, String(i % 1000), `${i % 9999}.${String(i % 100).padStart(2, '0')}`, `{"a": ${i}, "tags": ["x", "y"]}`, '2026-11-26 08:15:56.123456+00'];
}

/**
 * Runs `round` `rounds` times; each returns the CPU-seconds it used for `count` units. Prints each
 * round to stderr and the median and minimum per 100k units to stdout, after `title`.
 */
export async function reportRounds(title: string, unit: string, count: number, rounds: number, round: () => Promise<number>): Promise<void> {
  const figures: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const seconds = await round();
    figures.push((seconds / count) * 100_000);
    process.stderr.write(`round ${i + 1}: ${seconds.toFixed(2)} CPU-s, ${figures.at(-1)!.toFixed(3)} CPU-s/100k${unit}\n`);
  }
  const sorted = [...figures].sort((a, b) => a - b);
  process.stdout.write(`${title} x ${rounds}: median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(3)} CPU-s/100k (min ${sorted[0]!.toFixed(3)})\n`);
}
