/**
 * Reuse of JsonOut's chunks (json-out.ts, PayloadLease): a chunk is written over only once every
 * message ended in it was released and the writer has left it; the dispatcher releases a message
 * only once it is acknowledged, only for a publisher that allows it (Publisher.releasesPayloads),
 * and never a refused or dead-lettered one. Through the real stdout publisher into a reader that
 * takes its time, and through NATS and RabbitMQ frames into a socket that holds them, every
 * byte written must be the event's.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { afterEach, test } from 'node:test';
import { Writable } from 'node:stream';
import { PublishError, type WalListenerError } from '../../src/errors.js';
import { createLogger } from '../../src/observability/logger.js';
import type { DeadLetterStore } from '../../src/pipeline/dead-letters.js';
import { Dispatcher, type Delivery } from '../../src/pipeline/dispatcher.js';
import { JsonOut } from '../../src/pipeline/json-out.js';
import type { OutboundMessage } from '../../src/pipeline/message.js';
import { NatsFrameWriter, type NatsProtocol } from '../../src/publishers/nats-frames.js';
import type { Publisher } from '../../src/publishers/publisher.js';
import { AmqpFrameWriter } from '../../src/publishers/rabbitmq-frames.js';
import { StdoutPublisher } from '../../src/publishers/stdout.js';
import { MemoryDeadLetters } from '../support/dispatch.js';
import { FakePublisher, testMessage } from '../support/fake-publisher.js';
import { waitFor } from '../support/ports.js';

const log = createLogger({ level: 'fatal', fmt: 'json' });

class CountingDelivery implements Delivery {
  acked = 0;
  ack(count: number): void {
    this.acked += count;
  }
}

/** Event text number i: sizes from a few bytes to 9 KB (several per chunk, some chunks with one). */
function eventText(i: number): string {
  const size = i % 11 === 0 ? 9000 : (i * 37) % 1500;
  return `{"i":${i},"pad":"${String.fromCharCode(97 + (i % 26)).repeat(size)}"}`;
}

/** An event written by `out` as the pipeline writes it: the payload, then the lease of its chunk. */
function event(out: JsonOut, i: number, text = eventText(i)): OutboundMessage {
  out.begin();
  out.ascii(text);
  const payload = out.end();
  return { ...testMessage(`e${i}`, `k${i}`), payload, lease: out.lease };
}

const bufferOf = (m: OutboundMessage): ArrayBufferLike => (m.payload as Buffer).buffer;

test('a chunk is written over only after every message in it was released and the writer has left it', () => {
  const out = new JsonOut();
  const first: OutboundMessage[] = [event(out, 0, '{"held":true}')];
  const chunkA = bufferOf(first[0]!);
  let i = 1;
  while (first[first.length - 1]!.lease === first[0]!.lease) first.push(event(out, i++, `{"a":${i},"pad":"${'x'.repeat(2000)}"}`));
  // The last one went into a new chunk; every message of chunk A but the first is released.
  const later = [first.pop()!];
  for (const m of first.slice(1)) m.lease!.release();
  // Later events are released as they are written, so other chunks are reused meanwhile.
  for (let n = 0; n < 3000; n++) {
    const m = event(out, i++);
    later.push(m);
    m.lease!.release();
  }
  assert.ok(new Set(later.map(bufferOf)).size < 10, 'other chunks were reused');
  assert.ok(!later.some((m) => bufferOf(m) === chunkA), 'chunk A is not reused while one of its messages is held');
  assert.equal((first[0]!.payload as Buffer).toString(), '{"held":true}');
  // Released and already left: chunk A is the next chunk taken.
  first[0]!.lease!.release();
  const next: OutboundMessage[] = [];
  for (let n = 0; n < 400 && !next.some((m) => bufferOf(m) === chunkA); n++) next.push(event(out, i++));
  assert.ok(next.some((m) => bufferOf(m) === chunkA), 'chunk A is written over once released');
});

test('released messages keep the writer on two chunks; a chunk made for a message over 128 KiB is not reused', () => {
  const out = new JsonOut();
  const seen = new Set<ArrayBufferLike>();
  for (let i = 0; i < 5000; i++) {
    const m = event(out, i);
    assert.equal((m.payload as Buffer).toString(), eventText(i));
    seen.add(bufferOf(m));
    m.lease!.release();
  }
  assert.equal(seen.size, 2, 'the current chunk and the one released before it');
  const big = event(out, 1, `"${'b'.repeat(300_000)}"`);
  big.lease!.release();
  // Events after it fill the rest of its chunk; once the writer has left that chunk, it never comes back.
  let left = false;
  for (let i = 0; i < 4000; i++) {
    const m = event(out, i);
    if (bufferOf(m) !== bufferOf(big)) left = true;
    else assert.ok(!left, `event ${i} back in the chunk of the large message`);
    m.lease!.release();
  }
  assert.ok(left);
});

/** Dispatchers made by a test, stopped after it also when it fails (their deadline timers would re-send for ever). */
const made: Dispatcher[] = [];
afterEach(() => {
  for (const d of made.splice(0)) d.stop();
});

