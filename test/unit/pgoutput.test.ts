/** The decoder on bytes captured from a real PostgreSQL 15 (scripts/capture-pgoutput.ts). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import {
  decodeFrame,
  decodeMessage,
  formatLsn,
  formatPgTimestamp,
  parseLsn,
  ProtocolError,
  type PgOutputMessage,
  type Tuple,
} from '../../src/sources/postgres/pgoutput.js';
import { UNCHANGED, rowLength, valueAt } from '../../src/pipeline/change.js';

const UNCHANGED_TOAST = UNCHANGED;

/** A tuple's values as text, null or UNCHANGED (the decoder keeps byte ranges). */
const texts = (tuple: Tuple | null): unknown[] | null => (tuple === null ? null : Array.from({ length: rowLength(tuple) }, (_, i) => valueAt(tuple, i)));

interface Fixture {
  messages: { lsn: string; xid: number; hex: string }[];
}
const fixture = JSON.parse(readFileSync(new URL('../fixtures/pgoutput-pg15.json', import.meta.url), 'utf8')) as Fixture;
const messages: PgOutputMessage[] = fixture.messages.map((m) => decodeMessage(Buffer.from(m.hex, 'hex')));
/** The note column of user 2: 400 concatenated md5 hex digests, stored out of line (TOAST). */
const NOTE_LENGTH = 12_800;

function only<T extends PgOutputMessage['tag']>(tag: T): Extract<PgOutputMessage, { tag: T }>[] {
  return messages.filter((m): m is Extract<PgOutputMessage, { tag: T }> => m.tag === tag);
}

