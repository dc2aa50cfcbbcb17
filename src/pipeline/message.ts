/**
 * A message ready for a broker: built once per change (or routed message) by the pipeline,
 * handed to the publisher in batches. Publishers only read it.
 */
import type { PayloadLease } from './json-out.js';

export interface OutboundMessage {
  /** Event id (UUID), stable across redeliveries: the broker's dedup id. */
  readonly id: string;
  /** NATS subject, Kafka/Pub/Sub topic, RabbitMQ routing key. */
  readonly subject: string;
  /**
   * The ordering unit: the row key as JSON (`{"id":42}`), `"<schema>.<table>"` for a table without
   * a key, or a routed message's key. Kafka's message key and Pub/Sub's ordering key.
   */
  readonly key: string;
  /** The event as JSON text, or a routed message's bytes. */
  readonly payload: string | Buffer;
  /** The event's `lsn` field: the transaction's source position as text. */
  readonly lsn: string;
  readonly schema: string;
  readonly table: string;
  /** INSERT | UPDATE | DELETE | TRUNCATE | SNAPSHOT | MESSAGE */
  readonly action: string;
  /** Commit time of its transaction, ms since the epoch, when known: delivery latency. */
  readonly committedAt?: number;
  /** Send `key` as a `key` header too, on brokers without a key field (routed outbox messages). */
  readonly keyHeader?: boolean;
  /** A routed message whose value was NULL: Kafka gets a null value (a tombstone). */
  readonly tombstone?: boolean;
  /** Headers of a routed message (outbox headers, queue event headers); null for change events. */
  readonly headers: Readonly<Record<string, string>> | null;
  /** Broker message properties of a routed message (AMQP contentType, type, ...); null otherwise. */
  readonly properties: Readonly<Record<string, unknown>> | null;
  /** RabbitMQ exchange of a routed message, when not `publisher.topic`; null otherwise. */
  readonly exchange: string | null;
  /**
   * A change event's chunk account (json-out.ts): the dispatcher releases it, and sets this to
   * null, once the message is acknowledged by a publisher that allows it (Publisher.releasesPayloads).
   */
  lease?: PayloadLease | null;
}

/** Payload bytes the dispatcher lets out unacknowledged, by default (DispatcherOptions.maxInFlightBytes). */
export const DEFAULT_MAX_IN_FLIGHT_BYTES = 8 * 1024 * 1024;

/** Bytes of a payload (the size brokers limit). */
export function payloadBytes(message: OutboundMessage): number {
  const payload = message.payload;
  return typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
}

/** The payload as bytes for a broker client. */
export function payloadBuffer(message: OutboundMessage): Buffer {
  const payload = message.payload;
  return typeof payload === 'string' ? Buffer.from(payload) : payload;
}

/** "table public.users, LSN 0/1A2B3C4" for error messages. */
export function describeMessage(message: OutboundMessage | undefined): string {
  return message ? `table ${message.schema}.${message.table}, LSN ${message.lsn}` : 'no message';
}
