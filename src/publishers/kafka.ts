/**
 * Kafka publisher (kafkajs). The subject is the topic, `OutboundMessage.key` the message key, and
 * headers `id` (the event id, for consumer-side dedup), `lsn`, `table` (`<schema>.<table>`) and
 * `action` travel with every message. Sends wait for all in-sync replicas (acks = -1).
 *
 * Order. Kafka keeps order per partition, and the key picks the partition (kafkajs's
 * DefaultPartitioner: murmur2 like the Java client, so Java producers and consumers agree). A
 * batch must reach each partition in publish order, also across retries and with several
 * publish() calls in flight. kafkajs cannot promise that by itself: when a request fails it
 * re-sends, after a backoff, only the requests of the failed brokers, so a later send() could
 * overtake it. Hence:
 *  - one sendBatch at a time; publish() calls that arrive meanwhile wait and then go together
 *    in the next sendBatch (so the pipeline's in-flight window still fills Kafka's batches);
 *  - `maxInFlightRequests: 1`: one request at a time per broker connection (Java's
 *    `max.in.flight.requests.per.connection=1` without idempotence), so nothing is pipelined
 *    behind a Produce that may be retried;
 *  - once a send fails (or passes ackTimeout), the batches queued behind it are rejected unsent
 *    (retryable): the pipeline re-publishes the failed batch first and they follow it in order.
 * No idempotent producer (the test broker lacks it; headers carry the id for dedup instead), and
 * kafkajs retries only a few times, for leader moves and new topics: the pipeline retries.
 *
 * Topics are created on first use when the broker allows it (auto.create.topics.enable), as in
 * ihippik/wal-listener. A topic that does not exist and is not created fails as retryable
 * (Kafka's UNKNOWN_TOPIC_OR_PARTITION is transient by definition): the daemon keeps retrying and
 * logging, confirms nothing after it, and carries on once someone creates the topic.
 */
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import kafkajs from 'kafkajs';
import type { LogEntry, Message, Producer, ProducerBatch, SASLOptions, TopicMessages } from 'kafkajs';
import type { ConnectionOptions } from 'node:tls';
import type { PublisherConfig } from '../config/schema.js';
import { describeError, PublishError, WalListenerError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { payloadBuffer, payloadBytes } from '../pipeline/message.js';
import { abortable } from './abortable.js';
import type { OutboundMessage, Publisher, PublisherEvents } from './publisher.js';

const { Kafka, Partitioners, logLevel } = kafkajs;

/**
 * Upper bound on the bytes of one sendBatch. kafkajs puts every message a send has for a
 * partition into one record batch, and brokers refuse record batches over message.max.bytes
 * (1 MiB by default): larger sends are split, in order, so only a single huge message can be
 * refused. Sized just under that limit, because each split costs a round trip.
 */
const MAX_SEND_BYTES = 900 * 1024;
/** Estimated record and header framing per message, on top of the key, value and header values. */
const RECORD_OVERHEAD = 64;

interface Pending {
  readonly batch: readonly OutboundMessage[];
  /** Value of `epoch` when queued: a failure since then means this batch must not be sent. */
  readonly epoch: number;
  readonly resolve: () => void;
  readonly reject: (err: PublishError) => void;
  timer: NodeJS.Timeout | undefined;
  done: boolean;
}

export class KafkaPublisher implements Publisher {
  readonly kind = 'kafka';
  readonly events = new EventEmitter<PublisherEvents>();
  private readonly brokers: string[];
  private readonly ackTimeout: number;
  private producer: Producer | undefined;
  private connecting: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private queue: Pending[] = [];
  private sending = false;
  private epoch = 0;
  private failing = false;

  constructor(
    private readonly config: PublisherConfig,
    private readonly log: Logger,
  ) {
    this.brokers = config.address
      .split(',')
      .map((b) => b.trim())
      .filter((b) => b !== '');
    this.ackTimeout = config.ackTimeout > 0 ? config.ackTimeout : 30_000;
  }

  connect(): Promise<void> {
    if (this.closing) return Promise.reject(closedError());
    this.connecting ??= this.open().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  maxPayloadBytes(): number {
    return Infinity;
  }

  publish(batch: readonly OutboundMessage[], signal: AbortSignal): Promise<void> {
    return abortable(this.send0(batch), signal);
  }

  private send0(batch: readonly OutboundMessage[]): Promise<void> {
    if (this.closing) return Promise.reject(closedError());
    if (batch.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const item: Pending = { batch, epoch: this.epoch, resolve, reject, timer: undefined, done: false };
      // The only timer here: the contract's ackTimeout, so a publish settles even if kafkajs hangs.
      item.timer = setTimeout(() => this.expire(item), this.ackTimeout);
      this.queue.push(item);
      this.pump();
    });
  }

  healthy(): boolean {
    return this.producer !== undefined && !this.closing && !this.failing;
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async open(): Promise<void> {
    if (this.producer) return;
    const kafka = new Kafka({
      clientId: 'wal-listener',
      brokers: this.brokers,
      ssl: await this.tlsOptions(),
      ...(this.config.sasl ? { sasl: this.config.sasl as SASLOptions } : {}),
      connectionTimeout: Math.min(this.ackTimeout, 10_000),
      requestTimeout: this.ackTimeout,
      // Connecting tries the seed brokers in turn: give every address of the list a chance.
      retry: { retries: Math.max(3, this.brokers.length), initialRetryTime: 100, maxRetryTime: 1_000 },
      logLevel: this.log.isLevelEnabled('trace') ? logLevel.DEBUG : this.log.isLevelEnabled('debug') ? logLevel.INFO : logLevel.WARN,
      logCreator: () => (entry) => this.kafkaLog(entry),
    });
    const producer = kafka.producer({
      createPartitioner: Partitioners.DefaultPartitioner,
      allowAutoTopicCreation: true,
      idempotent: false,
      maxInFlightRequests: 1,
      retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1_000 },
    });
    try {
      await producer.connect();
    } catch (err) {
      await producer.disconnect().catch(() => undefined);
      throw connectError(err, this.brokers);
    }
    this.producer = producer;
    this.failing = false;
    this.log.debug({ brokers: this.brokers }, 'connected to Kafka');
  }

  /** TLS options from the configured files, read at connect so a renewed certificate is picked up. */
  private async tlsOptions(): Promise<ConnectionOptions | boolean> {
    const { enableTLS, caCert, clientCert, clientKey } = this.config;
    if (this.brokers.length === 0) {
      throw new WalListenerError('WAL_PUBLISH_CONFIG', 'publisher.address: expected a comma-separated list of Kafka brokers (host:port), got nothing');
    }
    const bad = this.brokers.find((b) => !/^[^:\s]+:\d+$/.test(b));
    if (bad !== undefined) throw new WalListenerError('WAL_PUBLISH_CONFIG', `publisher.address: "${bad}" is not host:port`);
    if (!enableTLS) {
      if (caCert || clientCert || clientKey) this.log.warn('publisher.caCert/clientCert/clientKey are ignored because publisher.enableTLS is false');
      return false;
    }
    if (Boolean(clientCert) !== Boolean(clientKey)) {
      throw new WalListenerError('WAL_PUBLISH_CONFIG', 'publisher.clientCert and publisher.clientKey go together: set both for mutual TLS, or neither');
    }
    const options: ConnectionOptions = {};
    if (caCert) options.ca = [await readTlsFile('publisher.caCert', caCert)];
    if (clientCert && clientKey) {
      options.cert = await readTlsFile('publisher.clientCert', clientCert);
      options.key = await readTlsFile('publisher.clientKey', clientKey);
    }
    return caCert || clientCert ? options : true;
  }

  /** Starts the next sendBatch unless one is running: everything queued goes in it, in order. */
  private pump(): void {
    if (this.sending || this.queue.length === 0) return;
    const group: Pending[] = [];
    for (const item of this.queue) {
      if (item.epoch === this.epoch) group.push(item);
      else this.settle(item, new PublishError(`Kafka batch not sent (first: ${where(item.batch[0])}): an earlier batch failed and must be re-published first, to keep each partition in order`, true));
    }
    this.queue = [];
    if (group.length === 0) return;
    this.sending = true;
    void this.send(group).finally(() => {
      this.sending = false;
      this.pump();
    });
  }

  private async send(group: Pending[]): Promise<void> {
    const messages = group.length === 1 ? group[0]!.batch : group.flatMap((item) => item.batch);
    let start = 0;
    let end = 0;
    // Batches are acknowledged as soon as the request holding their last message is.
    let next = 0;
    let nextEnd = group[0]!.batch.length;
    try {
      if (!this.producer) await this.connect();
      const producer = this.producer;
      if (!producer) throw closedError();
      while (start < messages.length) {
        const request = this.request(messages, start);
        end = start + request.count;
        await producer.sendBatch(request.batch);
        start = end;
        while (next < group.length && nextEnd <= start) {
          this.settle(group[next]!);
          if (++next < group.length) nextEnd += group[next]!.batch.length;
        }
      }
      this.failing = false;
    } catch (err) {
      this.epoch++;
      // The request that failed, or everything not sent yet when connecting failed.
      const error = publishError(err, messages.slice(start, end > start ? end : messages.length));
      if (error.retryable) this.failing = true;
      this.log.debug({ err: describeError(err), messages: messages.length - start, retryable: error.retryable }, 'Kafka send failed');
      for (; next < group.length; next++) this.settle(group[next]!, error);
    }
  }

  /** The next sendBatch: messages from `start`, at most MAX_SEND_BYTES (at least one message), grouped by topic in order. */
  private request(messages: readonly OutboundMessage[], start: number): { batch: ProducerBatch; count: number } {
    const topics = new Map<string, Message[]>();
    let bytes = 0;
    let i = start;
    for (; i < messages.length; i++) {
      const m = messages[i]!;
      const value = payloadBuffer(m);
      const size = value.length + Buffer.byteLength(m.key) + m.id.length + m.lsn.length + m.schema.length + m.table.length + m.action.length + RECORD_OVERHEAD;
      if (bytes > 0 && bytes + size > MAX_SEND_BYTES) break;
      bytes += size;
      const message: Message = { key: m.key, value, headers: { id: m.id, lsn: m.lsn, table: `${m.schema}.${m.table}`, action: m.action } };
      const list = topics.get(m.subject);
      if (list) list.push(message);
      else topics.set(m.subject, [message]);
    }
    const topicMessages: TopicMessages[] = [];
    for (const [topic, list] of topics) topicMessages.push({ topic, messages: list });
    return { batch: { acks: -1, timeout: this.ackTimeout, topicMessages }, count: i - start };
  }

  private expire(item: Pending): void {
    if (item.done) return;
    const queued = this.queue.indexOf(item);
    if (queued >= 0) this.queue.splice(queued, 1);
    // Whatever is queued behind it must not overtake it.
    this.epoch++;
    this.failing = true;
    this.settle(item, new PublishError(`Kafka did not acknowledge ${item.batch.length} messages (first: ${where(item.batch[0])}) within ${this.ackTimeout} ms`, true));
  }

  private settle(item: Pending, error?: PublishError): void {
    if (item.done) return;
    item.done = true;
    clearTimeout(item.timer);
    if (error) item.reject(error);
    else item.resolve();
  }

  private async shutdown(): Promise<void> {
    for (const item of this.queue) this.settle(item, closedError());
    this.queue = [];
    await this.connecting?.catch(() => undefined);
    const producer = this.producer;
    this.producer = undefined;
    if (producer) await producer.disconnect().catch((err: unknown) => this.log.warn({ err: describeError(err) }, 'Kafka producer did not disconnect cleanly'));
  }

  /**
   * kafkajs's own log. Its errors are the failures that reject publish() or connect(), which the
   * pipeline reports with table and LSN: here they are debug lines, not a second error report.
   */
  private kafkaLog({ namespace, level, log }: LogEntry): void {
    const { message, timestamp: _timestamp, logger: _logger, ...extra } = log;
    const fields = { kafkajs: namespace, ...extra };
    if (level === logLevel.WARN) this.log.warn(fields, message);
    else if (level === logLevel.DEBUG) this.log.trace(fields, message);
    else this.log.debug(fields, message);
  }
}

function closedError(): PublishError {
  return new PublishError('Kafka publisher is closed', true);
}

async function readTlsFile(key: string, path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new WalListenerError('WAL_PUBLISH_CONFIG', `${key}: cannot read ${path}: ${describeError(err)}`, { cause: err });
  }
}

