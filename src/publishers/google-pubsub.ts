/**
 * Google Cloud Pub/Sub: one topic per subject, attributes id/lsn/table/action, ordering key = the
 * row key (publisher-side message ordering on). The emulator is used when PUBSUB_EMULATOR_HOST is
 * set: the client library reads that variable itself. Only broker-specific code lives here
 * (DESIGN.md "The pipeline"): deadlines, retries, ordering across failures and reconnecting are the
 * dispatcher's.
 *
 * Order. Per ordering key the client library keeps one request in flight and queues the rest in
 * the order publishMessage() was called; the dispatcher never has two batches with a common key in
 * flight. So a publish hands its messages to the library synchronously and waits for their acks,
 * and nothing else is needed, with one exception: a failed request pauses its ordering key in the
 * library (its queued messages are refused until resumed). The keys that failed are resumed just
 * before the next publish, which after a failure is the dispatcher's in-order re-send. The only
 * wait before handing messages over is the check (and with createTopics the creation) of a topic
 * not seen before: one check per topic, shared by the publishes that need it, since the topic
 * must exist before anything is published to it. A publish that waits for it holds only its own
 * messages; batches of other keys, whose topics are known, go ahead (their order is not related).
 *
 * Connection state comes from the gRPC channel of the library's publisher client
 * (`Channel.watchConnectivityState`): TRANSIENT_FAILURE (a connection attempt failed) reports
 * `lost`; READY again after any other state (a new connection: after a loss, or after the server
 * closed the old one) reports `restored`, which counts as a reconnect. A READY channel whose
 * connection closed goes IDLE (gRPC reconnects only when asked); the watcher then asks it to
 * connect once, so a server that went away shows as TRANSIENT_FAILURE at once. `restored` does
 * not depend on TRANSIENT_FAILURE having been seen: a server back before the first failed attempt
 * still counts.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { PubSub, type ClientConfig, type PublishOptions, type Topic } from '@google-cloud/pubsub';
import type { PublisherConfig } from '../config/schema.js';
import { describeError, PublishError, WalListenerError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { describeMessage, payloadBuffer, payloadBytes } from '../pipeline/message.js';
import type { OutboundMessage, Publisher, PublisherEvents } from './publisher.js';

/** gRPC status codes this file looks at (numbers as on the wire; names for messages). */
const Status = { INVALID_ARGUMENT: 3, NOT_FOUND: 5, ALREADY_EXISTS: 6, PERMISSION_DENIED: 7, FAILED_PRECONDITION: 9, OUT_OF_RANGE: 11, UNIMPLEMENTED: 12 } as const;
const STATUS_NAMES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];
/**
 * Codes that mean "this message will never be accepted". Everything else (UNAVAILABLE,
 * DEADLINE_EXCEEDED, INTERNAL, ABORTED, RESOURCE_EXHAUSTED, CANCELLED, UNKNOWN, UNAUTHENTICATED
 * while a token refreshes, errors without a code) is retried by the dispatcher.
 */
const NEVER_ACCEPTED: ReadonlySet<number> = new Set([Status.INVALID_ARGUMENT, Status.FAILED_PRECONDITION, Status.OUT_OF_RANGE, Status.UNIMPLEMENTED]);

/** gRPC connectivity states (grpc-js ConnectivityState). */
const ChannelState = { IDLE: 0, CONNECTING: 1, READY: 2, TRANSIENT_FAILURE: 3, SHUTDOWN: 4 } as const;
const CHANNEL_STATE_NAMES = ['IDLE', 'CONNECTING', 'READY', 'TRANSIENT_FAILURE', 'SHUTDOWN'];

/** The part of a grpc-js Channel used here. */
interface GrpcChannel {
  getConnectivityState(tryToConnect: boolean): number;
  watchConnectivityState(currentState: number, deadline: Date | number, callback: (error?: Error) => void): void;
}

/** Pub/Sub's limit on one message (data + attributes + ordering key); the server answers INVALID_ARGUMENT above it. */
const MAX_MESSAGE_BYTES = 10 * 1024 * 1024;
/** Bytes a message's attributes and ordering key may take besides the fixed names, generously. */
const ATTRIBUTE_OVERHEAD = 256;

/** Pub/Sub's limit on an ordering key. */
const MAX_ORDERING_KEY_BYTES = 1024;

