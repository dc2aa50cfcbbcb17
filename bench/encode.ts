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
import { parseArgs } from 'node:util';
import { decodeFrame } from '../src/sources/postgres/pgoutput.js';
import { eventIdPrefix } from '../src/pipeline/event-id.js';
import { NARROW_COLUMNS, benchPipeline, insertMessage, narrowTexts, relationMessage, reportRounds, u32, u64, u8, xlog } from './lib/in-process.js';

const { values } = parseArgs({ options: { rows: { type: 'string', default: '300000' }, rounds: { type: 'string', default: '5' }, wide: { type: 'boolean', default: false } } });
const ROWS = Number(values.rows);
const ROUNDS = Number(values.rounds);

/** Workload (c): bigserial, int2/4/8, text, varchar, bool, numeric, float4/8, date, timestamp, timestamptz, uuid, jsonb, json, int[], text[], bytea, interval. */
const WIDE: [string, number][] = [['id', 20], ['c_int2', 21], ['c_int4', 23], ['c_int8', 20], ['c_text', 25], ['c_varchar', 1043], ['c_bool', 16], ['c_numeric', 1700], ['c_float4', 700], ['c_float8', 701], ['c_date', 1082], ['c_timestamp', 1114], ['c_timestamptz', 1184], ['c_uuid', 2950], ['c_jsonb', 3802], ['c_json', 114], ['c_int_array', 1007], ['c_text_array', 1009], ['c_bytea', 17], ['c_interval', 1186]];
const COLUMNS = values.wide ? WIDE : NARROW_COLUMNS;
/** The text PostgreSQL sends for row i of workload (c). */
function wideTexts(i: number): string[] {
  const g = i + 1;
  return [String(g), String(g % 32000), String(g), String(g * 1000003), `text value ${g}`, `varchar ${g}`, g % 2 === 0 ? 't' : 'f', (g * 1.0001).toFixed(4), String(Math.fround(g / 7)), String(g / 3),
    `2024-${String((g % 12) + 1).padStart(2, '0')}-${String((g % 28) + 1).padStart(2, '0')}`, '2024-01-02 03:04:05', '2026-11-26 08:15:56.123456+00', '0cc175b9-c0f1-b6a8-31c3-99e269772661',
    `{"a": ${g}, "b": "x${g}"}`, `{"a" : ${g}, "c" : ${g % 3 === 0} }`, `{${g},${g + 1},${g + 2}}`, `{a${g},b,NULL}`, '\\x0cc175b9c0f1b6a831c399e269772661', `PT${g % 100}H${g % 60}M1.5S`];
}
const relation = xlog(relationMessage(COLUMNS));
const begin = xlog(Buffer.concat([u8(0x42), u64(0x1000000n), u64(1n), u32(1234)]));
const commit = xlog(Buffer.concat([u8(0x43), u8(0), u64(0x1000000n), u64(0x1000100n), u64(1n)]));
function insert(i: number): Buffer {
  return xlog(insertMessage(values.wide ? wideTexts(i) : narrowTexts(i)));
}
const inserts = Array.from({ length: ROWS }, (_, i) => insert(i));

async function round(): Promise<number> {
  const { dispatcher, pipeline, relations } = benchPipeline();
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

await reportRounds(`encode path${values.wide ? ' (wide rows)' : ''}, ${ROWS} rows`, '', ROWS, ROUNDS, round);
