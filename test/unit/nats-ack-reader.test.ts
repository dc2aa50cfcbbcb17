import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NatsAckReader } from '../../src/publishers/nats-ack-reader.js';

const INBOX = '_INBOX.ABCDEF123';

/** A stand-in for nats-core's ProtocolHandler: its parser records the frames it is handed. */
function host() {
  const seen: string[] = [];
  const parser = { parse: (buf: Uint8Array) => void seen.push(Buffer.from(buf).toString('latin1')) };
  return { protocol: { parser, inMsgs: 0, inBytes: 0 }, seen };
}

function install(nc: { protocol: object }, sid = 7) {
  const acks: [number, string][] = [];
  const sub = { sid, received: 0 };
  const reader = NatsAckReader.install(nc, sub, INBOX, (batch, buf, start, end) => acks.push([batch, Buffer.from(buf.subarray(start, end)).toString('latin1')]));
  assert.ok(reader);
  return { reader, acks, sub };
}

/** As nats-server writes them: two spaces before the size (an empty reply); `single` for one. */
const ack = (batch: number, payload: string, sid = 7, single = false) => `MSG ${INBOX}.${batch} ${sid} ${single ? '' : ' '}${Buffer.byteLength(payload)}\r\n${payload}\r\n`;

test('acks of the reply subscription go to the handler; other frames go whole, in order, to the client parser', () => {
  const nc = host();
  const { acks, sub } = install(nc);
  const status = `HMSG ${INBOX}.3 7 16 16\r\nNATS/1.0 503\r\n\r\n\r\n`;
  const other = 'MSG other.subject 2 _INBOX.x.y 5\r\nhello\r\n';
  const input = ack(1, '{"stream":"s","seq":1}', 7, true) + 'PING\r\n' + status + ack(2, '{"error":{"code":400}}') + other + '+OK\r\n' + ack(4, '{"stream":"s","seq":2,"duplicate":true}', 9);
  const p = nc.protocol.parser;
  p.parse(Buffer.from(input, 'latin1'));
  assert.deepEqual(acks, [
    [1, '{"stream":"s","seq":1}'],
    [2, '{"error":{"code":400}}'],
  ]);
  assert.deepEqual(nc.seen, ['PING\r\n', status, other, '+OK\r\n', ack(4, '{"stream":"s","seq":2,"duplicate":true}', 9)]);
  assert.equal(sub.received, 2);
  assert.equal(nc.protocol.inMsgs, 2);
});

test('frames split anywhere across reads are put together', () => {
  const input = ack(10, '{"stream":"s","seq":10}') + 'PONG\r\n' + ack(11, '{"stream":"s","seq":11}') + `HMSG ${INBOX}.12 7 16 16\r\nNATS/1.0 503\r\n\r\n\r\n` + ack(13, '{"stream":"s","seq":13}');
  const bytes = Buffer.from(input, 'latin1');
  for (let size = 1; size <= 40; size++) {
    const nc = host();
    const { acks } = install(nc);
    for (let i = 0; i < bytes.length; i += size) nc.protocol.parser.parse(bytes.subarray(i, i + size));
    assert.deepEqual(acks.map(([b]) => b), [10, 11, 13], `reads of ${size} bytes`);
    assert.deepEqual(nc.seen, ['PONG\r\n', `HMSG ${INBOX}.12 7 16 16\r\nNATS/1.0 503\r\n\r\n\r\n`], `reads of ${size} bytes`);
  }
});

test('a new parser (reconnect) drops the bytes of the old connection; uninstall restores the parser', () => {
  const nc = host();
  const { reader, acks } = install(nc);
  nc.protocol.parser.parse(Buffer.from(ack(1, '{"stream":"s","seq":1}').slice(0, 20), 'latin1'));
  const fresh: string[] = [];
  const next = { parse: (buf: Uint8Array) => void fresh.push(Buffer.from(buf).toString('latin1')) };
  nc.protocol.parser = next;
  nc.protocol.parser.parse(Buffer.from(ack(2, '{"stream":"s","seq":2}') + 'PING\r\n', 'latin1'));
  assert.deepEqual(acks.map(([b]) => b), [2]);
  assert.deepEqual(fresh, ['PING\r\n']);
  reader.uninstall();
  assert.equal(nc.protocol.parser, next);
});

test('bytes it cannot frame go to the client parser from there on', () => {
  const nc = host();
  const { acks } = install(nc);
  nc.protocol.parser.parse(Buffer.from(ack(1, '{"stream":"s","seq":1}') + 'XYZ\r\n' + ack(2, '{"stream":"s","seq":2}'), 'latin1'));
  nc.protocol.parser.parse(Buffer.from(ack(3, '{"stream":"s","seq":3}'), 'latin1'));
  assert.deepEqual(acks.map(([b]) => b), [1]);
  assert.deepEqual(nc.seen, ['XYZ\r\n' + ack(2, '{"stream":"s","seq":2}'), ack(3, '{"stream":"s","seq":3}')]);
});

test('nothing is installed when the client is not shaped as expected', () => {
  assert.equal(NatsAckReader.install({}, { sid: 1 }, INBOX, () => {}), null);
  assert.equal(NatsAckReader.install(host(), { sid: 'x' }, INBOX, () => {}), null);
  assert.equal(NatsAckReader.install({ protocol: { parser: {} } }, { sid: 1 }, INBOX, () => {}), null);
});
