/**
 * The one interface every broker implements (DESIGN.md "The pipeline"). A publisher connects,
 * turns a batch into broker requests, maps the broker's reply to success or a typed error, reports
 * its connection state, and closes. Deadlines, retries, backoff, ordering across failures,
 * reconnecting after a loss, the in-flight window, delivery metrics and position confirmation live
 * once, in src/pipeline/dispatcher.ts (STYLE.md): publisher files hold no timers, no retry loops
 * and no ordering queues.
 */
import { EventEmitter } from 'node:events';
import type { PublisherType } from '../config/schema.js';
import type { Finding } from '../findings.js';
import type { OutboundMessage } from '../pipeline/message.js';

export type { OutboundMessage } from '../pipeline/message.js';

/** Connection events: `lost` when the broker connection went away, `restored` when it is back. */
export interface PublisherEvents {
  lost: [reason: Error];
  restored: [];
}

export interface Publisher {
  /** Config name of the broker, for logs and metrics. */
  readonly kind: PublisherType;
  /**
   * True when batches are written strictly in the order publish() was called, each settles only
   * once it is written, and a failed write fails every later one for good (a fatal error, nothing
   * re-sent): stdout. The dispatcher then keeps no per-key bookkeeping (changes of a key cannot
   * overtake each other). Brokers that can acknowledge a later batch while an earlier one times out
   * or is refused leave it unset.
   */
  readonly inOrder?: boolean;
  /**
   * True when, once publish() has resolved, none of that batch's payload bytes will be read again,
   * by the publisher or by anything it handed them to, nor any payload bytes it was given before,
   * except under a hold on the message's lease (`message.lease.hold()`, released when the reader
   * is done; a hold never released keeps the bytes for good): stdout writes payloads to one stream
   * in order and resolves after the stream took them; NATS and RabbitMQ copy them or hold them
   * until their socket wrote them. The dispatcher then releases each acknowledged change event's
   * payload, and its memory is written over by later events (json-out.ts). Leave it unset when a
   * client library keeps payloads it was given (batching, its own retries, a buffer kept across
   * reconnects).
   */
  readonly releasesPayloads?: boolean;
  /** Connection state changes (see PublisherEvents). */
  readonly events: EventEmitter<PublisherEvents>;
  /**
   * Connects (or reconnects after a loss) and declares what the broker needs (stream, exchange,
   * topics). Resolves at once while connected. Throws PublishError(retryable) when the broker is
   * unreachable (the pipeline retries with backoff), or a fatal WalListenerError
   * ('WAL_PUBLISH_CONFIG') when the setup is wrong and retrying cannot help.
   */
  connect(): Promise<void>;
  /**
   * Sends a batch, in order. Resolves once the broker has acknowledged every message of it.
   * Rejects with PublishError: retryable (connection lost, refused for now) or not (the broker
   * will never accept a message: set `rejected` to the index of that message in the batch and name
   * its table, LSN and the broker's reason). When `signal` aborts (the pipeline's deadline passed
   * or the connection was lost), settle promptly: reject with `signal.reason` and forget the
   * batch's pending state. Several batches may be in flight; never retry by itself.
   */
  publish(batch: readonly OutboundMessage[], signal: AbortSignal): Promise<void>;
  /**
   * Largest payload in bytes the broker will take for this message (what it announced: NATS
   * max_payload and the stream's max_msg_size, Kafka's max.message.bytes, Pub/Sub's 10 MB), or
   * Infinity when unknown. Checked before a message is sent, so an oversized one is found in
   * order, before anything after it goes out.
   */
  maxPayloadBytes(message: OutboundMessage): number;
  /**
   * Optional, for `wal-listener check`: connects on its own, reports whether the broker is reachable
   * and what exists of the stream/exchange/topic, without declaring or creating anything, and closes.
   */
  describe?(): Promise<Finding[]>;
  /** True while connected and able to publish, as far as the client knows. */
  healthy(): boolean;
  /** Closes connections; pending publishes reject. Safe to call twice. */
  close(): Promise<void>;
}
