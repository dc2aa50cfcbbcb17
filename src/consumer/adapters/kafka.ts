/**
 * Kafka (kafkajs): a consumer group `<name>` on the registered tables' topics. Each batch is
 * handed over whole; offsets are committed only up to the first message not yet settled, so a
 * restart redelivers nothing that was not handled (and dedup skips what was). Dead letter: the
 * message, its key and headers plus `error`, `source-topic`, `source-partition`, `source-offset`
 * are produced to `deadLetterTopic`.
 */
import kafkajs from 'kafkajs';
import type { Consumer, EachBatchPayload, IHeaders, KafkaMessage, Producer } from 'kafkajs';
import { BrokerConnectionError, describe } from '../errors.js';
import type { KafkaConsumerOptions } from '../types.js';
import type { AdapterContext, BrokerAdapter, Delivery, DeliverySink } from './adapter.js';

const { Kafka, logLevel } = kafkajs;

export function kafkaAdapter(options: KafkaConsumerOptions, context: AdapterContext): BrokerAdapter {
  const brokers = typeof options.brokers === 'string' ? options.brokers.split(',').map((b) => b.trim()) : [...options.brokers];
  const topics = context.subjects.map((topic) => ({ topic }));
  let consumer: Consumer | undefined;
  let producer: Producer | undefined;

  const toDelivery = (topic: string, partition: number, message: KafkaMessage, settle: (done: boolean) => void): Delivery => ({
    body: message.value?.toString('utf8') ?? '',
    key: message.key?.toString('utf8'),
    ack: () => settle(true),
    release: () => settle(false),
    deadLetter: options.deadLetterTopic
      ? async (reason) => {
          const headers: IHeaders = { ...message.headers, error: reason.message.slice(0, 1000), 'source-topic': topic, 'source-partition': String(partition), 'source-offset': message.offset };
          await producer!.send({ topic: options.deadLetterTopic!, acks: -1, messages: [{ key: message.key, value: message.value, headers }] });
          settle(true);
        }
      : undefined,
  });

  const eachBatch = (sink: DeliverySink) => async ({ batch, resolveOffset, heartbeat, commitOffsetsIfNecessary, isRunning, isStale }: EachBatchPayload): Promise<void> => {
    const settled = batch.messages.map(
      (message) => new Promise<boolean>((resolve) => sink.deliver(toDelivery(batch.topic, batch.partition, message, resolve))),
    );
    for (let i = 0; i < settled.length; i++) {
      if (!(await settled[i]) || !isRunning() || isStale()) break;
      resolveOffset(batch.messages[i]!.offset);
      await heartbeat();
    }
    await commitOffsetsIfNecessary();
  };

  return {
    async start(sink) {
      const kafka = new Kafka({ clientId: `wal-listener-consumer-${options.name}`, logLevel: logLevel.NOTHING, ...options.kafka, brokers });
      consumer = kafka.consumer({ maxWaitTimeInMs: 200, ...options.consumer, groupId: options.name });
      const current = consumer;
      try {
        await current.connect();
        if (options.deadLetterTopic) {
          producer = kafka.producer();
          await producer.connect();
        }
        await current.subscribe({ topics: topics.map((t) => t.topic), fromBeginning: options.fromBeginning ?? true });
      } catch (err) {
        throw new BrokerConnectionError('WAL_CONSUMER_CONNECT', `cannot consume from Kafka at ${brokers.join(',')}: ${describe(err)}`, { cause: err });
      }
      current.on(current.events.CRASH, ({ payload }) => {
        // kafkajs restarts the consumer itself after retriable errors.
        if (!payload.restart) sink.lost(payload.error);
      });
      await current.run({ eachBatchAutoResolve: false, partitionsConsumedConcurrently: options.partitionsConsumedConcurrently ?? 4, eachBatch: eachBatch(sink) });
    },
    async stopFetching() {
      consumer?.pause(topics);
    },
    async close() {
      const [c, p] = [consumer, producer];
      consumer = producer = undefined;
      await Promise.all([c?.disconnect().catch(() => undefined), p?.disconnect().catch(() => undefined)]);
    },
  };
}
