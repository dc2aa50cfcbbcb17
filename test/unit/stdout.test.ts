import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { JsonOut } from '../../src/pipeline/json-out.js';
import type { OutboundMessage } from '../../src/pipeline/message.js';
import { StdoutPublisher, linesOf } from '../../src/publishers/stdout.js';

const message = (payload: string | Buffer): OutboundMessage => ({
  id: 'x', subject: 's', key: 'k', payload, lsn: '0/0', schema: 'public', table: 't', action: 'INSERT', headers: null, properties: null, exchange: null,
});

/** Payloads of every kind: JsonOut views (runs, chunk changes, messages that outgrow a chunk), strings, foreign Buffers. */
function payloads(): (string | Buffer)[] {
  const out = new JsonOut();
  const list: (string | Buffer)[] = [];
  const big = new Uint8Array(300);
  big.fill(0x0a);
  const foreign = Buffer.from(big.buffer, 10, 20).fill(0x41); // followed by a line break, but not a JsonOut view
  for (let i = 0; i < 3000; i++) {
    out.begin();
    out.ascii(`{"i":${i},"pad":"${'y'.repeat(i % 97 === 0 ? 300_000 : i % 300)}"}`);
    list.push(out.end());
    if (i % 250 === 0) list.push(`{"s":${i}}`);
    if (i % 400 === 0) list.push(foreign, Buffer.from(`{"b":${i}}`));
  }
  return list;
}

test('linesOf: every payload followed by one line break, in order, whatever the payloads are', () => {
  const all = payloads();
  for (const size of [1, 7, 1024, all.length]) {
    for (let from = 0; from < all.length; from += size) {
      const batch = all.slice(from, from + size);
      const expected = Buffer.concat(batch.flatMap((p) => [Buffer.from(p), Buffer.from('\n')]));
      assert.ok(Buffer.concat(linesOf(batch.map(message))).equals(expected), `batch of ${size} from ${from}`);
    }
  }
});

test('linesOf: consecutive JsonOut events are one part, written without a copy', () => {
  const out = new JsonOut();
  const batch: OutboundMessage[] = [];
  for (let i = 0; i < 100; i++) {
    out.begin();
    out.ascii(`{"i":${i}}`);
    batch.push(message(out.end()));
  }
  const parts = linesOf(batch);
  assert.equal(parts.length, 1);
  assert.equal(parts[0]!.buffer, (batch[0]!.payload as Buffer).buffer, 'a view of the chunk');
});

test('StdoutPublisher writes the batch in order and resolves once written', async () => {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      setImmediate(callback);
    },
  });
  const publisher = new StdoutPublisher(sink);
  const all = payloads().slice(0, 900);
  await publisher.publish(all.slice(0, 500).map(message));
  await publisher.publish(all.slice(500).map(message));
  await publisher.publish([]);
  assert.equal(Buffer.concat(chunks).toString(), all.map((p) => `${p.toString()}\n`).join(''));
});
