/**
 * The one interface every broker implements for the consumer. An adapter only connects, sets up
 * its broker objects, turns broker messages into Deliveries and settles them as asked. Decoding,
 * dispatch, ordering, retries, dedup and reconnecting live once, in the shared part (STYLE.md).
 */

/** One message as received, with the ways to settle it. Exactly one of ack/deadLetter/release is called. */
export interface Delivery {
  /** The event's JSON text. */
  readonly body: string;
  /** The broker's ordering key, where messages carry one (Kafka key, Pub/Sub ordering key). */
  readonly key?: string | undefined;
  /** Done: the broker may forget the message. */
  ack(): void;
  /** Gives the message back unhandled (on stop); the broker delivers it again later. */
  release(): void;
  /** Keeps the broker from redelivering while a handler is being retried (NATS "working"). */
  extend?(): void;
  /**
   * Hands the message to the broker's dead-letter mechanism, which settles it. Present only when
   * one is configured; without it a change whose handler fails every try stops the consumer.
   */
  deadLetter?(reason: Error): Promise<void>;
}

export interface DeliverySink {
  /** Called for each message, in the order the broker delivers them. */
  deliver(delivery: Delivery): void;
  /** The connection or subscription is gone for good; the consumer closes the adapter and starts it again. */
  lost(error: Error): void;
}

export interface BrokerAdapter {
  /**
   * Connects, creates or checks the broker objects and starts delivering to `sink`. Rejects with a
   * BrokerConnectionError (unreachable, refused) or BrokerSetupError (missing or incompatible objects).
   */
  start(sink: DeliverySink): Promise<void>;
  /** Stops fetching; messages already delivered can still be settled. */
  stopFetching(): Promise<void>;
  /** Disconnects. Safe to call twice, and after a failed start. */
  close(): Promise<void>;
}

/** What every adapter is given besides its own options. */
export interface AdapterContext {
  /** Subjects (NATS subjects, Kafka and Pub/Sub topics, RabbitMQ routing keys) of the registered tables. */
  readonly subjects: readonly string[];
  /** `"schema.table"` of the registered tables (RabbitMQ headers exchanges bind by the `table` header). */
  readonly tables: readonly string[];
  readonly prefetch: number;
}
