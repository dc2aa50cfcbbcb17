/**
 * RabbitMQ interoperability of the mikkoo mapping, read by a client we did not write (Debian's
 * python3-pika, test/support/amqp_dump.py): a message built by the PgQ event mapping is published
 * with amqplib exactly as the message says (exchange, routing key, body, properties), and pika must
 * decode mikkoo's fields. The end-to-end run (PgQ → daemon → RabbitMQ → pika) needs the pipeline
 * v2 wiring and reuses startAmqpDump.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Options } from 'amqplib';
import { createEventMapper } from '../../src/sources/pgq/event-mapping.js';
import { messageIdPrefix, queueHash } from '../../src/sources/pgq/ids.js';
import { startAmqpDump } from '../support/pika.js';
import { cleanup, rabbitConnect, uniqueName } from '../support/rabbitmq.js';

const exchange = uniqueName('wl_pgq_pika');
const queue = uniqueName('wl_pgq_pika_q');

after(async () => {
  await cleanup({ queues: [queue], exchanges: [exchange] });
});

test("pika reads mikkoo's example as mikkoo would send it: exchange, routing key, body, content type, type, automatic properties and headers", async () => {
  const map = createEventMapper({
    topic: 'wal_listener',
    amqp: true,
    queue: 'test',
    idPrefix: messageIdPrefix(queueHash('7350000000000000001', 'shop', 'test')),
    origin: 'relay-1.example',
    badJson: (evId, column, reason) => assert.fail(`${evId} ${column} ${reason}`),
  });
  // mikkoo's example, sent to an exchange of this test (the broker is shared).
  const message = map({
    ev_id: '17',
    ev_time: '2017-02-23 06:17:14.471682+00',
    ev_txid: '41356335556',
    ev_retry: null,
    ev_type: 'test.routing-key',
    ev_data: '{"foo": "bar"}',
    ev_extra1: exchange,
    ev_extra2: 'application/json',
    ev_extra3: '{"type": "example"}',
    ev_extra4: '',
  });

  const rabbit = await rabbitConnect();
  try {
    await rabbit.channel.assertExchange(exchange, 'topic', { durable: true });
    const dump = startAmqpDump({ queue, exchange, binding: '#', count: 1 });
    await dump.ready;
    const confirm = await rabbit.model.createConfirmChannel();
    confirm.publish(message.exchange!, message.subject, message.payload, message.properties as Options.Publish);
    await confirm.waitForConfirms();
    await confirm.close();

    const { messages, code, stderr } = await dump.done;
    assert.equal(code, 0, stderr);
    assert.equal(messages.length, 1);
    const got = messages[0]!;
    assert.equal(got.exchange, exchange);
    assert.equal(got.routing_key, 'test.routing-key');
    assert.equal(got.body, '{"foo": "bar"}');
    assert.deepEqual(got.properties, {
      app_id: 'wal-listener',
      content_type: 'application/json',
      correlation_id: message.id,
      delivery_mode: 2,
      message_id: message.id,
      timestamp: 1487830634,
      type: 'example',
    });
    assert.deepEqual(got.headers, {
      origin: 'relay-1.example',
      sequence: (message.properties!.headers as Record<string, unknown>).sequence,
      timestamp: '2017-02-23T06:17:14.471682+00:00',
      txid: 41356335556,
    });
  } finally {
    await rabbit.close();
  }
});