function dispatcherFor(publisher: Publisher, observer: ConstructorParameters<typeof Dispatcher>[0]['observer'] = {}, deadLetters: DeadLetterStore | null = null) {
  const fatal: WalListenerError[] = [];
  const dispatcher = new Dispatcher({
    publisher,
    logger: log,
    maxInFlight: 1000,
    maxBatch: 4,
    ackTimeout: 10_000,
    retry: { initialMs: 1, maxMs: 5 },
    reconnect: { initialMs: 1, maxMs: 5 },
    deadLetters,
    onFatal: (err) => fatal.push(err),
    observer,
  });
  made.push(dispatcher);
  return { dispatcher, fatal };
}

/** Three events of one chunk handed to the dispatcher as one batch. */
function sendThree(dispatcher: Dispatcher) {
  const out = new JsonOut();
  const messages = [0, 1, 2].map((i) => event(out, i));
  const d = new CountingDelivery();
  for (const m of messages) dispatcher.add(m, d);
  dispatcher.flush();
  return { messages, lease: messages[0]!.lease!, d };
}

test('the dispatcher releases a message once it is acknowledged, after the observers saw it, and only for a publisher that allows it', async () => {
  for (const releases of [false, true]) {
    const publisher = new FakePublisher();
    publisher.releasesPayloads = releases;
    const leasesSeenByObserver: (unknown | null)[] = [];
    const { dispatcher } = dispatcherFor(publisher, { acked: (messages) => leasesSeenByObserver.push(...messages.map((m) => m.lease)) });
    const { messages, lease, d } = sendThree(dispatcher);
    assert.equal(lease.released, 0, 'nothing is released before the acknowledgement');
    publisher.calls[0]!.ack();
    await dispatcher.drained();
    assert.equal(d.acked, 3);
    assert.ok(leasesSeenByObserver.every((l) => l === lease), 'the observers run before the release');
    assert.equal(lease.released, releases ? 3 : 0);
    assert.deepEqual(messages.map((m) => m.lease === null), [releases, releases, releases]);
  }
});

test('a refused message stored as a dead letter is not released; the rest of its batch is, once acknowledged', async () => {
  const publisher = new FakePublisher();
  publisher.releasesPayloads = true;
  const deadLetters = new MemoryDeadLetters();
  const { dispatcher, fatal } = dispatcherFor(publisher, {}, deadLetters);
  const { messages, lease, d } = sendThree(dispatcher);
  publisher.calls[0]!.fail(new PublishError('too large for the broker', false, { rejected: 1 }));
  await waitFor('the rest re-sent', () => publisher.calls.length === 2, 2000, 2);
  publisher.calls[1]!.ack();
  await dispatcher.drained();
  assert.equal(deadLetters.stored.length, 1);
  assert.equal(d.acked, 3);
  assert.deepEqual(fatal, []);
  assert.equal(lease.released, 2);
  assert.equal(messages[1]!.lease, lease, 'the dead letter keeps its chunk out of reuse');
});

test('through the stdout publisher into a reader that takes its time, every event written is the event, while chunks are reused', async () => {
  const received: Buffer[] = [];
  let turn = 0;
  // The reader copies each chunk only when the stream hands it over: later writes wait in the
  // stream, as views of JsonOut's chunks, while events after them are being written.
  const reader = new Writable({
    highWaterMark: 16 * 1024,
    write(chunk: Buffer, _encoding, callback) {
      received.push(Buffer.from(chunk));
      if (++turn % 7 === 0) setTimeout(callback, 1);
      else setImmediate(callback);
    },
  });
  const publisher = new StdoutPublisher(reader);
  const { dispatcher, fatal } = dispatcherFor(publisher);
  const out = new JsonOut();
  const d = new CountingDelivery();
  const chunks = new Set<ArrayBufferLike>();
  let switches = 0;
  let last: unknown = null;
  const expected: string[] = [];
  for (let i = 0; i < 6000; i++) {
    const m = event(out, i);
    if (m.lease !== last) switches++;
    last = m.lease;
    chunks.add(bufferOf(m));
    expected.push(eventText(i));
    dispatcher.add(m, d);
    if (i % 50 === 49) {
      dispatcher.flush();
      await dispatcher.whenBelow(900);
    }
  }
  dispatcher.flush();
  await dispatcher.drained();
  assert.deepEqual(fatal, []);
  assert.equal(d.acked, 6000);
  const lines = Buffer.concat(received).toString('utf8').split('\n');
  assert.equal(lines.pop(), '');
  assert.equal(lines.length, expected.length);
  for (let i = 0; i < expected.length; i++) assert.equal(lines[i], expected[i], `event ${i}`);
  assert.ok(switches > 20, `${switches} chunks written`);
  assert.ok(chunks.size < switches / 2, `${chunks.size} distinct chunks for ${switches} chunk changes: chunks were reused`);
});

/**
 * Frames written straight to the socket (nats-frames.ts, rabbitmq-frames.ts): a real TCP
 * connection to a server that does not read yet, so the payloads wait in the socket. For NATS the
 * protocol object is a stand-in for nats-core's ProtocolHandler (the fields the writer reads);
 * the socket is real.
 */
