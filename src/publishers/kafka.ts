/**
 * Kafka publisher (kafkajs): the broker-specific part of delivery only (DESIGN.md "The pipeline").
 * The subject is the topic, `OutboundMessage.key` the message key (kafkajs's DefaultPartitioner:
 * murmur2 like the Java client, so Java producers and consumers agree on the partition), and
 * headers `id` (the event id, for consumer-side dedup), `lsn`, `table` (`<schema>.<table>`) and
 * `action` travel with every message. Sends wait for all in-sync replicas (acks = -1).
 *
 * Order. The dispatcher never has two batches with a common key in flight, and re-sends a failed
 * batch before anything newer of its keys; so per-key order needs only that one publish() reaches
 * each partition in order and that nothing of it is sent again behind the dispatcher's back:
 *  - a batch goes out as consecutive requests (split at MAX_SEND_BYTES), each sent after the
 *    previous one was acknowledged, none after the signal aborted;
 *  - kafkajs retries nothing (`retry.retries: 0` on the producer): a request it re-sent after the
 *    dispatcher gave up on the batch could land after a newer change of the same key;
 *  - `maxInFlightRequests: 1` and kafkajs's one request queue per broker connection: a request of
 *    an aborted publish that kafkajs still holds goes out before the dispatcher's re-send of it
 *    (same connection, first in first out), so at worst a message is stored twice, in order.
 * Publishes of different batches may run at once (their keys differ): one sendBatch at a time, as
 * before, is not needed for per-key order. No idempotent producer (the test broker lacks it);
 * consumers drop a redelivery by the `id` header.
 *
 * Connection state. kafkajs has no event for a broker connection closing (its instrumentation
 * has connect/disconnect of the producer and request events only; a closed connection is a debug
 * log line). The publisher creates the sockets itself (kafkajs's `socketFactory`) and watches them:
 * when the last open broker connection closes without close() being called, it reports `lost`;
 * connect() then reconnects through kafkajs (a seed broker and metadata) and reports `restored`.
 * A broker that closes idle connections (connections.max.idle.ms) looks the same: the dispatcher's
 * reconnect then succeeds at once.
 *
 * Size. `maxPayloadBytes` is the topic's `max.message.bytes` (read once per topic with
 * DescribeConfigs, awaited by the first publish to it; an existing topic reports the broker's
 * default there when it has no override, a missing one is created with the broker's
 * `message.max.bytes`), less the record's framing, key and headers. A broker that cannot answer
 * DescribeConfigs (librdkafka's mock cluster) leaves it Infinity: the broker's refusal
 * (MESSAGE_TOO_LARGE) is then the only check.
 *
 * Topics are created on first use when the broker allows it (auto.create.topics.enable), as in
 * ihippik/wal-listener. A topic that does not exist and is not created fails as retryable
 * (Kafka's UNKNOWN_TOPIC_OR_PARTITION is transient by definition): the dispatcher keeps retrying
 * and logging, confirms nothing after it, and carries on once someone creates the topic.
 */
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import kafkajs from 'kafkajs';
import type { Admin, ICustomPartitioner, ISocketFactory, LogEntry, Message, Producer, ProducerBatch, SASLOptions, TopicMessages } from 'kafkajs';
import type { PublisherConfig } from '../config/schema.js';
import { describeError, PublishError, WalListenerError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { describeMessage, payloadBuffer, payloadBytes } from '../pipeline/message.js';
import type { OutboundMessage, Publisher, PublisherEvents } from './publisher.js';
import { saramaPartition } from './sarama-partitioner.js';

const { Kafka, Partitioners, logLevel, ConfigResourceTypes } = kafkajs;

/** kafkajs partitioner choosing sarama's HashPartitioner partition for keyed messages. */
const saramaPartitioner: ICustomPartitioner = () => ({ message, partitionMetadata }) => {
  const key = message.key;
  if (key === null || key === undefined) return partitionMetadata[Math.floor(Math.random() * partitionMetadata.length)]!.partitionId;
  return saramaPartition(Buffer.isBuffer(key) ? key : Buffer.from(key), partitionMetadata.length);
};

/**
 * Upper bound on the bytes of one sendBatch. kafkajs puts every message a send has for a
 * partition into one record batch, and brokers refuse record batches over max.message.bytes
 * (1 MiB by default): larger sends are split, in order, so only a single huge message can be
 * refused. Sized just under that limit, because each split costs a round trip.
 */
const MAX_SEND_BYTES = 900 * 1024;
/** A record batch's header (61 bytes) and one record's varint framing, generously. */
const RECORD_OVERHEAD = 96;
/** Header names on every message: id, lsn, table, action. */
const HEADER_NAME_BYTES = 2 + 3 + 5 + 6;
const KEEP_ALIVE_MS = 60_000;
/** kafkajs error types that mean the client's credentials or rights are wrong, not the message. */
const SETUP_ERRORS = new Set(['TOPIC_AUTHORIZATION_FAILED', 'CLUSTER_AUTHORIZATION_FAILED', 'SASL_AUTHENTICATION_FAILED', 'INVALID_TOPIC_EXCEPTION']);

export class KafkaPublisher implements Publisher {
  readonly kind = 'kafka';
  readonly events = new EventEmitter<PublisherEvents>();
  private readonly brokers: string[];
  private readonly ackTimeout: number;
  private producer: Producer | undefined;
  private admin: Admin | undefined;
  private connecting: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  /** Producer connections to brokers that are open now. */
  private readonly sockets = new Set<Socket>();
  /** False after `lost` until connect() succeeds again. */
  private connected = false;
  private lostOnce = false;
  /** max.message.bytes per topic, once read (Infinity: unreadable). */
  private readonly topicLimits = new Map<string, number>();
  private readonly limitReads = new Map<string, Promise<void>>();
  /** DescribeConfigs is not answered at all: stop asking. */
  private configsUnreadable = false;

  constructor(
    private readonly config: PublisherConfig,
    private readonly log: Logger,
  ) {
    this.brokers = config.address
      .split(',')
      .map((b) => b.trim())
      .filter((b) => b !== '');
    this.ackTimeout = config.ackTimeout;
  }

  connect(): Promise<void> {
    if (this.closing) return Promise.reject(closedError());
    if (this.healthy()) return Promise.resolve();
    this.connecting ??= this.open().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  healthy(): boolean {
    return this.producer !== undefined && this.connected && !this.closing;
  }

  maxPayloadBytes(message: OutboundMessage): number {
    const limit = this.topicLimits.get(message.subject);
    if (limit === undefined || limit === Infinity) return Infinity;
    return limit - recordOverhead(message);
  }

  publish(batch: readonly OutboundMessage[], signal: AbortSignal): Promise<void> {
    if (this.closing) return Promise.reject(closedError());
    if (!this.producer) return Promise.reject(new PublishError('Kafka publisher is not connected', true));
    if (signal.aborted) return Promise.reject(signal.reason);
    if (batch.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      let settled = false;
      const onAbort = (): void => {
        if (settled) return;
        settled = true;
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.send(batch, signal).then(
        () => {
          if (settled) return;
          settled = true;
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
        (err: unknown) => {
          if (settled) return;
          settled = true;
          signal.removeEventListener('abort', onAbort);
          reject(err);
        },
      );
    });
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async open(): Promise<void> {
    if (!this.producer) this.create(await this.tlsOptions());
    try {
      // A second connect() after a loss reconnects kafkajs's cluster (a seed broker, then metadata).
      await this.producer!.connect();
    } catch (err) {
      throw connectError(err, this.brokers);
    }
    if (this.closing) throw closedError();
    this.connected = true;
    this.log.debug({ brokers: this.brokers }, 'connected to Kafka');
    if (this.lostOnce) this.events.emit('restored');
  }

  private create(ssl: ConnectionOptions | boolean): void {
    const options = {
      clientId: 'wal-listener',
      brokers: this.brokers,
      ssl,
      ...(this.config.sasl ? { sasl: this.config.sasl as SASLOptions } : {}),
      connectionTimeout: Math.min(this.ackTimeout, 10_000),
      // kafkajs's own deadline, so a request it can no longer deliver leaves its queue; the
      // dispatcher's deadline (the same length) settles the publish.
      requestTimeout: this.ackTimeout,
      // Connecting tries the seed brokers in turn: one pass over the list per connect().
      retry: { retries: this.brokers.length, initialRetryTime: 50, maxRetryTime: 250 },
      logLevel: this.log.isLevelEnabled('trace') ? logLevel.DEBUG : this.log.isLevelEnabled('debug') ? logLevel.INFO : logLevel.WARN,
      logCreator: () => (entry: LogEntry) => this.kafkaLog(entry),
    };
    this.producer = new Kafka({ ...options, socketFactory: this.watchedSockets() }).producer({
      // compat: sarama's FNV-1a, as ihippik/wal-listener partitions keyed messages, so a row's
      // partition does not move when switching from it; native: murmur2 like the Java client.
      createPartitioner: this.config.eventFormat === 'compat' ? saramaPartitioner : Partitioners.DefaultPartitioner,
      allowAutoTopicCreation: true,
      idempotent: false,
      maxInFlightRequests: 1,
      retry: { retries: 0 },
    });
    // Its own connections, not watched: closing them says nothing about the producer's.
    this.admin = new Kafka({ ...options, retry: { retries: 0 } }).admin();
  }

  /** kafkajs's socket factory, watching the producer's broker connections (see the header). */
  private watchedSockets(): ISocketFactory {
    return ({ host, port, ssl, onConnect }) => {
      const socket: Socket = ssl ? tlsConnect({ host, port, ...(isIP(host) ? {} : { servername: host }), ...ssl }, onConnect) : netConnect({ host, port }, onConnect);
      socket.setKeepAlive(true, KEEP_ALIVE_MS);
      socket.once(ssl ? 'secureConnect' : 'connect', () => this.sockets.add(socket));
      socket.once('close', () => {
        if (!this.sockets.delete(socket) || this.sockets.size > 0 || this.closing || !this.connected) return;
        this.connected = false;
        this.lostOnce = true;
        this.events.emit('lost', new Error(`every Kafka broker connection closed (last: ${host}:${port})`));
      });
      return socket;
    };
  }

  /** TLS options from the configured files, read at connect so a renewed certificate is picked up. */
  private async tlsOptions(): Promise<ConnectionOptions | boolean> {
    const { enableTLS, caCert, clientCert, clientKey } = this.config;
    if (!enableTLS) {
      if (caCert || clientCert || clientKey) this.log.warn('publisher.caCert/clientCert/clientKey are ignored because publisher.enableTLS is false');
      return false;
    }
    const options: ConnectionOptions = {};
    if (caCert) options.ca = [await readTlsFile('publisher.caCert', caCert)];
    if (clientCert && clientKey) {
      options.cert = await readTlsFile('publisher.clientCert', clientCert);
      options.key = await readTlsFile('publisher.clientKey', clientKey);
    }
    return caCert || clientCert ? options : true;
  }

  /** Sends a batch as consecutive requests; stops before the next request once the signal aborted. */
  private async send(batch: readonly OutboundMessage[], signal: AbortSignal): Promise<void> {
    const producer = this.producer!;
    await this.readLimits(batch);
    const oversized = this.oversized(batch);
    if (oversized !== null) throw oversized;
    let start = 0;
    while (start < batch.length && !signal.aborted) {
      const request = this.request(batch, start);
      try {
        await producer.sendBatch(request.batch);
      } catch (err) {
        throw publishError(err, batch, start, request.count);
      }
      start += request.count;
    }
  }

  /** The first message over its topic's limit, refused before anything of the batch is sent. */
  private oversized(batch: readonly OutboundMessage[]): PublishError | null {
    for (let i = 0; i < batch.length; i++) {
      const message = batch[i]!;
      const max = this.maxPayloadBytes(message);
      if (payloadBytes(message) > max) {
        const limit = this.topicLimits.get(message.subject);
        return new PublishError(`Kafka topic ${message.subject} takes at most ${limit} bytes per message (max.message.bytes); the message for ${describeMessage(message)} has ${payloadBytes(message)} bytes of payload`, false, { rejected: i });
      }
    }
    return null;
  }

  /** The next sendBatch: messages from `start`, within MAX_SEND_BYTES and the topics' limits (at least one message), grouped by topic in order. */
  private request(messages: readonly OutboundMessage[], start: number): { batch: ProducerBatch; count: number } {
    const topics = new Map<string, Message[]>();
    let bytes = 0;
    let i = start;
    for (; i < messages.length; i++) {
      const m = messages[i]!;
      const value = payloadBuffer(m);
      const size = value.length + recordOverhead(m);
      if (bytes > 0 && bytes + size > Math.min(MAX_SEND_BYTES, this.topicLimits.get(m.subject) ?? Infinity)) break;
      bytes += size;
      const headers = { ...m.headers, id: m.id, lsn: m.lsn, table: `${m.schema}.${m.table}`, action: m.action };
      const message: Message = { key: m.key, value: m.tombstone ? null : value, headers };
      const list = topics.get(m.subject);
      if (list) list.push(message);
      else topics.set(m.subject, [message]);
    }
    const topicMessages: TopicMessages[] = [];
    for (const [topic, list] of topics) topicMessages.push({ topic, messages: list });
    return { batch: { acks: -1, timeout: this.ackTimeout, topicMessages }, count: i - start };
  }

  /** Reads max.message.bytes of the batch's topics not read yet (once each). */
  private async readLimits(batch: readonly OutboundMessage[]): Promise<void> {
    if (this.configsUnreadable) return;
    let reads: Set<Promise<void>> | undefined;
    for (const message of batch) {
      const topic = message.subject;
      if (this.topicLimits.has(topic)) continue;
      let read = this.limitReads.get(topic);
      if (!read) {
        read = this.readLimit(topic).finally(() => this.limitReads.delete(topic));
        this.limitReads.set(topic, read);
      }
      (reads ??= new Set()).add(read);
    }
    if (reads) await Promise.all(reads);
  }

  private async readLimit(topic: string): Promise<void> {
    const admin = this.admin!;
    try {
      await admin.connect();
      const { resources } = await admin.describeConfigs({ resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['max.message.bytes'] }], includeSynonyms: false });
      const resource = resources[0];
      const value = resource?.configEntries.find((e) => e.configName === 'max.message.bytes')?.configValue;
      if (resource && resource.errorCode === 0 && value !== undefined && Number(value) > 0) {
        this.topicLimits.set(topic, Number(value));
        this.log.debug({ topic, maxMessageBytes: Number(value) }, 'Kafka topic limit read');
        return;
      }
      // UNKNOWN_TOPIC_OR_PARTITION (3): not created yet; read again on the next publish to it.
      if (resource?.errorCode === 3) return;
      this.topicLimits.set(topic, Infinity);
      this.log.info({ topic, error: resource?.errorMessage ?? resource?.errorCode }, 'cannot read the Kafka topic max.message.bytes; only the broker checks message sizes');
    } catch (err) {
      const errors = chain(err);
      // A connection problem: the send reports it; read again next time.
      if (errors.some((e) => e.name === 'KafkaJSConnectionError' || e.name === 'KafkaJSConnectionClosedError' || e.name === 'KafkaJSRequestTimeoutError')) return;
      this.configsUnreadable = true;
      this.log.info({ err: errors.at(-1)?.message ?? describeError(err) }, 'Kafka does not answer DescribeConfigs; only the broker checks message sizes');
    }
  }

  private async shutdown(): Promise<void> {
    this.connected = false;
    await this.connecting?.catch(() => undefined);
    const producer = this.producer;
    this.producer = undefined;
    await this.admin?.disconnect().catch(() => undefined);
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

/** Bytes a message takes in a record batch besides its value. */
function recordOverhead(m: OutboundMessage): number {
  let headers = HEADER_NAME_BYTES + m.id.length + m.lsn.length + m.schema.length + 1 + m.table.length + m.action.length;
  if (m.headers !== null) for (const [name, value] of Object.entries(m.headers)) headers += Buffer.byteLength(name) + Buffer.byteLength(value) + 4;
  return RECORD_OVERHEAD + Buffer.byteLength(m.key) + headers;
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
  return m ? `${describeMessage(m)}, topic ${m.subject}` : 'none';
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
 * Maps a kafkajs failure of the request holding messages `start` to `start + count - 1` of `batch`
 * to an error. A broker error that Kafka marks non-retriable is final: for the client's rights
 * (authorization, a topic name the broker refuses) a setup error that stops the daemon; for a
 * message (MESSAGE_TOO_LARGE, INVALID_RECORD, ...) a rejection naming the message when the request
 * held only one (otherwise the dispatcher re-sends one at a time to find it). Connection loss,
 * timeouts, leader moves and unknown topics are retryable.
 */
export function publishError(err: unknown, batch: readonly OutboundMessage[], start: number, count: number): WalListenerError {
  if (err instanceof WalListenerError) return err;
  const sent = batch.slice(start, start + count);
  const errors = chain(err);
  const broker = errors.find((e) => e.name === 'KafkaJSProtocolError');
  const reason = broker ? `${broker.type ?? 'broker error'}: ${broker.message ?? ''}` : (errors.at(-1)?.message ?? describeError(err));
  if (broker && broker.retriable === false) {
    if (SETUP_ERRORS.has(broker.type ?? '')) {
      return new WalListenerError('WAL_PUBLISH_CONFIG', `Kafka refused to take messages for topic ${sent[0]?.subject} (publisher.sasl, ACLs, topic name): ${reason}`, { cause: err });
    }
    const alone = count === 1 ? { rejected: start } : {};
    const tooLarge = broker.type === 'MESSAGE_TOO_LARGE' || broker.type === 'RECORD_LIST_TOO_LARGE';
    // Several messages: the refused one is not known (for a size, the largest is the likely one).
    const culprit = tooLarge ? largest(sent) : sent[0];
    const what = count === 1 ? `the message (${where(culprit)}, ${payloadBytes(culprit!)} bytes)` : `one of ${count} messages (first: ${where(sent[0])}${tooLarge ? `; largest ${payloadBytes(culprit!)} bytes` : ''})`;
    return new PublishError(`Kafka refused ${what}: ${reason}`, false, { cause: err, ...alone });
  }
  const hint = broker?.type === 'UNKNOWN_TOPIC_OR_PARTITION' ? ' (the topic does not exist and the broker does not create topics: create it, or enable auto.create.topics.enable)' : '';
  return new PublishError(`Kafka did not acknowledge a send of ${count} messages (first: ${where(sent[0])}): ${reason}${hint}`, true, { cause: err });
}

function largest(messages: readonly OutboundMessage[]): OutboundMessage | undefined {
  let best: OutboundMessage | undefined;
  for (const m of messages) if (!best || payloadBytes(m) > payloadBytes(best)) best = m;
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
