/**
 * RabbitMQ publisher (amqplib, publisher confirms).
 *
 * Every message goes to the durable exchange `<topic>` (of `exchangeKind`) with the subject as
 * routing key, persistent, `messageId` = event id, headers `lsn`, `table` and `action`. A batch
 * counts as delivered only when the broker has confirmed (acked) each of its messages.
 *
 * Connection model: one connection with one ConfirmChannel (a "session"). Every batch is bound to
 * the session that is current when publish() is called and is written in call order. When the
 * session fails (connection or channel closed, a nack, an ack timeout) every batch bound to it
 * rejects at once, retryable, so the pipeline re-sends them in order; the next publish() opens a
 * new session and re-declares the exchange. A batch never moves to a newer session by itself, so a
 * later batch cannot overtake an earlier one that failed.
 *
 * A channel closed by the broker because of one message (403/406 on basic.publish, e.g. larger
 * than max_message_size) rejects that message's batch as not retryable, naming table, LSN and the
 * broker's reason; the other batches of the session reject retryable. A nack (a queue with
 * x-overflow reject-publish that is full, or an internal broker error) is retryable.
 *
 * Not mandatory: a message no queue is bound for is confirmed and dropped by RabbitMQ, as with
 * ihippik/wal-listener. Bind queues before the daemon starts if every change must be kept.
 *
 * TLS: an `amqps://` address, or `enableTLS: true` with an `amqp://` one. `caCert` (otherwise the
 * system CAs), `clientCert` and `clientKey` are read at every connect; the broker's certificate is
 * verified against the URL's host name.
 */
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import { connect as amqpConnect, IllegalOperationError, type ChannelModel, type ConfirmChannel, type Options, type SocketOptions } from 'amqplib';
import type { PublisherConfig } from '../config/schema.js';
import { describeError, PublishError, WalListenerError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { payloadBuffer, payloadBytes } from '../pipeline/message.js';
import { abortable } from './abortable.js';
import type { OutboundMessage, Publisher, PublisherEvents } from './publisher.js';

/** Where to connect: the URL amqplib gets, the same without password for logs, and whether it is TLS. */
export interface RabbitTarget {
  readonly url: string;
  readonly safeUrl: string;
  readonly tls: boolean;
}

/**
 * `publisher.address`: an AMQP URL (`amqp://user:pass@host:5672/vhost`, `amqps://...`), or a bare
 * `host[:port]`, read as `amqp://host:port` (RabbitMQ's default guest/guest login, vhost `/`).
 * `enableTLS: true` turns an `amqp://` address into `amqps://` (port 5671 unless one is given).
 */
export function parseRabbitAddress(address: string, enableTLS: boolean): RabbitTarget {
  const text = address.trim();
  const hint = 'expected an AMQP URL such as amqp://user:password@host:5672/vhost, or host:port';
  if (!text) throw new WalListenerError('WAL_PUBLISH_CONFIG', `publisher.address is required for rabbitmq: ${hint}`);
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `amqp://${text}`;
  const invalid = () => new WalListenerError('WAL_PUBLISH_CONFIG', `publisher.address ${JSON.stringify(redact(withScheme))} is not valid: ${hint}`);
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw invalid();
  }
  if ((url.protocol !== 'amqp:' && url.protocol !== 'amqps:') || !url.hostname) throw invalid();
  const tls = url.protocol === 'amqps:' || enableTLS;
  const rest = withScheme.slice(withScheme.indexOf('://') + 3);
  const full = `${tls ? 'amqps' : 'amqp'}://${rest}`;
  return { url: full, safeUrl: redact(full), tls };
}

/** The address with any password replaced, for logs and error messages. */
function redact(address: string): string {
  // Everything between the user name and the last '@' goes, so an unencoded '/' or '@' in a password cannot leak.
  return address.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/]*):.*@/i, '$1:***@');
}

/** Error from amqplib's channel or connection close, with the AMQP reply code and failing method. */
type AmqpError = Error & { code?: number | string; classId?: number; methodId?: number };

const BASIC_CLASS = 60;
const BASIC_PUBLISH = 40;
const SIZE_REASON = /message size (\d+) is larger than/;
const CLOSE_GRACE_MS = 2_000;

