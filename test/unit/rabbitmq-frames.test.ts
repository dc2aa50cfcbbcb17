import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import type { OutboundMessage } from '../../src/pipeline/message.js';
import { AmqpFrameWriter, type AmqpSocket } from '../../src/publishers/rabbitmq-frames.js';
import { exchangeOf, publishOptions } from '../../src/publishers/rabbitmq-message.js';

// amqplib's own encoders, the reference: what its ConfirmChannel.publish() would write.
const require = createRequire(import.meta.url);
const lib = join(dirname(require.resolve('amqplib')), 'lib');
const defs = require(join(lib, 'defs.js'));
const args = require(join(lib, 'api_args.js'));
const frame = require(join(lib, 'frame.js'));

const TOPIC = 'wal_topic';

function amqplibBytes(messages: readonly OutboundMessage[], channel: number, frameMax: number): Buffer {
  const parts: Buffer[] = [];
  for (const m of messages) {
    const content = typeof m.payload === 'string' ? Buffer.from(m.payload) : m.payload;
    const fields = args.publish(exchangeOf(m, TOPIC), m.subject, publishOptions(m));
    parts.push(defs.encodeMethod(defs.BasicPublish, channel, fields));
    parts.push(defs.encodeProperties(defs.BasicProperties, channel, content.length, fields));
    for (let from = 0; from < content.length; from += frameMax - 8) parts.push(frame.makeBodyFrame(channel, content.subarray(from, Math.min(from + frameMax - 8, content.length))));
  }
  return Buffer.concat(parts);
}

/** A socket that keeps what is written (this test is about bytes; the integration tests use a real one). */
function socket() {
  const chunks: Buffer[] = [];
  let corked = 0;
  const s: AmqpSocket & { writableLength: number } = {
    writableLength: 0,
    writable: true,
    destroyed: false,
    cork: () => void corked++,
    uncork: () => void corked--,
    write: (chunk: Uint8Array) => {
      assert.ok(corked > 0, 'written while corked');
      chunks.push(chunk as Buffer);
      return true;
    },
  };
  return { s, chunks };
}

function change(i: number, payloadBytes: number, extra: Partial<OutboundMessage> = {}): OutboundMessage {
  return {
    id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
    subject: `${TOPIC}.public.tåble${i % 3}`,
    key: `{"id":${i}}`,
    payload: Buffer.from(JSON.stringify({ i, pad: 'é'.repeat(Math.max(0, Math.floor((payloadBytes - 20) / 2))) })),
    lsn: `0/${(0x1a2b3c + i).toString(16).toUpperCase()}`,
    schema: 'public',
    table: `tåble${i % 3}`,
    action: ['INSERT', 'UPDATE', 'DELETE'][i % 3]!,
    headers: null,
    properties: null,
    exchange: null,
    ...extra,
  };
}

test('change events and routed messages: the same bytes as amqplib writes, body frames split at frameMax', () => {
  const nineKb = change(2, 9000);
  const justUnder2Kb = change(3, 2047);
  const batch = [
    // First: an empty schema and table name (the `table` header is then "."), nothing to reuse yet.
    change(10, 10, { schema: '', table: '' }),
    change(0, 100),
    change(1, 0, { payload: Buffer.alloc(0) }),
    nineKb,
    justUnder2Kb,
    change(4, 2048),
    change(5, 300, { payload: '{"text":"a string payload"}' }),
    change(6, 50, { headers: { trace: 'x1', 'ünï': 'çödé' }, keyHeader: true, key: 'order-6' }),
    change(7, 5000, { exchange: 'orders', properties: { contentType: 'text/plain', type: 'created', priority: 3, headers: { n: 42, f: 1.5, ok: true, nested: { a: [1, 'b'] } } } }),
    change(8, 10),
    change(9, 10, { id: 'événement-9', lsn: 'binlog.000001:4 (ü)', schema: 'shop', table: 'orders' }),
  ];
  for (const [channel, frameMax] of [
    [1, 131072],
    [7, 4096],
  ] as const) {
    const { s, chunks } = socket();
    assert.deepEqual(new AmqpFrameWriter(s, channel, frameMax, TOPIC).write(batch), { sent: true });
    assert.deepEqual(Buffer.concat(chunks), amqplibBytes(batch, channel, frameMax), `channel ${channel}, frameMax ${frameMax}`);
    // Payloads of 2 KB and more are chunks of their own (views of the payload), not copies.
    const large = nineKb.payload as Buffer;
    assert.ok(chunks.some((c) => c.buffer === large.buffer && c.byteOffset === large.byteOffset), 'the 9 KB payload is written as it is');
    const small = justUnder2Kb.payload as Buffer;
    assert.ok(!chunks.some((c) => c.buffer === small.buffer && c.byteOffset === small.byteOffset), 'a 2047-byte payload is copied');
  }
});

test('many batches through one writer: each has the bytes amqplib writes (the piece buffer is reused once written out)', () => {
  const { s, chunks } = socket();
  const writer = new AmqpFrameWriter(s, 1, 131072, TOPIC);
  for (let b = 0; b < 5; b++) {
    const batch = Array.from({ length: 700 }, (_, i) => change(b * 1000 + i, 100 + ((i * 37) % 700)));
    chunks.length = 0;
    assert.deepEqual(writer.write(batch), { sent: true });
    // Copied now: the next batch may write into the same piece buffer.
    assert.deepEqual(Buffer.concat(chunks), amqplibBytes(batch, 1, 131072), `batch ${b}`);
  }
});

test('a message amqplib would refuse: nothing of the batch is written, the index and the reason are given', () => {
  const cases: Array<[string, OutboundMessage, RegExp]> = [
    ['routing key', change(1, 10, { subject: 'k'.repeat(256) }), /routing key .* longer than 255 bytes/],
    ['exchange', change(1, 10, { exchange: 'é'.repeat(128), properties: {} }), /exchange name .* longer than 255 bytes/],
    ['message id', change(1, 10, { id: 'i'.repeat(256) }), /message id is longer than 255 bytes/],
    ['headers over 64 KiB', change(1, 10, { headers: { big: 'x'.repeat(70_000) } }), /exceeds the 65536 byte encoding buffer/],
    ['a property of the wrong type', change(1, 10, { properties: { priority: 'high' } }), /priority/],
  ];
  for (const [what, bad, reason] of cases) {
    const { s, chunks } = socket();
    const result = new AmqpFrameWriter(s, 1, 131072, TOPIC).write([change(0, 10), bad, change(2, 10)]);
    assert.equal(result.sent, false, what);
    assert.equal(result.sent === false && result.index, 1, what);
    assert.match(result.sent === false ? result.reason : '', reason, what);
    assert.equal(chunks.length, 0, `${what}: nothing written`);
  }
  // 255 bytes fit.
  const { s } = socket();
  assert.deepEqual(new AmqpFrameWriter(s, 1, 131072, TOPIC).write([change(1, 10, { subject: 'k'.repeat(255) })]), { sent: true });
});
