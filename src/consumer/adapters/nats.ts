/**
 * NATS JetStream: a durable pull consumer on the daemon's stream `<topic>` (subjects `<topic>.>`),
 * explicit acks. Dead letter: `term` (JetStream then emits the MSG_TERMINATED advisory), after
 * publishing a copy to `deadLetter.subject` when one is given.
 */
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, JetStreamApiError, type ConsumerConfig, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import { connect, headers, nanos, type NatsConnection } from '@nats-io/transport-node';
import { BrokerConnectionError, BrokerSetupError, describe } from '../errors.js';
import type { NatsConsumerOptions } from '../types.js';
import type { AdapterContext, BrokerAdapter, Delivery, DeliverySink } from './adapter.js';

const STREAM_NOT_FOUND = 10059;
const CONSUMER_NOT_FOUND = 10014;
/** How long a released message waits before JetStream redelivers it (see `release`). */
const RELEASE_DELAY_MS = 1_000;

export function natsAdapter(options: NatsConsumerOptions, context: AdapterContext): BrokerAdapter {
  const stream = options.topic;
  const durable = options.name;
  let nc: NatsConnection | undefined;
  let messages: ConsumerMessages | undefined;
  let closing = false;

  const deadLetterSubject = options.deadLetter?.subject;
  const toDelivery = (m: JsMsg): Delivery => ({
    body: m.string(),
    ack: () => m.ack(),
    // A release happens on the way to stopping. Redelivered at once, the message would go back to
    // this consumer's own pull request, still open while it drains, and once its connection is gone
    // it would wait out ack_wait; a short delay lets the next consumer have it instead.
    release: () => m.nak(RELEASE_DELAY_MS),
    extend: () => m.working(),
    deadLetter: options.deadLetter
      ? async (reason) => {
          if (deadLetterSubject) {
            const h = headers();
            for (const [k, v] of m.headers ?? []) for (const value of v) h.append(k, value);
            h.set('Wal-Listener-Error', reason.message.slice(0, 1000));
            h.set('Wal-Listener-Subject', m.subject);
            // The copied Nats-Msg-Id lets a dead-letter stream drop a second copy of the same change.
            await jetstream(nc!).publish(deadLetterSubject, m.data, { headers: h });
          }
          m.term(reason.message.slice(0, 200));
        }
      : undefined,
  });

  return {
    async start(sink: DeliverySink) {
      closing = false;
      try {
        nc = await connect({ ...options.connection, servers: typeof options.servers === 'string' ? options.servers.split(',') : [...options.servers] });
      } catch (err) {
        throw new BrokerConnectionError('WAL_CONSUMER_CONNECT', `cannot connect to NATS at ${String(options.servers)}: ${describe(err)}`, { cause: err });
      }
      const connection = nc;
      const jsm = await jetstreamManager(connection);
      try {
        await jsm.streams.info(stream);
      } catch (err) {
        if (err instanceof JetStreamApiError && err.code === STREAM_NOT_FOUND) {
          throw new BrokerSetupError(`JetStream stream ${stream} does not exist: the daemon creates it when it starts (publisher.topic ${stream})`, { cause: err });
        }
        throw new BrokerConnectionError('WAL_CONSUMER_CONNECT', `cannot read JetStream stream ${stream}: ${describe(err)}`, { cause: err });
      }
      const settings: Partial<ConsumerConfig> = {
        ack_wait: nanos(options.ackWaitMs ?? 30_000),
        max_ack_pending: context.prefetch * 2,
        ...filterOf(context.subjects, connection.info?.version ?? '0'),
      };
      try {
        await jsm.consumers.info(stream, durable);
        await jsm.consumers.update(stream, durable, settings);
      } catch (err) {
        if (!(err instanceof JetStreamApiError && err.code === CONSUMER_NOT_FOUND)) throw new BrokerSetupError(`cannot set up durable consumer ${durable} on stream ${stream}: ${describe(err)}`, { cause: err });
        await jsm.consumers.add(stream, { ...settings, durable_name: durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All });
      }
      const consumer = await jetstream(connection).consumers.get(stream, durable);
      messages = await consumer.consume({ max_messages: context.prefetch, callback: (m) => sink.deliver(toDelivery(m)) });
      void connection.closed().then((err) => {
        if (!closing) sink.lost(err instanceof Error ? err : new Error('NATS connection closed'));
      });
    },
    async stopFetching() {
      await messages?.close();
    },
    async close() {
      closing = true;
      const connection = nc;
      nc = undefined;
      messages = undefined;
      // drain() flushes the acks of handlers that finished during shutdown.
      await connection?.drain().catch(() => connection.close());
    },
  };
}

/**
 * Only the registered tables' subjects when the server can filter on several (2.10+) or there is
 * one; otherwise everything, and the dispatcher skips tables without a handler.
 */
function filterOf(subjects: readonly string[], version: string): Partial<ConsumerConfig> {
  if (subjects.length === 1) return { filter_subject: subjects[0] };
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > 2 || (major === 2 && minor >= 10) ? { filter_subjects: [...subjects] } : {};
}