/** One connection + confirm channel, and the batches bound to it. */
class Session {
  model: ChannelModel | undefined;
  channel: ConfirmChannel | undefined;
  /** Resolves true once usable, false when opening failed (the reason is in `failure`). Never rejects. */
  readonly ready: Promise<boolean>;
  failure: Error | undefined;
  /** A server-side channel close caused by a message (403/406 on basic.publish). */
  private refusal: AmqpError | undefined;
  private refusalClaimed = false;
  blocked = false;
  private opened = false;
  private closing: Promise<void> | undefined;
  readonly jobs = new Set<Job>();
  private drainWaiters: Array<() => void> = [];

  constructor(private readonly publisher: RabbitMqPublisher) {
    this.ready = this.open();
  }

  private async open(): Promise<boolean> {
    const { target, log, config } = this.publisher;
    const timer = setTimeout(() => this.fail(new Error(`RabbitMQ did not complete the connection within ${config.ackTimeoutMs} ms`)), config.ackTimeoutMs);
    try {
      const model = await amqpConnect(target.url, await this.publisher.socketOptions());
      this.model = model;
      model.on('error', (err: Error) => this.fail(err));
      model.on('close', (err?: Error) => this.fail(err ?? new Error('connection closed')));
      model.on('blocked', (reason: string) => {
        this.blocked = true;
        log.warn({ reason }, 'RabbitMQ blocked publishing (memory or disk alarm); waiting');
      });
      model.on('unblocked', () => {
        this.blocked = false;
        log.info('RabbitMQ unblocked publishing');
      });
      if (this.failure) throw this.failure;
      const channel = await model.createConfirmChannel();
      this.channel = channel;
      channel.on('error', (err: AmqpError) => {
        if (err.classId === BASIC_CLASS && err.methodId === BASIC_PUBLISH && (err.code === 403 || err.code === 406)) this.refusal = err;
        this.fail(err);
      });
      // When the connection closes, amqplib closes the channel first and emits the connection's
      // 'close' (which carries the broker's reason) right after: let that reason win.
      channel.on('close', () => queueMicrotask(() => this.fail(new Error('channel closed'))));
      channel.on('drain', () => this.wake());
      if (this.failure) throw this.failure;
      await channel.assertExchange(config.exchange, config.exchangeKind, { durable: true });
      if (this.failure) throw this.failure;
      this.opened = true;
      log.info({ address: target.safeUrl, exchange: config.exchange, kind: config.exchangeKind }, 'connected to RabbitMQ');
      return true;
    } catch (err) {
      this.fail(asError(err));
      this.closeModel(); // the connection may have completed after fail() ran
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  get usable(): boolean {
    return this.channel !== undefined && !this.failure && !this.blocked;
  }

  /** Resolves on the channel's 'drain' or when the session fails. */
  drained(): Promise<void> {
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private wake(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /**
   * Marks the session dead (the first reason wins), rejects every batch bound to it and closes the
   * connection. Called from amqplib's events, a failed confirm, an ack timeout, and close().
   */
  fail(reason: Error): void {
    if (this.failure) return;
    this.failure = reason;
    if (this.opened && !this.publisher.closing) this.publisher.log.warn({ err: describeError(reason) }, 'RabbitMQ connection lost; the next publish reconnects');
    this.wake();
    for (const job of this.jobs) job.fail(this.errorFor(job));
    this.jobs.clear();
    this.closeModel();
  }

  /**
   * Closes the connection (once). A broker that does not answer the close handshake within
   * CLOSE_GRACE_MS (it may be why we gave up) gets its socket destroyed instead.
   */
  closeModel(): Promise<void> {
    const model = this.model;
    if (!this.closing && model) {
      let timer: NodeJS.Timeout | undefined;
      const forced = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          (model.connection as { stream?: { destroy(): void } }).stream?.destroy();
          resolve();
        }, CLOSE_GRACE_MS).unref();
      });
      const graceful = model.close().catch(() => undefined);
      this.closing = Promise.race([graceful, forced]).finally(() => clearTimeout(timer));
    }
    return this.closing ?? Promise.resolve();
  }

  /** A batch's rejection: not retryable only for the batch holding the message the broker refused. */
  private errorFor(job: Job): PublishError {
    const reason = this.failure;
    const refusal = this.refusal;
    if (refusal && !this.refusalClaimed) {
      const culprit = findRefused(job, refusal);
      if (culprit) {
        this.refusalClaimed = true;
        return new PublishError(`RabbitMQ refused the message for table ${culprit.schema}.${culprit.table} at LSN ${culprit.lsn} (id ${culprit.id}): ${refusalText(refusal)}`, false, { cause: refusal });
      }
    }
    if (!this.opened) return new PublishError(`cannot connect to RabbitMQ at ${this.publisher.target.safeUrl}: ${describeError(reason)}`, true, { cause: reason });
    return new PublishError(`RabbitMQ did not confirm ${job.batch.length} message(s) (first at LSN ${job.batch[0]?.lsn}): ${describeError(reason)}`, true, { cause: reason });
  }
}

