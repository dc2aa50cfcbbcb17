/**
 * The one interface every broker implements. A publisher only turns messages into broker requests
 * and maps the broker's reply to success or a PublishError. Retries, backoff, ordering, the
 * in-flight window, delivery metrics and LSN confirmation live once, in src/pipeline/ (STYLE.md).
 */

/** One row change, ready for a broker. Built once per change by the pipeline. */
export interface OutboundMessage {
  /** Event id (UUID), stable across redeliveries: the broker's dedup id. */
  readonly id: string;
  /** NATS subject, Kafka/Pub/Sub topic, RabbitMQ routing key: `<topic>.<prefix><schema>_<table>` or the topicsMap value. */
  readonly subject: string;
  /** Partition / ordering key: the row key as JSON (`{"id":42}`), or `"<schema>.<table>"` for a keyless table. Empty when the publisher did not ask for keys. */
  readonly key: string;
  /** The event as JSON text (DESIGN.md "The event"). */
  readonly payload: string;
  /** Commit LSN of the transaction, "0/1A2B3C4". */
  readonly lsn: string;
  readonly schema: string;
  readonly table: string;
  /** INSERT | UPDATE | DELETE | TRUNCATE */
  readonly action: string;
}

export interface Publisher {
  /** Config name of the broker, for logs and metrics: nats, kafka, rabbitmq, google_pubsub, stdout. */
  readonly kind: string;
  /** Whether messages need `key` (Kafka partitions, Pub/Sub ordering keys). Keys cost time when unused. */
  readonly needsKey: boolean;
  /**
   * Connects and declares what the broker needs (stream, exchange, topics).
   * Throws PublishError(retryable) when the broker is unreachable (the caller retries with backoff),
   * or a WalListenerError('WAL_PUBLISH_CONFIG') when the setup is wrong and retrying cannot help.
   */
  connect(): Promise<void>;
  /**
   * Sends a batch, in order. Resolves once the broker has acknowledged every message of it.
   * Rejects with PublishError: retryable (connection lost, timeout) or not (the broker will never
   * accept a message; name the message's table, LSN and the broker's reason). May be called again
   * before earlier batches settle (the pipeline keeps several in flight); must not retry by itself.
   */
  publish(batch: readonly OutboundMessage[]): Promise<void>;
  /** True while connected and able to publish (for /ready). */
  healthy(): boolean;
  /** Flushes nothing further; closes connections. Safe to call twice. */
  close(): Promise<void>;
}