/**
 * The row key, or its SHA-256 when it exceeds Pub/Sub's 1 KB limit (a long text primary key):
 * the same row still gets the same ordering key, and the change is not refused for it.
 */
function orderingKeyOf(key: string): string {
  // A UTF-16 unit is at most 3 UTF-8 bytes: short strings need no byte count.
  if (key.length <= MAX_ORDERING_KEY_BYTES / 3 || Buffer.byteLength(key) <= MAX_ORDERING_KEY_BYTES) return key;
  return `sha256:${createHash('sha256').update(key).digest('hex')}`;
}

interface GrpcError {
  code?: unknown;
  details?: unknown;
}

function grpcCode(err: unknown): number | undefined {
  const code = (err as GrpcError | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

function reason(err: unknown): string {
  const code = grpcCode(err);
  const name = code === undefined ? undefined : STATUS_NAMES[code];
  const text = describeError(err);
  return name && !text.includes(name) ? `${name}: ${text}` : text;
}

export class PubSubPublisher implements Publisher {
  readonly kind = 'google_pubsub';
  readonly events = new EventEmitter<PublisherEvents>();

  private pubsub: PubSub | undefined;
  private channel: GrpcChannel | undefined;
  private readonly publishOptions: PublishOptions;
  /** Topics checked (or created) and ready, by subject. The hot path only looks here. */
  private readonly topics = new Map<string, Topic>();
  /** Subjects whose topic was found (or created) once. */
  private readonly seen = new Set<string>();
  /** Topic checks under way, so concurrent publishes check a topic once. */
  private readonly checks = new Map<string, Promise<Topic>>();
  /** Ordering keys whose request failed, to resume before the next publish (see the header). */
  private readonly paused: [Topic, string][] = [];
  /** The channel's last state seen by the watcher. */
  private state: number = ChannelState.IDLE;
  private lost = false;
  /** The channel was READY once: a later READY is a new connection. */
  private connected = false;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly config: PublisherConfig,
    private readonly log: Logger,
  ) {
    this.publishOptions = {
      messageOrdering: true,
      // A request carries one ordering key (an API rule), up to 1000 messages (the API's maximum).
      // A key's first message waits at most 5 ms for company; while a key's request is in flight
      // its next messages gather into the following request anyway.
      batching: { maxMessages: 1000, maxMilliseconds: 5, maxBytes: 9 * 1024 * 1024 },
      // No retries inside the library: the dispatcher retries in order with backoff. The deadline
      // bounds every request, including one waiting for an unreachable server.
      gaxOpts: { timeout: config.ackTimeout, retry: null },
    };
  }

  /**
   * Creates the client (once), then asks its gRPC channel to connect and waits for the outcome:
   * READY resolves, a failed attempt rejects (retryable), as the dispatcher's reconnect expects.
   */
  async connect(): Promise<void> {
    if (this.closing) throw new PublishError('Pub/Sub publisher is closed', true);
    const channel = this.channel ?? (await this.open());
    if (this.closing) throw new PublishError('Pub/Sub publisher is closed', true);
    let state = channel.getConnectivityState(true);
    if (state !== ChannelState.READY) {
      // One attempt: wait for the channel to leave IDLE/CONNECTING (gRPC bounds a connection attempt).
      const deadline = Date.now() + this.config.ackTimeout;
      while (state === ChannelState.IDLE || state === ChannelState.CONNECTING) {
        const error = await new Promise<Error | undefined>((resolve) => channel.watchConnectivityState(state, deadline, resolve));
        if (error) break;
        state = channel.getConnectivityState(false);
      }
    }
    if (state !== ChannelState.READY) {
      throw new PublishError(`cannot connect to Pub/Sub (${this.pubsub?.isEmulator ? `emulator at ${this.emulatorHost()}` : 'pubsub.googleapis.com'}): channel ${CHANNEL_STATE_NAMES[state]}`, true);
    }
    if (this.lost) {
      // READY, and the watcher did not see it (it reports every change it is registered for; this
      // keeps the publisher from staying unhealthy on a READY channel if one ever slips by).
      this.lost = false;
      this.events.emit('restored');
    }
    this.connected = true;
  }

  private emulatorHost(): string {
    const options = this.pubsub?.options as { servicePath?: string; port?: number | string } | undefined;
    return `${options?.servicePath ?? ''}:${options?.port ?? ''}`;
  }

  private async open(): Promise<GrpcChannel> {
    // The config schema refuses this already (exit 2); checked again for other callers.
    if (!this.config.pubSubProjectId) throw new WalListenerError('WAL_PUBLISH_CONFIG', 'publisher.pubSubProjectId is required when publisher.type is google_pubsub');
    if (this.config.address || this.config.enableTLS) {
      this.log.warn('publisher.address and publisher.enableTLS are ignored by google_pubsub (set PUBSUB_EMULATOR_HOST for the emulator)');
    }
    // gRPC's reconnect backoff grows to 120 s by default; after an outage we want to be back within
    // seconds of the service. The library passes `grpc.*` keys to the channel, though its
    // ClientConfig type does not list them.
    const options = { 'grpc.initial_reconnect_backoff_ms': 250, 'grpc.max_reconnect_backoff_ms': 500, projectId: this.config.pubSubProjectId } as ClientConfig;
    let pubsub = new PubSub(options);
    if (pubsub.isEmulator) {
      // The emulator needs no credentials, but gax still asks google-auth for the "universe
      // domain", which probes the GCE metadata server (a delay and a process warning outside
      // GCP). Naming the default universe skips the probe. (Constructing a PubSub opens nothing,
      // so the first instance needs no closing.)
      pubsub = new PubSub({ ...options, emulatorMode: true, clientOptions: { universeDomain: 'googleapis.com' } });
    }
    try {
      if (!pubsub.isEmulator) {
        // Load the credentials now so a missing service account shows at startup, not on the first change.
        await pubsub.auth.getClient();
      }
      const client = await pubsub.getClientAsync_({ client: 'PublisherClient' });
      // gax's initialize() returns the gRPC service client it publishes through; its channel is
      // the connection whose state the publisher follows.
      const grpcService = await (client as unknown as { initialize(): Promise<{ getChannel(): GrpcChannel }> }).initialize();
      this.pubsub = pubsub;
      this.channel = grpcService.getChannel();
    } catch (err) {
      await pubsub.close().catch(() => undefined);
      throw new PublishError(`Pub/Sub client could not be set up (credentials?): ${describeError(err)}`, true, { cause: err });
    }
    this.state = this.channel.getConnectivityState(false);
    this.watch(this.channel);
    this.log.info({ projectId: this.config.pubSubProjectId, emulator: pubsub.isEmulator }, 'Pub/Sub publisher ready');
    return this.channel;
  }

  /** Follows the channel's state for as long as the publisher is open (see the header). */
  private watch(channel: GrpcChannel): void {
    channel.watchConnectivityState(this.state, Infinity, () => {
      if (this.closing) return;
      const previous = this.state;
      const state = channel.getConnectivityState(false);
      this.state = state;
      if (state === ChannelState.SHUTDOWN) return;
      this.log.debug({ from: CHANNEL_STATE_NAMES[previous], to: CHANNEL_STATE_NAMES[state] }, 'Pub/Sub channel state');
      if (state === ChannelState.TRANSIENT_FAILURE && !this.lost) {
        this.lost = true;
        this.events.emit('lost', new Error('Pub/Sub gRPC channel in TRANSIENT_FAILURE (a connection attempt failed)'));
      } else if (state === ChannelState.READY && previous !== ChannelState.READY) {
        const reconnected = this.lost || this.connected;
        this.lost = false;
        this.connected = true;
        if (reconnected) this.events.emit('restored');
      } else if (state === ChannelState.IDLE && previous === ChannelState.READY) {
        channel.getConnectivityState(true);
      }
      this.watch(channel);
    });
  }

  maxPayloadBytes(message: OutboundMessage): number {
    return MAX_MESSAGE_BYTES - ATTRIBUTE_OVERHEAD - message.id.length - message.lsn.length - message.schema.length - message.table.length - message.action.length - Math.min(Buffer.byteLength(message.key), 80) - (message.headers === null ? 0 : JSON.stringify(message.headers).length);
  }

  publish(batch: readonly OutboundMessage[], signal: AbortSignal): Promise<void> {
    if (this.closing) return Promise.reject(new PublishError('Pub/Sub publisher is closed', true));
    const pubsub = this.pubsub;
    if (!pubsub) return Promise.reject(new PublishError('Pub/Sub publisher is not connected', true));
    if (signal.aborted) return Promise.reject(signal.reason);
    if (batch.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (err?: unknown): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        if (err === undefined) resolve();
        else reject(err);
      };
      const onAbort = (): void => settle(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      if (this.allTopicsReady(batch)) return this.send(batch, settle);
      const subjects = new Set<string>();
      for (const message of batch) if (!this.topics.has(message.subject)) subjects.add(message.subject);
      Promise.all([...subjects].map((subject) => this.topicFor(pubsub, subject))).then(
        () => {
          // Aborted while the topic was checked: nothing of it may go out any more.
          if (!settled) this.send(batch, settle);
        },
        (err: unknown) => settle(err),
      );
    });
  }

  private allTopicsReady(batch: readonly OutboundMessage[]): boolean {
    for (const message of batch) if (!this.topics.has(message.subject)) return false;
    return true;
  }

  healthy(): boolean {
    return this.pubsub !== undefined && this.closing === undefined && !this.lost;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      const pubsub = this.pubsub;
      if (!pubsub) return;
      await Promise.allSettled([...this.topics.values()].map((topic) => topic.flush()));
      await pubsub.close().catch((err: unknown) => this.log.warn({ err: describeError(err) }, 'closing the Pub/Sub client failed'));
    })();
    return this.closing;
  }

  /**
   * Hands every message to the client library synchronously (so it keeps their order per key) and
   * settles when all are acknowledged, or at the first failure without waiting for the rest: the
   * dispatcher then holds newer batches, so none of them can overtake the re-send.
   */
  private send(batch: readonly OutboundMessage[], settle: (err?: unknown) => void): void {
    // publish() is a contract of its own: an oversized message is refused before anything is sent.
    for (let i = 0; i < batch.length; i++) {
      const message = batch[i]!;
      const bytes = payloadBytes(message);
      if (bytes > this.maxPayloadBytes(message)) {
        return settle(new PublishError(`Pub/Sub takes at most ${MAX_MESSAGE_BYTES} bytes per message with its attributes; the message for ${describeMessage(message)} (topic ${message.subject}) has ${bytes} bytes of data`, false, { rejected: i }));
      }
    }
    this.resumePaused();
    let pending = batch.length;
    let failed = false;
    for (let i = 0; i < batch.length && !failed; i++) {
      const message = batch[i] as OutboundMessage;
      const topic = this.topics.get(message.subject);
      const orderingKey = message.key ? orderingKeyOf(message.key) : '';
      const done = (err?: Error | null): void => {
        if (err) {
          if (topic && orderingKey) this.paused.push([topic, orderingKey]);
          if (!failed) {
            failed = true;
            settle(this.toPublishError(message, batch.length === 1, err));
          }
        } else if (--pending === 0 && !failed) settle();
      };
      if (!topic) {
        done(new PublishError(`Pub/Sub topic ${message.subject} is not ready`, true));
        continue;
      }
      topic.publishMessage(
        {
          data: payloadBuffer(message),
          attributes: { ...message.headers, id: message.id, lsn: message.lsn, table: `${message.schema}.${message.table}`, action: message.action },
          ...(orderingKey ? { orderingKey } : {}),
        },
        done,
      );
    }
  }

  /**
   * After a failed request the library pauses that ordering key (rejecting its queued messages).
   * The next publish() is the dispatcher's in-order re-send (it holds newer batches meanwhile), so
   * resume the keys just before it sends. Resuming at the failure itself could come before the
   * library's own pause and leave the key paused. (5.3.1 drops a key's queue once it is empty, which
   * also ends the pause; resuming explicitly keeps this right if a version keeps the queue.)
   */
  private resumePaused(): void {
    if (this.paused.length === 0) return;
    for (const [topic, key] of this.paused.splice(0)) topic.resumePublishing(key);
  }

  private toPublishError(message: OutboundMessage, alone: boolean, err: unknown): WalListenerError {
    if (err instanceof WalListenerError) return err;
    const where = `${describeMessage(message)} (topic ${message.subject})`;
    const code = grpcCode(err);
    if (code === Status.NOT_FOUND) {
      // The topic existed when it was checked and is gone now (deleted, or an emulator restarted):
      // retried; the next attempt checks it again and, with createTopics, creates it.
      this.topics.delete(message.subject);
      return new PublishError(`Pub/Sub topic ${message.subject} was not found publishing ${where}; it is checked${this.config.createTopics ? ' and created' : ''} again: ${reason(err)}`, true, { cause: err });
    }
    if (code === Status.PERMISSION_DENIED) {
      return new WalListenerError('WAL_PUBLISH_CONFIG', `Pub/Sub refused to publish to topic ${message.subject} (${where}): ${reason(err)}; the credentials need roles/pubsub.publisher`, { cause: err });
    }
    if (code !== undefined && NEVER_ACCEPTED.has(code)) {
      // A request holds several messages of a key and fails whole: the refused one is known only
      // when the batch had one message (the dispatcher then re-sends one at a time to find it).
      return new PublishError(`Pub/Sub rejected the change to ${where}: ${reason(err)}`, false, { cause: err, ...(alone ? { rejected: 0 } : {}) });
    }
    return new PublishError(`Pub/Sub did not acknowledge ${where}: ${reason(err)}`, true, { cause: err });
  }

  /** The topic of a subject, checked once (and created when createTopics is on). */
  private topicFor(pubsub: PubSub, subject: string): Promise<Topic> {
    const ready = this.topics.get(subject);
    if (ready) return Promise.resolve(ready);
    let check = this.checks.get(subject);
    if (!check) {
      check = this.checkTopic(pubsub, subject).then(
        (topic) => {
          this.checks.delete(subject);
          this.topics.set(subject, topic);
          this.seen.add(subject);
          return topic;
        },
        (err: unknown) => {
          this.checks.delete(subject);
          throw err;
        },
      );
      this.checks.set(subject, check);
    }
    return check;
  }

  private async checkTopic(pubsub: PubSub, subject: string): Promise<Topic> {
    const topic = pubsub.topic(subject, this.publishOptions);
    const gaxOpts = { timeout: this.config.ackTimeout, retry: null };
    try {
      await topic.getMetadata(gaxOpts);
      return topic;
    } catch (err) {
      const code = grpcCode(err);
      if (code === Status.PERMISSION_DENIED) {
        // roles/pubsub.publisher may publish but not read topic metadata: publishing will tell.
        this.log.warn({ topic: subject, err: describeError(err) }, 'no permission to check the Pub/Sub topic; assuming it exists');
        return topic;
      }
      if (code === Status.INVALID_ARGUMENT) {
        throw new WalListenerError('WAL_PUBLISH_CONFIG', `Pub/Sub topic name ${JSON.stringify(subject)} is not valid: ${reason(err)}`, { cause: err });
      }
      if (code !== Status.NOT_FOUND) throw new PublishError(`checking Pub/Sub topic ${subject} failed: ${reason(err)}`, true, { cause: err });
    }
    if (!this.config.createTopics) {
      // Missing at first use: a setup error. Gone after it was used: someone deleted it, or the
      // emulator restarted; wait (retrying, nothing after it confirmed) until it exists again.
      if (this.seen.has(subject)) throw new PublishError(`Pub/Sub topic ${subject} no longer exists in project ${this.config.pubSubProjectId}; retrying until it is created again`, true);
      throw new WalListenerError('WAL_PUBLISH_CONFIG', `Pub/Sub topic ${subject} does not exist in project ${this.config.pubSubProjectId}; create it or set publisher.createTopics: true`);
    }
    try {
      await topic.create(gaxOpts);
      this.log.info({ topic: subject }, 'created Pub/Sub topic');
    } catch (err) {
      // Another instance (or a concurrent check) created it first: fine.
      const code = grpcCode(err);
      if (code !== Status.ALREADY_EXISTS) {
        if (code !== undefined && (NEVER_ACCEPTED.has(code) || code === Status.PERMISSION_DENIED)) {
          throw new WalListenerError('WAL_PUBLISH_CONFIG', `creating Pub/Sub topic ${subject} failed: ${reason(err)}`, { cause: err });
        }
        throw new PublishError(`creating Pub/Sub topic ${subject} failed: ${reason(err)}`, true, { cause: err });
      }
    }
    return topic;
  }
}
