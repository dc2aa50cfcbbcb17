import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NatsFrameWriter, type NatsProtocol } from '../../src/publishers/nats-frames.js';
import type { OutboundMessage } from '../../src/publishers/publisher.js';

function message(i: number, payloadBytes: number, headers: Record<string, string> | null = null): OutboundMessage {
  return {
    subject: `topic.public.t${i % 3}`,
    payload: Buffer.from(JSON.stringify({ i, pad: 'é'.repeat(Math.max(0, Math.floor((payloadBytes - 20) / 2))) })),
    id: `00000000-0000-0000-0000-${String(i).padStart(12, '0')}`,
    headers,
    key: `k${i}`,
    keyHeader: true,
  } as unknown as OutboundMessage;
}

/** A protocol handler whose socket can be written to directly (connected) or not (no socket). */
function protocol(connected: boolean) {
  const viaClient: Buffer[] = [];
  const viaSocket: Buffer[] = [];
  let corked = 0;
  const socket = {
    writableLength: 0,
    writable: true,
    destroyed: false,
    cork: () => void corked++,
    uncork: () => void corked--,
    write: (chunk: Uint8Array) => {
      assert.ok(corked > 0, 'written while corked');
      viaSocket.push(Buffer.from(chunk));
      return true;
    },
  };
  const p: NatsProtocol = {
    sendCommand: (cmd: Uint8Array) => void viaClient.push(Buffer.from(cmd)),
    flushPending: () => {},
    outMsgs: 0,
    outBytes: 0,
    outbound: { size: () => 0 },
    connected,
    infoReceived: true,
    transport: connected ? { socket, isClosed: false, done: false } : undefined,
  };
  return { p, viaClient, viaSocket };
}

test('a batch with large payloads written to the socket directly has the same bytes as through the client', () => {
  const batch = [message(0, 100), message(1, 9000), message(2, 3000), message(3, 50, { a: 'b' }), message(4, 2048), message(5, 10)];
  const direct = protocol(true);
  const viaClient = protocol(false);
  assert.deepEqual(new NatsFrameWriter(direct.p).write(batch, '_INBOX.X.1', 1 << 20), { sent: true });
  assert.deepEqual(new NatsFrameWriter(viaClient.p).write(batch, '_INBOX.X.1', 1 << 20), { sent: true });
  assert.equal(direct.viaClient.length, 0);
  assert.ok(direct.viaSocket.length > 1);
  assert.equal(viaClient.viaSocket.length, 0);
  assert.deepEqual(Buffer.concat(direct.viaSocket), Buffer.concat(viaClient.viaClient));
  assert.equal(direct.p.outMsgs, batch.length);
  assert.equal(direct.p.outBytes, viaClient.p.outBytes);
  // Large payloads are chunks of their own, not copies.
  assert.ok(direct.viaSocket.some((chunk) => chunk.equals(batch[1]!.payload as Buffer)));
});

test('a batch of small payloads goes through the client even when connected', () => {
  const batch = [message(0, 100), message(1, 200)];
  const direct = protocol(true);
  new NatsFrameWriter(direct.p).write(batch, '_INBOX.X.2', 1 << 20);
  assert.equal(direct.viaSocket.length, 0);
  assert.equal(direct.viaClient.length, 1);
  const text = direct.viaClient[0]!.toString('utf8');
  assert.match(text, /^HPUB topic\.public\.t0 _INBOX\.X\.2 63 \d+\r\nNATS\/1\.0\r\nNats-Msg-Id: 00000000-0000-0000-0000-000000000000\r\n\r\n\{"i":0/);
});
