/**
 * The NATS publisher's fast paths against a real nats-server (issue 12): every PubAck is read
 * straight off the connection's bytes (nats-ack-reader.ts), none through the client's parser, for
 * small payloads (frames copied into one buffer) and for payloads of 2 KB and more (written to the
 * socket as they are); duplicates (a re-sent batch) are acks too; every message is stored once, whole.
 * The reader's framing is unit-tested (nats-ack-reader.test.ts); this test would catch a server whose
 * MSG lines it does not recognise (they would all fall back to the client's parser).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { configSchema } from '../../src/config/schema.js';
import { createLogger } from '../../src/observability/logger.js';
import { NatsPublisher } from '../../src/publishers/nats.js';
import type { OutboundMessage } from '../../src/publishers/publisher.js';
import { dispatchAll } from '../support/dispatch.js';
import { readStream, startNats, type NatsServer } from '../support/nats.js';

const log = createLogger({ level: 'fatal', fmt: 'json' });
let server: NatsServer;
let nc: NatsConnection;

before(async () => {
  server = await startNats();
  nc = await connect({ servers: server.url });
});
after(async () => {
  await nc?.close();
  await server?.stop();
});

function message(n: number, payload: string): OutboundMessage {
  return { id: `ackpath-${n}`, subject: 'ackpath.public_t', key: `{"id":${n % 7}}`, payload, lsn: `0/${(0x1000 + n).toString(16).toUpperCase()}`, schema: 'public', table: 't', action: 'INSERT', headers: null, properties: null, exchange: null };
}

test('every PubAck of small and large payloads, duplicates included, is read off the connection directly; every message stored once', async () => {
  const config = configSchema.parse({ listener: { slotName: 'unused' }, publisher: { type: 'nats', address: server.url, topic: 'ackpath', ackTimeout: '10s' } }).publisher;
  const publisher = new NatsPublisher(config, log);
  try {
    await publisher.connect();
    const small = Array.from({ length: 300 }, (_, i) => message(i, `{"n":${i},"s":"${'x'.repeat(i % 50)}"}`));
    const large = Array.from({ length: 40 }, (_, i) => message(300 + i, `{"n":${300 + i},"s":"${'y'.repeat(2048 + i * 97)}"}`));
    const batches = [small.slice(0, 100), small.slice(100, 300), large.slice(0, 20), large.slice(20)];
    await dispatchAll(publisher, batches);
    assert.equal(publisher.directAcks(), 340, 'every ack on the direct path');
    // A batch sent again: JetStream answers with duplicate acks, which count as acknowledged.
    await dispatchAll(publisher, [small.slice(0, 10), large.slice(0, 5)]);
    assert.equal(publisher.directAcks(), 355);

    const stored = await readStream(nc, 'ackpath');
    assert.equal(stored.length, 340, 'each message once (the re-sent ones deduplicated by Nats-Msg-Id)');
    const expected = new Map([...small, ...large].map((m) => [m.id, m.payload]));
    assert.deepEqual(new Set(stored.map((m) => m.msgId)), new Set(expected.keys()));
    for (const m of stored) assert.equal(m.raw, expected.get(m.msgId ?? ''), `payload of ${m.msgId}`);
  } finally {
    await publisher.close();
  }
});
