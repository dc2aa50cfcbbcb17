/**
 * Google Pub/Sub: one subscription `<name>-<topic>` per registered table's topic, with message
 * ordering enabled (created when missing, together with its topic). Messages carry the row key as
 * ordering key. Dead letter: the message is published to `deadLetterTopic` (attributes `error` and
 * `subscription` added) and acknowledged; new subscriptions also get that topic as dead-letter
 * policy, which catches the messages of a consumer that keeps crashing.
 */
import { PubSub, type ClientConfig, type Message, type Subscription, type Topic } from '@google-cloud/pubsub';
import { BrokerConnectionError, BrokerSetupError, ConsumerConfigError, describe } from '../errors.js';
import type { PubSubConsumerOptions } from '../types.js';
import type { AdapterContext, BrokerAdapter, Delivery, DeliverySink } from './adapter.js';

const SUBSCRIPTION_NAME = /^[A-Za-z][-A-Za-z0-9_.~+%]{2,254}$/;
const ALREADY_EXISTS = 6;

export function pubSubAdapter(options: PubSubConsumerOptions, context: AdapterContext): BrokerAdapter {
  const names = context.subjects.map((topic) => ({ topic, subscription: `${options.name}-${topic}` }));
  for (const { subscription } of names) {
    if (!SUBSCRIPTION_NAME.test(subscription)) throw new ConsumerConfigError(`option name: Pub/Sub subscription name ${JSON.stringify(subscription)} is not valid (letters, digits, - _ . ~ + %; 3–255 characters, starting with a letter)`);
  }
  const maxDeliveryAttempts = options.maxDeliveryAttempts ?? 10;
  if (!Number.isInteger(maxDeliveryAttempts) || maxDeliveryAttempts < 5 || maxDeliveryAttempts > 100) throw new ConsumerConfigError('option maxDeliveryAttempts: expected an integer from 5 to 100');
  let pubsub: PubSub | undefined;
  let subscriptions: Subscription[] = [];
  let closing = false;

  const toDelivery = (message: Message, subscription: string, deadLetter: Topic | undefined): Delivery => ({
    body: message.data.toString('utf8'),
    key: message.orderingKey || undefined,
    ack: () => message.ack(),
    release: () => message.nack(),
    deadLetter: deadLetter
      ? async (reason) => {
          await deadLetter.publishMessage({ data: message.data, attributes: { ...message.attributes, error: reason.message.slice(0, 1000), subscription } });
          message.ack();
        }
      : undefined,
  });

  const ensureTopic = async (client: PubSub, name: string): Promise<Topic> => {
    const topic = client.topic(name);
    await topic.create().catch((err: { code?: number }) => {
      if (err.code !== ALREADY_EXISTS) throw err;
    });
    return topic;
  };

  const subscribe = async (client: PubSub, topicName: string, name: string, deadLetter: Topic | undefined): Promise<Subscription> => {
    const topic = await ensureTopic(client, topicName);
    const subscription = topic.subscription(name, { flowControl: { maxMessages: context.prefetch, allowExcessMessages: false } });
    const [exists] = await subscription.exists();
    if (!exists) {
      await topic
        .createSubscription(name, {
          enableMessageOrdering: true,
          ackDeadlineSeconds: 60,
          ...(deadLetter ? { deadLetterPolicy: { deadLetterTopic: deadLetter.name, maxDeliveryAttempts } } : {}),
        })
        .catch((err: { code?: number }) => {
          if (err.code !== ALREADY_EXISTS) throw err;
        });
    } else {
      const [metadata] = await subscription.getMetadata();
      if (!metadata.enableMessageOrdering) {
        throw new BrokerSetupError(`Pub/Sub subscription ${name} exists without message ordering, so a row's changes could arrive out of order: delete it, or choose another consumer name`);
      }
    }
    return subscription;
  };

  return {
    async start(sink: DeliverySink) {
      closing = false;
      const client = new PubSub({ ...(options.client as ClientConfig | undefined), projectId: options.projectId });
      pubsub = client;
      try {
        const deadLetter = options.deadLetterTopic ? await ensureTopic(client, options.deadLetterTopic) : undefined;
        subscriptions = [];
        for (const { topic, subscription: name } of names) {
          const subscription = await subscribe(client, topic, name, deadLetter);
          subscriptions.push(subscription);
          subscription.on('message', (message: Message) => sink.deliver(toDelivery(message, name, deadLetter)));
          // The client retries transient stream errors itself; what reaches here is not transient.
          subscription.on('error', (err: Error) => {
            if (!closing) sink.lost(err);
          });
        }
      } catch (err) {
        if (err instanceof BrokerSetupError) throw err;
        throw new BrokerConnectionError('WAL_CONSUMER_CONNECT', `cannot set up Pub/Sub subscriptions in project ${options.projectId}: ${describe(err)}`, { cause: err });
      }
    },
    async stopFetching() {
      // Removing the message listener would close the stream before running handlers are acknowledged;
      // messages that still arrive are released by the stopping dispatcher.
    },
    async close() {
      closing = true;
      const [client, subs] = [pubsub, subscriptions];
      pubsub = undefined;
      subscriptions = [];
      // close() sends the acknowledgements still queued.
      await Promise.all(subs.map((s) => s.close().catch(() => undefined)));
      await client?.close().catch(() => undefined);
    },
  };
}