/** The refused message of a batch: the one whose size the broker named, else the first unconfirmed one. */
function findRefused(job: Job, refusal: AmqpError): OutboundMessage | undefined {
  const size = SIZE_REASON.exec(refusal.message)?.[1];
  if (size !== undefined) return job.batch.find((m) => payloadBytes(m) === Number(size));
  return job.batch[job.batch.length - job.remaining];
}

function refusalText(err: AmqpError): string {
  const text = /with message "(.*)"$/.exec(err.message)?.[1] ?? err.message;
  return SIZE_REASON.test(text) ? `${text} (raise max_message_size on the broker)` : text;
}

/** One publish() call: its messages, its confirmations, its deadline. */
class Job {
  remaining: number;
  settled = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly batch: readonly OutboundMessage[],
    readonly session: Session,
    private readonly resolve: () => void,
    private readonly reject: (err: PublishError) => void,
    ackTimeoutMs: number,
  ) {
    this.remaining = batch.length;
    this.timer = setTimeout(() => session.fail(new Error(`no confirm from RabbitMQ within ${ackTimeoutMs} ms`)), ackTimeoutMs);
  }

  /** amqplib's per-message confirm callback; one function per batch, not per message. */
  readonly onConfirm = (err: unknown): void => {
    if (this.settled) return;
    if (err) {
      // amqplib calls this before it emits the connection's 'close' event that carries the reason
      // ("CONNECTION_FORCED - ..."); failing one microtask later lets that reason win.
      const failure = err instanceof Error && err.message === 'message nacked' ? new Error('RabbitMQ nacked a message (a queue refused it, e.g. full with x-overflow reject-publish, or an internal broker error)') : asError(err);
      queueMicrotask(() => this.session.fail(failure));
      return;
    }
    if (--this.remaining === 0) this.succeed();
  };

  private succeed(): void {
    this.settled = true;
    clearTimeout(this.timer);
    this.session.jobs.delete(this);
    this.resolve();
  }

  fail(err: PublishError): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.session.jobs.delete(this);
    this.reject(err);
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

export class RabbitMqPublisher implements Publisher {
  readonly kind = 'rabbitmq';
  readonly events = new EventEmitter<PublisherEvents>();
  readonly config: { readonly exchange: string; readonly exchangeKind: string; readonly ackTimeoutMs: number };
  private parsedTarget: RabbitTarget | undefined;
  private session: Session | undefined;
  /** Batches are written strictly in publish() order: each waits for the previous one's writes. */
  private writeTail: Promise<void> = Promise.resolve();
  private closed = false;
  private warnedTls = false;

  constructor(
    private readonly settings: PublisherConfig,
    readonly log: Logger,
  ) {
    this.config = {
      exchange: settings.topic,
      exchangeKind: settings.exchangeKind,
      // 0 would mean "wait forever", which a publish must never do: it means the default instead.
      ackTimeoutMs: settings.ackTimeout > 0 ? settings.ackTimeout : 30_000,
    };
  }

  get closing(): boolean {
    return this.closed;
  }

  get target(): RabbitTarget {
    this.parsedTarget ??= parseRabbitAddress(this.settings.address, this.settings.enableTLS);
    return this.parsedTarget;
  }

  /** Socket options for amqplib, with TLS material read from disk on every (re)connect. */
  async socketOptions(): Promise<SocketOptions> {
    const options: SocketOptions = { noDelay: true, timeout: this.config.ackTimeoutMs, clientProperties: { connection_name: `wal-listener:${this.config.exchange}` } };
    const files = { caCert: this.settings.caCert, clientCert: this.settings.clientCert, clientKey: this.settings.clientKey };
    if (!this.target.tls) {
      if ((files.caCert || files.clientCert || files.clientKey) && !this.warnedTls) {
        this.warnedTls = true;
        this.log.warn('publisher caCert/clientCert/clientKey are ignored: TLS is off (address is amqp:// and enableTLS is false)');
      }
      return options;
    }
    const read = async (key: keyof typeof files): Promise<Buffer | undefined> => {
      const path = files[key];
      if (!path) return undefined;
      try {
        return await readFile(path);
      } catch (err) {
        throw new WalListenerError('WAL_PUBLISH_CONFIG', `publisher.${key}: cannot read ${path}: ${describeError(err)}`, { cause: err });
      }
    };
    const [ca, cert, key] = await Promise.all([read('caCert'), read('clientCert'), read('clientKey')]);
    if (ca) options.ca = ca;
    if (cert) options.cert = cert;
    if (key) options.key = key;
    return options;
  }