describe('pgoutput decoder on captured bytes', () => {
  test('every captured message decodes and transactions are balanced', () => {
    assert.equal(messages.length, fixture.messages.length);
    assert.equal(only('begin').length, only('commit').length);
    assert.equal(only('begin').length, 10);
  });

  test('begin and commit carry the commit LSN, xid and timestamps', () => {
    const begins = only('begin');
    const commits = only('commit');
    const firstBeginRow = fixture.messages.find((m) => m.hex.startsWith('42'))!;
    assert.equal(begins[0]!.xid, firstBeginRow.xid);
    for (let i = 0; i < begins.length; i++) {
      assert.equal(begins[i]!.finalLsn, commits[i]!.commitLsn, 'Begin.finalLsn = Commit.commitLsn');
      assert.ok(commits[i]!.endLsn > commits[i]!.commitLsn);
      assert.equal(begins[i]!.commitTimeMicros, commits[i]!.commitTimeMicros);
      assert.match(formatPgTimestamp(begins[i]!.commitTimeMicros), /^20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    }
  });

  test('relation messages describe columns, types and key flags', () => {
    const relations = only('relation');
    const users = relations.find((r) => r.name === 'users')!;
    assert.equal(users.schema, 'public');
    assert.equal(users.replicaIdentity, 'd');
    assert.deepEqual(
      users.columns.map((c) => [c.name, c.isKey]),
      [['id', true], ['email', false], ['mood', false], ['note', false]],
    );
    assert.equal(users.columns[0]!.typeOid, 23);
    assert.equal(users.columns[1]!.typeOid, 25);
    const orders = relations.find((r) => r.name === 'orders')!;
    assert.equal(orders.replicaIdentity, 'f');
    assert.ok(orders.columns.every((c) => c.isKey), 'REPLICA IDENTITY FULL flags every column');
    assert.equal(orders.columns[0]!.typeOid, 20);
  });

  test('type message names the enum', () => {
    const type = only('type')[0]!;
    assert.equal(type.schema, 'public');
    assert.equal(type.name, 'mood');
    assert.equal(only('relation')[0]!.columns[2]!.typeOid, type.typeOid);
  });

  test('inserts carry text values, NULLs and multi-byte text', () => {
    const [first, second, third] = only('insert');
    assert.deepEqual(texts(first!.newTuple), ['1', 'a@b.c', 'happy', null]);
    assert.equal(texts(second!.newTuple)![1], 'ü€😀');
    assert.equal((texts(second!.newTuple)![3] as string).length, NOTE_LENGTH);
    assert.deepEqual(texts(third!.newTuple), ['9007199254740993', '2', '12.50']);
  });

  test('updates: no old tuple, old key on key change, unchanged TOAST, full old row', () => {
    const [plain, keyChange, toast, full] = only('update');
    assert.equal(plain!.oldKind, null);
    assert.deepEqual(texts(plain!.newTuple), ['1', 'new@b.c', 'happy', null]);
    assert.equal(keyChange!.oldKind, 'K');
    assert.deepEqual(texts(keyChange!.oldTuple), ['1', null, null, null]);
    assert.equal(texts(keyChange!.newTuple)![0], '10');
    assert.equal(texts(toast!.newTuple)![3], UNCHANGED_TOAST);
    assert.equal(texts(toast!.newTuple)![2], 'happy');
    assert.equal(full!.oldKind, 'O');
    assert.deepEqual(texts(full!.oldTuple), ['9007199254740993', '2', '12.50']);
    assert.deepEqual(texts(full!.newTuple), ['9007199254740993', '2', '13']);
  });

  test('deletes carry the old key or the full old row', () => {
    const [byKey, full] = only('delete');
    assert.equal(byKey!.oldKind, 'K');
    assert.deepEqual(texts(byKey!.oldTuple), ['10', null, null, null]);
    assert.equal(full!.oldKind, 'O');
    assert.deepEqual(texts(full!.oldTuple), ['9007199254740993', '2', '13']);
  });

  test('truncate lists both tables; logical message is decoded', () => {
    const truncate = only('truncate')[0]!;
    assert.equal(truncate.relationIds.length, 2);
    assert.equal(truncate.cascade, false);
    const message = only('message')[0]!;
    assert.equal(message.prefix, 'wal-listener');
    assert.equal(message.content.toString(), 'hello');
    assert.equal(message.transactional, true);
  });

  test('frames: XLogData and keepalive headers', () => {
    const body = Buffer.from(fixture.messages[0]!.hex, 'hex');
    const header = Buffer.alloc(25);
    header[0] = 0x77;
    header.writeBigUInt64BE(0x1_0000_0010n, 1);
    header.writeBigUInt64BE(0x1_0000_0020n, 9);
    const frame = decodeFrame(Buffer.concat([header, body]));
    assert.equal(frame.kind, 'xlog');
    assert.equal(frame.kind === 'xlog' && frame.walStart, 0x1_0000_0010n);
    assert.equal(frame.kind === 'xlog' && frame.message.tag, 'begin');
    const keepalive = Buffer.alloc(18);
    keepalive[0] = 0x6b;
    keepalive.writeBigUInt64BE(42n, 1);
    keepalive[17] = 1;
    assert.deepEqual(decodeFrame(keepalive), { kind: 'keepalive', walEnd: 42n, replyRequested: true });
  });

  test('truncated or unknown input is a ProtocolError, never a wrong value', () => {
    for (const m of fixture.messages) {
      const full = Buffer.from(m.hex, 'hex');
      for (const cut of [1, 5, Math.floor(full.length / 2), full.length - 1]) {
        if (cut >= full.length) continue;
        // A cut message either fails to decode or (for a trailing value cut) must not silently succeed.
        assert.throws(() => decodeMessage(full.subarray(0, cut)), ProtocolError, `${String.fromCharCode(full[0]!)} cut at ${cut}`);
      }
    }
    assert.throws(() => decodeMessage(Buffer.from('Z')), /unknown pgoutput message type/);
    assert.throws(() => decodeFrame(Buffer.from([0x78])), /unknown replication frame type/);
  });

  test('a message read in place (bytes offset–end of a larger read) decodes as alone, and is cut at its end', () => {
    for (const m of fixture.messages) {
      const full = Buffer.from(m.hex, 'hex');
      // Other messages' bytes around it, zeros after it (string terminators a reader must not take).
      const around = Buffer.concat([Buffer.from('garbage'), full, Buffer.alloc(64)]);
      const alone = decodeMessage(full);
      const inPlace = decodeMessage(around, 7, 7 + full.length);
      const normal = (msg: PgOutputMessage): unknown =>
        JSON.parse(JSON.stringify(msg, (_, v: unknown) => (typeof v === 'bigint' ? String(v) : v && typeof v === 'object' && 'spans' in v ? texts(v as Tuple) : v)));
      assert.deepEqual(normal(inPlace), normal(alone), String.fromCharCode(full[0]!));
      for (const cut of [1, 5, Math.floor(full.length / 2), full.length - 1]) {
        if (cut >= full.length) continue;
        assert.throws(() => decodeMessage(around, 7, 7 + cut), ProtocolError, `${String.fromCharCode(full[0]!)} cut at ${cut}`);
      }
    }
  });
});

describe('LSN and timestamp formatting', () => {
  test('LSNs round-trip', () => {
    for (const text of ['0/0', '0/1A2B3C4', 'FFFFFFFF/FFFFFFFF', '16/B374D848']) assert.equal(formatLsn(parseLsn(text)), text);
    assert.throws(() => parseLsn('nope'));
  });

  test('timestamps are UTC with microseconds', () => {
    assert.equal(formatPgTimestamp(0n), '2000-01-01T00:00:00.000000Z');
    assert.equal(formatPgTimestamp(1n), '2000-01-01T00:00:00.000001Z');
    assert.equal(formatPgTimestamp(-1n), '1999-12-31T23:59:59.999999Z');
    // 2024-02-29T08:15:56.123456Z
    const micros = (BigInt(Date.UTC(2024, 1, 29, 8, 15, 56, 123)) - 946_684_800_000n) * 1000n + 456n;
    assert.equal(formatPgTimestamp(micros), '2024-02-29T08:15:56.123456Z');
  });
});

test('formatPgTimestamp: the per-second cache gives what the exact BigInt path gives', async () => {
  const { formatPgTimestamp: format } = await import('../../src/sources/postgres/pgoutput.js');
  const exact = (micros: bigint): string => {
    const unixMicros = micros + 946_684_800_000_000n;
    const ms = unixMicros / 1000n;
    let fraction = unixMicros % 1000n;
    if (fraction < 0n) fraction += 1000n;
    const iso = new Date(Number(unixMicros < 0n && fraction !== 0n ? ms - 1n : ms)).toISOString();
    return `${iso.slice(0, -1)}${fraction.toString().padStart(3, '0')}Z`;
  };
  let micros = 762_524_156_123_456n; // 2024-02-29
  for (let i = 0; i < 5000; i++) {
    micros += BigInt((i * 7919) % 1_500_000);
    assert.equal(format(micros), exact(micros));
  }
  for (const m of [-946_684_800_000_000n, -946_684_800_000_001n, 0n, 8_000_000_000_000_000n, 252_455_615_999_999_999n, 252_455_616_000_000_000n]) assert.equal(format(m), exact(m), String(m));
});