async function socketPair(): Promise<{ client: Socket; server: Socket; stop(): void }> {
  let accepted: (s: Socket) => void;
  const serverSide = new Promise<Socket>((resolve) => (accepted = resolve));
  const listener = createServer((s) => {
    s.pause();
    accepted(s);
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const client = connect((listener.address() as AddressInfo).port, '127.0.0.1');
  await once(client, 'connect');
  const server = await serverSide;
  return { client, server, stop: () => (client.destroy(), server.destroy(), listener.close()) };
}

function protocolOn(socket: Socket): NatsProtocol {
  return {
    sendCommand: () => assert.fail('frames with large payloads go to the socket directly here'),
    flushPending: () => undefined,
    outMsgs: 0,
    outBytes: 0,
    outbound: { size: () => 0 },
    transport: { socket, isClosed: false, done: false },
    connected: true,
    infoReceived: true,
  };
}

/** The frame writers that hand large payloads to their socket as they are. */
const FRAME_WRITERS: [string, (socket: Socket, batch: OutboundMessage[]) => unknown][] = [
  ['NATS', (socket, batch) => new NatsFrameWriter(protocolOn(socket)).write(batch, '_INBOX.t.1', Infinity)],
  ['RabbitMQ', (socket, batch) => new AmqpFrameWriter(socket, 1, 131072, 'wl').write(batch)],
];

/** Events of 3 KB (handed to the socket as they are) until one lands in a second chunk: the first chunk's events. */
function chunkOfLargeEvents(out: JsonOut): OutboundMessage[] {
  const inChunk: OutboundMessage[] = [];
  for (let i = 0; ; i++) {
    const m = event(out, i, `{"n":${i},"pad":"${'q'.repeat(3000)}"}`);
    if (inChunk.length > 0 && m.lease !== inChunk[0]!.lease) return inChunk;
    inChunk.push(m);
  }
}

/** Writes and releases events until one lands in `chunk` (true) or `max` events did not (false). */
function reusesChunk(out: JsonOut, chunk: ArrayBufferLike, max: number): boolean {
  for (let n = 0; n < max; n++) {
    const m = event(out, 100_000 + n);
    m.lease!.release();
    if (bufferOf(m) === chunk) return true;
  }
  return false;
}

/** What fills the connection's kernel buffers, so that frames written after it wait in the socket. */
const FILLER = 32 * 1024 * 1024;

for (const [name, writeFrames] of FRAME_WRITERS) {
  test(`${name}: a payload handed to the socket holds its chunk until the socket wrote it, also after the acknowledgement; every byte sent is the event`, async () => {
    const { client, server, stop } = await socketPair();
    try {
      client.write(Buffer.alloc(FILLER, 0x2e));
      const out = new JsonOut();
      const inChunk = chunkOfLargeEvents(out);
      const chunkA = bufferOf(inChunk[0]!);
      const expected = inChunk.map((m) => Buffer.from(m.payload as Buffer));
      assert.deepEqual(writeFrames(client, inChunk), { sent: true });
      assert.ok(client.writableLength > 0, 'the frames wait in the socket');
      // Acknowledged (as the dispatcher releases them), and the writer has left chunk A.
      for (const m of inChunk) m.lease!.release();
      assert.equal(reusesChunk(out, chunkA, 3000), false, 'chunk A is not written over while the socket holds its payloads');
      // The server reads everything: the frames carry the events' bytes, and chunk A is free.
      const received: Buffer[] = [];
      server.on('data', (d: Buffer) => received.push(d));
      server.resume();
      await waitFor('the socket wrote everything', () => client.writableLength === 0, 10_000, 10);
      await waitFor('every byte received', () => received.reduce((n, d) => n + d.length, 0) >= FILLER + expected.reduce((n, e) => n + e.length, 0), 10_000, 10);
      const frames = Buffer.concat(received).subarray(FILLER);
      let at = 0;
      for (const [i, payload] of expected.entries()) {
        at = frames.indexOf(payload, at);
        assert.ok(at >= 0, `event ${i}'s payload is in the frames, whole, in order`);
      }
      assert.equal(reusesChunk(out, chunkA, 3000), true, 'chunk A is written over once the socket wrote it');
    } finally {
      stop();
    }
  });

  test(`${name}: a socket destroyed with payloads still in it lets their chunk go (its write callbacks run)`, async () => {
    const { client, stop } = await socketPair();
    try {
      client.write(Buffer.alloc(FILLER, 0x2e));
      const out = new JsonOut();
      const inChunk = chunkOfLargeEvents(out);
      const chunkA = bufferOf(inChunk[0]!);
      writeFrames(client, inChunk);
      for (const m of inChunk) m.lease!.release();
      assert.equal(reusesChunk(out, chunkA, 3000), false);
      client.on('error', () => undefined);
      client.destroy();
      await once(client, 'close');
      assert.equal(reusesChunk(out, chunkA, 3000), true, 'chunk A is written over once the socket is gone');
    } finally {
      stop();
    }
  });
}
