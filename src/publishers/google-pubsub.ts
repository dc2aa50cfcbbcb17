/**
 * Google Cloud Pub/Sub: one topic per subject, attributes id/lsn/table/action, ordering key = the
 * row key (publisher-side message ordering on). The emulator is used when PUBSUB_EMULATOR_HOST is
 * set: the client library reads that variable itself.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { PubSub, type ClientConfig, type PublishOptions, type Topic } from '@google-cloud/pubsub';
import type { PublisherConfig } from '../config/schema.js';
import { describeError, PublishError, WalListenerError, type ErrorCode } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { payloadBuffer } from '../pipeline/message.js';
import { abortable } from './abortable.js';
import type { OutboundMessage, Publisher, PublisherEvents } from './publisher.js';

/** gRPC status codes this file looks at (numbers as on the wire; names for messages). */
const Status = { INVALID_ARGUMENT: 3, NOT_FOUND: 5, ALREADY_EXISTS: 6, PERMISSION_DENIED: 7, FAILED_PRECONDITION: 9, OUT_OF_RANGE: 11, UNIMPLEMENTED: 12 } as const;
const STATUS_NAMES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];
/**
 * Codes that mean "this message will never be accepted". Everything else (UNAVAILABLE,
 * DEADLINE_EXCEEDED, INTERNAL, ABORTED, RESOURCE_EXHAUSTED, CANCELLED, UNKNOWN, UNAUTHENTICATED
 * while a token refreshes, errors without a code) is retried by the pipeline.
 */
const NEVER_ACCEPTED: ReadonlySet<number> = new Set([Status.INVALID_ARGUMENT, Status.NOT_FOUND, Status.PERMISSION_DENIED, Status.FAILED_PRECONDITION, Status.OUT_OF_RANGE, Status.UNIMPLEMENTED]);

/** Pub/Sub's limit on one message (data + attributes); the server answers INVALID_ARGUMENT above it. */
const MAX_MESSAGE_BYTES = 10 * 1024 * 1024;

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

