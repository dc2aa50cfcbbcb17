/**
 * The daemon's own per-row work in one process, without PostgreSQL or a broker: pgoutput frames
 * of workload (a) (6 columns: bigint key, text, int, numeric, jsonb, timestamptz) are decoded,
 * encoded and dispatched to a publisher that acknowledges at once. Prints CPU-seconds per 100k
 * rows for several rounds: a steady figure for comparing changes of the hot path (process CPU of
 * a single-threaded loop moves little with the machine's load, unlike the end-to-end bench).
 *
 * `--wide` takes workload (c)'s rows instead (20 columns of mixed types, int[] and text[] among them).
 *
 *   node --import tsx bench/encode.ts [--rows 300000] [--rounds 5] [--wide]
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
import { decodeFrame, type Lsn } from '../src/sources/postgres/pgoutput.js';
import { Relations } from '../src/sources/postgres/relations.js';
import { createValueConverters } from '../src/sources/postgres/values.js';
import type { SqlClient } from '../src/sources/postgres/sql-client.js';
import { eventIdPrefix } from '../src/pipeline/event-id.js';

const { values } = parseArgs({ options: { rows: { type: 'string', default: '300000' }, rounds: { type: 'string', default: '5' }, wide: { type: 'boolean', default: false } } });
const ROWS = Number(values.rows);
const ROUNDS = Number(values.rounds);

/** A publisher that acknowledges every batch at once, counting bytes (nothing is written). */
class NullPublisher implements Publisher {
  readonly kind = 'stdout';
  readonly events = new EventEmitter<PublisherEvents>();
  bytes = 0;
  async connect(): Promise<void> {}
  maxPayloadBytes(): number {
    return 1024 * 1024;
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

// --- pgoutput frames, built as a walsender sends them ---
function xlog(message: Buffer): Buffer {
  const head = Buffer.alloc(25);
  head[0] = 0x77;
  return Buffer.concat([head, message]);
}
const cstring = (s: string): Buffer => Buffer.concat([Buffer.from(s), Buffer.from([0])]);
const u8 = (n: number): Buffer => Buffer.from([n]);
const u16 = (n: number): Buffer => { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; };
const u32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
const u64 = (n: bigint): Buffer => { const b = Buffer.alloc(8); b.writeBigUInt64BE(n); return b; };

const NARROW: [string, number][] = [['id', 20], ['email', 25], ['n', 23], ['amount', 1700], ['profile', 3802], ['created_at', 1184]];
/** Workload (c): bigserial, int2/4/8, text, varchar, bool, numeric, float4/8, date, timestamp, timestamptz, uuid, jsonb, json, int[], text[], bytea, interval. */
const WIDE: [string, number][] = [['id', 20], ['c_int2', 21], ['c_int4', 23], ['c_int8', 20], ['c_text', 25], ['c_varchar', 1043], ['c_bool', 16], ['c_numeric', 1700], ['c_float4', 700], ['c_float8', 701], ['c_date', 1082], ['c_timestamp', 1114], ['c_timestamptz', 1184], ['c_uuid', 2950], ['c_jsonb', 3802], ['c_json', 114], ['c_int_array', 1007], ['c_text_array', 1009], ['c_bytea', 17], ['c_interval', 1186]];
const COLUMNS = values.wide ? WIDE : NARROW;
/** The text PostgreSQL sends for row i of workload (c). */
function wideTexts(i: number): string[] {
  const g = i + 1;
  return [String(g), String(g % 32000), String(g), String(g * 1000003), `text value ${g}`, `varchar ${g}`, g % 2 === 0 ? 't' : 'f', (g * 1.0001).toFixed(4), String(Math.fround(g / 7)), String(g / 3),
    `2024-${String((g % 12) + 1).padStart(2, '0')}-${String((g % 28) + 1).padStart(2, '0')}`, '2024-01-02 03:04:05', '2026-11-26 08:15:56.123456+00', '0cc175b9-c0f1-b6a8-31c3-99e269772661',
    `{"a": ${g}, "b": "x${g}"}`, `{"a" : ${g}, "c" : ${g % 3 === 0} }`, `{${g},${g + 1},${g + 2}}`, `{a${g},b,NULL}`, '\\x0cc175b9c0f1b6a831c399e269772661', `PT${g % 100}H${g % 60}M1.5S`];
}
const relation = xlog(Buffer.concat([u8(0x52), u32(16384), cstring('public'), cstring('t_a'), u8(0x64), u16(COLUMNS.length), ...COLUMNS.map(([name, oid], i) => Buffer.concat([u8(i === 0 ? 1 : 0), cstring(name), u32(oid), u32(0xffffffff)]))]));
const begin = xlog(Buffer.concat([u8(0x42), u64(0x1000000n), u64(1n), u32(1234)]));
const commit = xlog(Buffer.concat([u8(0x43), u8(0), u64(0x1000000n), u64(0x1000100n), u64(1n)]));
function insert(i: number): Buffer {
  const texts = values.wide ? wideTexts(i) : [String(i + 1), `user${i}@example.com`, String(i % 1000), `${i % 9999}.${String(i % 100).padStart(2, '0')}`, `{"a": ${i}, "tags": ["x", "y"]}`, '2026-11-26 08:15:56.123456+00'];
  return xlog(Buffer.concat([u8(0x49), u32(16384), u8(0x4e), u16(texts.length), ...texts.map((t) => { const b = Buffer.from(t); return Buffer.concat([u8(0x74), u32(b.length), b]); })]));
}
const inserts = Array.from({ length: ROWS }, (_, i) => insert(i));

async function round(): Promise<number> {
  const publisher = new NullPublisher();
  const dispatcher = new Dispatcher({ publisher, logger: createLogger({ level: 'fatal', fmt: 'json' }), maxInFlight: 4096, ackTimeout: 30_000, deadLetters: null, onFatal: () => {} });
  const pipeline = new Pipeline<Lsn>({
    filter: compileFilter({}),
    router: compileRouter({}, { topic: 'bench', topicPrefix: '' }),
    encoder: nativeEncoder,
    messageKeyFrom: '',
    dispatcher,
    confirm: () => {},
  });
  const converters = createValueConverters({ onProblem: () => {} });
  const relations = new Relations(pipeline, converters, null as unknown as SqlClient);
  const start = process.cpuUsage();
  const r = decodeFrame(relation);
  if (r.kind === 'xlog' && r.message.tag === 'relation') relations.relation(r.message);
  const b = decodeFrame(begin);
  const txn = pipeline.begin({ idPrefix: eventIdPrefix(0x1000000n, 7), commitTime: '2026-11-26T08:15:56.123456Z', position: '0/1000000', xid: b.kind === 'xlog' && b.message.tag === 'begin' ? b.message.xid : 0 });
  const table = relations.get(16384)!;
  for (let i = 0; i < ROWS; i++) {
    const frame = decodeFrame(inserts[i]!);
    if (frame.kind === 'xlog' && frame.message.tag === 'insert') pipeline.insert(txn, table, frame.message.newTuple);
    if (pipeline.full) await pipeline.ready();
  }
  decodeFrame(commit);
  pipeline.commit(txn, 0x1000100n);
  await dispatcher.drained();
  const used = process.cpuUsage(start);
  dispatcher.stop();
  return (used.user + used.system) / 1e6;
}

const figures: number[] = [];
for (let i = 0; i < ROUNDS; i++) {
  const seconds = await round();
  figures.push((seconds / ROWS) * 100_000);
  process.stderr.write(`round ${i + 1}: ${seconds.toFixed(2)} CPU-s, ${figures.at(-1)!.toFixed(3)} CPU-s/100k\n`);
}
const sorted = [...figures].sort((a, b) => a - b);
process.stdout.write(`encode path${values.wide ? ' (wide rows)' : ''}, ${ROWS} rows x ${ROUNDS}: median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(3)} CPU-s/100k (min ${sorted[0]!.toFixed(3)})\n`);
