/**
 * RabbitMQ (amqplib): a durable queue `<name>` bound to the daemon's exchange `<topic>` with the
 * registered tables' routing keys (subjects; for a headers exchange, the `table` header), manual
 * acks, `prefetch` unacknowledged at most. Dead letter: the queue has `x-dead-letter-exchange`,
 * and a failed change is rejected without requeue, so RabbitMQ moves it there (with `x-death`).
 */
import { connect as amqpConnect, type Channel, type ChannelModel, type ConsumeMessage } from 'amqplib';
import { BrokerConnectionError, BrokerSetupError, describe } from '../errors.js';
import type { RabbitMqConsumerOptions } from '../types.js';
import type { AdapterContext, BrokerAdapter, Delivery } from './adapter.js';

export function rabbitMqAdapter(options: RabbitMqConsumerOptions, context: AdapterContext): BrokerAdapter {
  const queue = options.name;
  const exchange = options.topic;
  const kind = options.exchangeKind ?? 'topic';
  const dlx = options.deadLetterExchange;
  let model: ChannelModel | undefined;
  /** Resolves when the connection has closed, whoever closed it. */
  let modelClosed: Promise<void> = Promise.resolve();
  let channel: Channel | undefined;
  let consumerTag: string | undefined;
  let closing = false;

  const toDelivery = (ch: Channel, msg: ConsumeMessage): Delivery => ({
    body: msg.content.toString('utf8'),
    ack: () => ch.ack(msg),
    release: () => ch.nack(msg, false, true),
    deadLetter: dlx ? async () => ch.nack(msg, false, false) : undefined,
  });

  /** Declarations, step by step, so a refusal names what was refused. */
  const declare = async (ch: Channel): Promise<void> => {
    const step = async (what: string, run: () => Promise<unknown>): Promise<void> => {
      try {
        await run();
      } catch (err) {
        throw new BrokerSetupError(`RabbitMQ refused to ${what}: ${describe(err)}`, { cause: err });
      }
    };
    await step(`declare exchange ${exchange} (durable ${kind}, as the daemon does)`, () => ch.assertExchange(exchange, kind, { durable: true }));
    if (dlx) {
      await step(`declare dead-letter exchange ${dlx} (durable fanout)`, () => ch.assertExchange(dlx, 'fanout', { durable: true }));
      await step(`declare queue ${queue}.dead-letter`, () => ch.assertQueue(`${queue}.dead-letter`, { durable: true }));
      await step(`bind queue ${queue}.dead-letter to ${dlx}`, () => ch.bindQueue(`${queue}.dead-letter`, dlx, ''));
    }
    const args = dlx ? { 'x-dead-letter-exchange': dlx } : {};
    await step(`declare queue ${queue} (durable${dlx ? `, x-dead-letter-exchange ${dlx}` : ''}); an existing queue must have the same arguments`, () =>
      ch.assertQueue(queue, { durable: true, arguments: args }),
    );
    for (const binding of bindings(kind, context)) {
      await step(`bind queue ${queue} to ${exchange} (${binding.pattern || JSON.stringify(binding.args)})`, () => ch.bindQueue(queue, exchange, binding.pattern, binding.args));
    }
  };

  return {
    async start(sink) {
      closing = false;
      try {
        model = await amqpConnect(options.url, { ...options.socket, clientProperties: { connection_name: `wal-listener-consumer:${queue}` } });
      } catch (err) {
        throw new BrokerConnectionError('WAL_CONSUMER_CONNECT', `cannot connect to RabbitMQ: ${describe(err)}`, { cause: err });
      }
      const current = model;
      current.on('error', () => undefined);
      modelClosed = new Promise((resolve) =>
        current.once('close', (err?: Error) => {
          resolve();
          if (!closing) sink.lost(err ?? new Error('RabbitMQ connection closed'));
        }),
      );
      // A refused declaration closes its channel: declarations get a channel of their own.
      const setup = await current.createChannel();
      setup.on('error', () => undefined);
      await declare(setup);
      await setup.close().catch(() => undefined);
      const ch = await current.createChannel();
      ch.on('error', () => undefined);
      ch.on('close', () => {
        if (!closing && channel === ch) sink.lost(new Error('RabbitMQ channel closed'));
      });
      channel = ch;
      await ch.prefetch(context.prefetch);
      const reply = await ch.consume(queue, (msg) => {
        if (msg) sink.deliver(toDelivery(ch, msg));
        else if (!closing) sink.lost(new Error(`RabbitMQ cancelled the consumer of queue ${queue} (queue deleted?)`));
      });
      consumerTag = reply.consumerTag;
    },
    async stopFetching() {
      if (channel && consumerTag) await channel.cancel(consumerTag).catch(() => undefined);
    },
    async close() {
      closing = true;
      const current = model;
      model = channel = consumerTag = undefined;
      // Closing gives every unacknowledged message back to the queue. A connection the broker is
      // closing never answers close(): its close event ends the wait instead.
      if (current) await Promise.race([current.close().catch(() => undefined), modelClosed]);
    },
  };
}

/** Routing keys (direct, topic), one binding (fanout), or the `table` header (headers). */
function bindings(kind: string, context: AdapterContext): { pattern: string; args?: Record<string, string> }[] {
  switch (kind) {
    case 'fanout':
      return [{ pattern: '' }];
    case 'headers':
      return context.tables.map((table) => ({ pattern: '', args: { 'x-match': 'all', table } }));
    default:
      return context.subjects.map((pattern) => ({ pattern }));
  }
}