/** A non-retryable publish failure whose cause is the broker setup (missing topic), not the message. */
class PubSubSetupError extends PublishError {
  override readonly code: ErrorCode = 'WAL_PUBLISH_CONFIG';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, false, options);
  }
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
  private readonly publishOptions: PublishOptions;
  /** Topics checked (or created) and ready, by subject. The hot path only looks here. */
  private readonly topics = new Map<string, Topic>();
  /** Topic checks under way, so concurrent batches check a topic once. */
  private readonly checks = new Map<string, Promise<Topic>>();
  /**
   * Batches waiting for a topic check, chained so that messages reach the client library in the
   * order publish() was called (a later batch must not overtake an earlier one for the same key).
   */
  private waiting: Promise<unknown> | undefined;
  /** Ordering keys whose request failed, to resume before the next batch (see resumePaused). */
  private readonly paused: [Topic, string][] = [];
  private failing = false;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly config: PublisherConfig,
    private readonly log: Logger,
  ) {
    this.publishOptions = {
      // Per ordering key the library keeps one batch in flight and sends the rest in order.
      messageOrdering: true,
      // A request carries one ordering key (an API rule), up to 1000 messages (the API's maximum).
      // A key's first message waits at most 5 ms for company; while a key's request is in flight
      // its next messages gather into the following request anyway.
      batching: { maxMessages: 1000, maxMilliseconds: 5, maxBytes: 9 * 1024 * 1024 },
      // No retries inside the library: the pipeline retries in order with backoff. The deadline
      // bounds every request, including one waiting for an unreachable server.
      gaxOpts: { timeout: config.ackTimeout, retry: null },
    };
  }

  async connect(): Promise<void> {
    if (this.closing) throw new PublishError('Pub/Sub publisher is closed', true);
    if (this.pubsub) return;
    if (!this.config.pubSubProjectId) {
      throw new WalListenerError('WAL_PUBLISH_CONFIG', 'publisher.pubSubProjectId is required when publisher.type is google_pubsub');
    }
    if (this.config.address || this.config.enableTLS) {
      this.log.warn('publisher.address and publisher.enableTLS are ignored by google_pubsub (set PUBSUB_EMULATOR_HOST for the emulator)');
    }
    // gRPC's reconnect backoff grows to 120 s by default; after an outage we want to be back within
    // seconds of the service (the pipeline's own backoff paces the attempts). The library passes
    // `grpc.*` keys to the channel, though its ClientConfig type does not list them.
    const options = { 'grpc.max_reconnect_backoff_ms': 5000, projectId: this.config.pubSubProjectId } as ClientConfig;
    let pubsub = new PubSub(options);
    if (pubsub.isEmulator) {
      // The emulator needs no credentials, but gax still asks google-auth for the "universe
      // domain", which probes the GCE metadata server (a delay and a process warning outside
      // GCP). Naming the default universe skips the probe. (Constructing a PubSub opens nothing,
      // so the first instance needs no closing.)
      pubsub = new PubSub({ ...options, emulatorMode: true, clientOptions: { universeDomain: 'googleapis.com' } });
    }
    if (!pubsub.isEmulator) {
      // Load the credentials now so a missing service account shows at startup, not on the first change.
      try {
        await pubsub.auth.getClient();
      } catch (err) {
        await pubsub.close().catch(() => undefined);
        throw new PublishError(`Google credentials could not be loaded: ${describeError(err)}`, true, { cause: err });
      }
    }
    this.pubsub = pubsub;
    this.failing = false;
    this.log.info({ projectId: this.config.pubSubProjectId, emulator: pubsub.isEmulator }, 'Pub/Sub publisher ready');
  }

  maxPayloadBytes(): number {
    return Infinity;
  }

  publish(batch: readonly OutboundMessage[], signal: AbortSignal): Promise<void> {
    return abortable(this.send0(batch), signal);
  }

  private send0(batch: readonly OutboundMessage[]): Promise<void> {
    if (this.closing) return Promise.reject(new PublishError('Pub/Sub publisher is closed', true));
    const pubsub = this.pubsub;
    if (!pubsub) return Promise.reject(new PublishError('Pub/Sub publisher is not connected', true));
    if (batch.length === 0) return Promise.resolve();
    if (this.waiting === undefined && this.allTopicsReady(batch)) return this.send(batch);
    // Some topic is not checked yet, or an earlier batch waits for one: queue behind it.
    const queued = (this.waiting ?? Promise.resolve()).then(async () => {
      const subjects = new Set(batch.map((m) => m.subject));
      await Promise.all([...subjects].map((subject) => this.topicFor(pubsub, subject)));
    });
    const sent = queued.then(() => this.send(batch));
    const tail = queued.catch(() => undefined);
    this.waiting = tail;
    void tail.then(() => {
      if (this.waiting === tail) this.waiting = undefined;
    });
    return sent;
  }

  private allTopicsReady(batch: readonly OutboundMessage[]): boolean {
    for (const message of batch) if (!this.topics.has(message.subject)) return false;
    return true;
  }

  healthy(): boolean {
    return this.pubsub !== undefined && this.closing === undefined && !this.failing;
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
   * Hands every message to the client library synchronously (so batches keep their order per key)
   * and resolves when all are acknowledged. Rejects at the first failure, without waiting for the
   * rest: the pipeline then holds newer batches, so none of them can overtake the retry.
   */
  private send(batch: readonly OutboundMessage[]): Promise<void> {
    this.resumePaused();
    return new Promise((resolve, reject) => {
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
              reject(this.toPublishError(message, err));
            }
          } else if (--pending === 0 && !failed) {
            this.failing = false;
            resolve();
          }
        };
        try {
          if (!topic) throw new PublishError(`Pub/Sub topic ${message.subject} is not ready`, true);
          const data = payloadBuffer(message);
          if (data.length > MAX_MESSAGE_BYTES) {
            throw Object.assign(new Error(`message of ${data.length} bytes exceeds Pub/Sub's ${MAX_MESSAGE_BYTES}-byte limit`), { code: Status.INVALID_ARGUMENT });
          }
          topic.publishMessage(
            {
              data,
              attributes: { id: message.id, lsn: message.lsn, table: `${message.schema}.${message.table}`, action: message.action },
              ...(orderingKey ? { orderingKey } : {}),
            },
            done,
          );
        } catch (err) {
          done(err as Error);
        }
      }
    });
  }

  /**
   * After a failed request the library pauses that ordering key (rejecting its queued messages).
   * The next publish() is the pipeline's in-order retry (it holds newer batches meanwhile), so
   * resume the keys just before it sends. Resuming at the failure itself could come before the
   * library's own pause and leave the key paused. (5.3.1 drops a key's queue once it is empty, which
   * also ends the pause; resuming explicitly keeps this right if a version keeps the queue.)
   */
  private resumePaused(): void {
    if (this.paused.length === 0) return;
    for (const [topic, key] of this.paused.splice(0)) topic.resumePublishing(key);
  }

  private isRetryable(err: unknown): boolean {
    if (err instanceof PublishError) return err.retryable;
    const code = grpcCode(err);
    return code === undefined || !NEVER_ACCEPTED.has(code);
  }

  private toPublishError(message: OutboundMessage, err: unknown): PublishError {
    if (err instanceof PublishError) return err;
    const where = `${message.schema}.${message.table} at LSN ${message.lsn} (topic ${message.subject})`;
    if (grpcCode(err) === Status.NOT_FOUND) {
      // The topic disappeared after it was checked: check (and with createTopics, create) it again.
      this.topics.delete(message.subject);
      if (this.config.createTopics) {
        this.failing = true;
        return new PublishError(`Pub/Sub topic ${message.subject} was not found publishing ${where}; it will be created again: ${reason(err)}`, true, { cause: err });
      }
      return new PubSubSetupError(`Pub/Sub topic ${message.subject} does not exist (publishing ${where}); create it or set publisher.createTopics: true`, { cause: err });
    }
    if (this.isRetryable(err)) {
      this.failing = true;
      return new PublishError(`Pub/Sub did not acknowledge ${where}: ${reason(err)}`, true, { cause: err });
    }
    return new PublishError(`Pub/Sub rejected the change to ${where}: ${reason(err)}`, false, { cause: err });
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
        throw new PubSubSetupError(`Pub/Sub topic name ${JSON.stringify(subject)} is not valid: ${reason(err)}`, { cause: err });
      }
      if (code !== Status.NOT_FOUND) {
        this.failing = true;
        throw new PublishError(`checking Pub/Sub topic ${subject} failed: ${reason(err)}`, true, { cause: err });
      }
    }
    if (!this.config.createTopics) {
      throw new PubSubSetupError(`Pub/Sub topic ${subject} does not exist in project ${this.config.pubSubProjectId}; create it or set publisher.createTopics: true`);
    }
    try {
      await topic.create(gaxOpts);
      this.log.info({ topic: subject }, 'created Pub/Sub topic');
    } catch (err) {
      // Another instance (or a concurrent check) created it first: fine.
      if (grpcCode(err) !== Status.ALREADY_EXISTS) {
        if (this.isRetryable(err)) {
          this.failing = true;
          throw new PublishError(`creating Pub/Sub topic ${subject} failed: ${reason(err)}`, true, { cause: err });
        }
        throw new PubSubSetupError(`creating Pub/Sub topic ${subject} failed: ${reason(err)}`, { cause: err });
      }
    }
    return topic;
  }
}
