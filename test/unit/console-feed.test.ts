/**
 * The console feed and server in-process, fed batches through the observer hook the dispatcher
 * calls (no database): frame format for change events and routed messages, one frame object
 * shared by all clients, the stats event, and a client that stops reading being dropped at the
 * bound while another keeps receiving.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { OutboundMessage } from '../../src/pipeline/message.js';
import { createLogger } from '../../src/observability/logger.js';
import { ConsoleFeed } from '../../src/observability/console-feed.js';
import { ConsoleServer } from '../../src/observability/console-server.js';
import { waitFor } from '../support/ports.js';
import { openSse, stuckClient, type SseClient } from '../support/sse.js';

const logger = createLogger({ level: 'fatal', fmt: 'json' });
let feed: ConsoleFeed;
let server: ConsoleServer;
let port: number;
const clients: SseClient[] = [];

function message(over: Partial<OutboundMessage>): OutboundMessage {
  return { id: 'id-1', subject: 's.public_t', key: '{"id":1}', payload: '{"id":"id-1","table":"t"}', lsn: '0/1', schema: 'public', table: 't', action: 'INSERT', committedAt: Date.now() - 5, headers: null, properties: null, exchange: null, ...over };
}

before(async () => {
  feed = new ConsoleFeed({ maxClients: 10, logger, slowBuffer: 64 * 1024, maxBuffer: 64 * 1024 * 1024 });
  server = new ConsoleServer({ address: { host: '127.0.0.1', port: 0 }, token: '', feed, maxClients: 10 });
  port = await server.listen();
  feed.start();
});

after(async () => {
  for (const c of clients) c.close();
  feed.stop();
  await server.close();
});

async function sse(path: string): Promise<SseClient> {
  const c = await openSse(port, path);
  clients.push(c);
  await waitFor('registered', () => feed.size >= clients.filter((x) => x.status === 200).length);
  return c;
}

test('change events: id, key and data as published; routed messages wrapped; line breaks kept out of fields', async () => {
  const a = await sse('/events');
  feed.observer().acked([
    message({}),
    message({ id: 'id-2', action: 'MESSAGE', table: 'outbox', key: 'order\n7', payload: Buffer.from('line 1\nline 2'), subject: 'orders' }),
  ]);
  await a.waitForChanges(2);
  const [change, routed] = a.events.filter((e) => e.type === 'message');
  assert.deepEqual(change, { type: 'message', id: 'id-1', key: '{"id":1}', data: '{"id":"id-1","table":"t"}' });
  assert.equal(routed!.key, 'order 7');
  assert.deepEqual(JSON.parse(routed!.data), { id: 'id-2', schema: 'public', table: 'outbox', action: 'MESSAGE', subject: 'orders', key: 'order\n7', payload: 'line 1\nline 2' });
});

test('stats clients get the history at once and a stats event every second', async () => {
  const s = await sse('/events?stats=1');
  await waitFor('two stats events', () => s.events.filter((e) => e.type === 'stats').length >= 2, 5_000);
  const last = JSON.parse(s.events.filter((e) => e.type === 'stats').at(-1)!.data) as Record<string, unknown>;
  assert.equal(typeof last.rate, 'number');
  assert.ok(Number(last.total) >= 2);
  assert.equal(last.state, 'starting');
  assert.deepEqual(last.publisher, { ok: false, reason: 'publisher not connected yet' });
});

test('a client that stops reading is dropped once stalled; clients that read get everything', async () => {
  const reader = await sse('/events?actions=update');
  const stuck = await stuckClient(port, '/events?actions=update');
  await waitFor('stuck client registered', () => feed.size === clients.length + 1);
  const droppedBefore = feed.dropped;
  const payload = `{"pad":"${'x'.repeat(2000)}"}`;
  // More than the kernel buffers and the 64 KiB bound, in batches, until a tick finds it stalled.
  for (let b = 0; b < 1000 && feed.dropped === droppedBefore; b++) {
    feed.observer().acked(Array.from({ length: 100 }, (_, i) => message({ id: `u-${b}-${i}`, action: 'UPDATE', payload })));
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.equal(feed.dropped, droppedBefore + 1, 'the stuck client was dropped, and only it');
  const sent = feed.size;
  feed.observer().acked([message({ id: 'last', action: 'UPDATE', payload: '{}' })]);
  await waitFor('the reader got the last event', () => reader.events.some((e) => e.id === 'last'), 10_000);
  assert.equal(feed.size, sent, 'the reader is still connected');
  stuck.destroy();
});