  async connect(): Promise<void> {
    if (this.closed) throw new PublishError('rabbitmq publisher is closed', true);
    const target = this.target; // throws WAL_PUBLISH_CONFIG for a bad address
    const session = this.current();
    if (await session.ready) return;
    const err = session.failure;
    if (err instanceof WalListenerError) throw err;
    const text = describeError(err);
    if (/ACCESS[-_]REFUSED|Expected ConnectionOpenOk|NOT[-_]ALLOWED/.test(text)) {
      throw new WalListenerError('WAL_PUBLISH_CONFIG', `RabbitMQ at ${target.safeUrl} refused the login or the virtual host: ${text}`, { cause: err });
    }
    if (/PRECONDITION[-_]FAILED/.test(text)) {
      throw new WalListenerError('WAL_PUBLISH_CONFIG', `exchange ${JSON.stringify(this.config.exchange)} exists with other settings than a durable ${this.config.exchangeKind} exchange: ${text}`, { cause: err });
    }
    throw new PublishError(`cannot connect to RabbitMQ at ${target.safeUrl}: ${text}`, true, { cause: err });
  }

  maxPayloadBytes(): number {
    return Infinity;
  }

  publish(batch: readonly OutboundMessage[], signal: AbortSignal): Promise<void> {
    return abortable(this.send0(batch), signal);
  }

  private send0(batch: readonly OutboundMessage[]): Promise<void> {
    if (this.closed) return Promise.reject(new PublishError('rabbitmq publisher is closed', true));
    if (batch.length === 0) return Promise.resolve();
    const session = this.current();
    return new Promise<void>((resolve, reject) => {
      const job = new Job(batch, session, resolve, reject, this.config.ackTimeoutMs);
      session.jobs.add(job);
      this.writeTail = this.writeTail
        .then(() => this.write(job))
        .catch((err: unknown) => job.fail(new PublishError(`publishing to RabbitMQ failed: ${describeError(err)}`, true, { cause: err })));
    });
  }

  /** The live session, or a new one when there is none or it failed. */
  private current(): Session {
    if (!this.session || this.session.failure) this.session = new Session(this);
    return this.session;
  }

  /** Writes a batch's messages on its session, waiting for 'drain' when amqplib's buffer is full. */
  private async write(job: Job): Promise<void> {
    const session = job.session;
    if (!(await session.ready)) return; // the session failed: the job has been rejected
    const channel = session.channel as ConfirmChannel;
    const exchange = this.config.exchange;
    const batch = job.batch;
    for (let i = 0; i < batch.length; i++) {
      if (job.settled || session.failure) return;
      const message = batch[i] as OutboundMessage;
      let room: boolean;
      try {
        room = channel.publish(exchange, message.subject, payloadBuffer(message), properties(message), job.onConfirm);
      } catch (err) {
        if (err instanceof IllegalOperationError) session.fail(err);
        // amqplib refuses the message itself (e.g. headers over 64 KiB): retrying cannot help.
        else job.fail(new PublishError(`cannot publish the message for table ${message.schema}.${message.table} at LSN ${message.lsn}: ${describeError(err)}`, false, { cause: err }));
        return;
      }
      if (!room) await session.drained();
    }
  }

  healthy(): boolean {
    return !this.closed && this.session !== undefined && this.session.usable;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const session = this.session;
    if (!session) return;
    session.fail(new Error('rabbitmq publisher closed'));
    // fail() started a graceful close; wait for it, but never longer than a moment.
    // A connection still being opened is closed as soon as it completes (open() checks `failure`).
    await Promise.race([session.ready.then(() => session.closeModel()), new Promise((r) => setTimeout(r, CLOSE_GRACE_MS).unref())]);
  }
}

/** Message properties: built per message because messageId and headers differ. */
function properties(message: OutboundMessage): Options.Publish {
  return {
    persistent: true,
    contentType: 'application/json',
    messageId: message.id,
    headers: { lsn: message.lsn, table: `${message.schema}.${message.table}`, action: message.action },
  };
}