function where(m: OutboundMessage | undefined): string {
  return m ? `table ${m.schema}.${m.table}, LSN ${m.lsn}, topic ${m.subject}` : 'none';
}

interface KafkaErrorLike {
  name?: string;
  type?: string;
  code?: string;
  message?: string;
  retriable?: boolean;
  cause?: unknown;
}

/** The error and its causes, outermost first (kafkajs wraps the broker's error in retry errors). */
function chain(err: unknown): KafkaErrorLike[] {
  const list: KafkaErrorLike[] = [];
  for (let e: unknown = err; e !== null && typeof e === 'object' && list.length < 10; e = (e as KafkaErrorLike).cause) {
    list.push(e as KafkaErrorLike);
  }
  return list;
}

/**
 * Maps a kafkajs failure of the messages of one sendBatch (`sent`) to a PublishError. Only a broker
 * error that Kafka marks non-retriable (MESSAGE_TOO_LARGE, INVALID_RECORD, TOPIC_AUTHORIZATION_FAILED,
 * ...) is final; connection loss, timeouts, leader moves and unknown topics are retryable.
 */
export function publishError(err: unknown, sent: readonly OutboundMessage[]): PublishError {
  if (err instanceof PublishError) return err;
  if (err instanceof WalListenerError) return new PublishError(err.message, false, { cause: err });
  const errors = chain(err);
  const broker = errors.find((e) => e.name === 'KafkaJSProtocolError');
  const reason = broker ? `${broker.type ?? 'broker error'}: ${broker.message ?? ''}` : (errors.at(-1)?.message ?? describeError(err));
  if (broker && broker.retriable === false) {
    // A too-large message is the largest one of the request; other refusals name its first message.
    const culprit = broker.type === 'MESSAGE_TOO_LARGE' || broker.type === 'RECORD_LIST_TOO_LARGE' ? largest(sent) : sent[0];
    const size = culprit ? `, ${payloadBytes(culprit)} bytes` : '';
    return new PublishError(`Kafka refused a message (${where(culprit)}${size}): ${reason}`, false, { cause: err });
  }
  const hint = broker?.type === 'UNKNOWN_TOPIC_OR_PARTITION' ? ' (the topic does not exist and the broker does not create topics: create it, or enable auto.create.topics.enable)' : '';
  return new PublishError(`Kafka did not acknowledge a send of ${sent.length} messages (first: ${where(sent[0])}): ${reason}${hint}`, true, { cause: err });
}

function largest(messages: readonly OutboundMessage[]): OutboundMessage | undefined {
  let best: OutboundMessage | undefined;
  for (const m of messages) if (!best || m.payload.length > best.payload.length) best = m;
  return best;
}

/** connect(): a bad TLS or SASL setup stops the daemon; anything else is retried. */
function connectError(err: unknown, brokers: readonly string[]): Error {
  const errors = chain(err);
  const auth = errors.find((e) => e.name === 'KafkaJSSASLAuthenticationError' || (e.name === 'KafkaJSProtocolError' && e.retriable === false));
  const tls = errors.find((e) => typeof e.code === 'string' && /^ERR_TLS_|CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(e.code));
  const reason = errors.at(-1)?.message ?? describeError(err);
  if (auth) return new WalListenerError('WAL_PUBLISH_CONFIG', `Kafka refused the connection (publisher.sasl): ${auth.message ?? reason}`, { cause: err });
  if (tls) return new WalListenerError('WAL_PUBLISH_CONFIG', `Kafka TLS handshake failed (publisher.caCert/clientCert/clientKey): ${tls.message ?? reason}`, { cause: err });
  return new PublishError(`cannot connect to Kafka (${brokers.join(',')}): ${reason}`, true, { cause: err });
}
