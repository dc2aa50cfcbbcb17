/**
 * RabbitMQ publisher (amqplib, publisher confirms): the broker-specific half of the Publisher
 * contract. Deadlines, retries, ordering across failures and when to reconnect belong to the
 * dispatcher (src/pipeline/dispatcher.ts).
 *
 * Messages: see rabbitmq-message.ts (exchange, persistent, messageId = event id, headers). The
 * exchange `<topic>` is declared durable, of `exchangeKind`, at every connect. A batch is written
 * as basic.publish frames straight to the connection's socket, all of it or none
 * (rabbitmq-frames.ts); amqplib still opens the connection and the channel, reads every frame the
 * broker sends, and sends everything else. Its messages take the next delivery tags (the broker
 * numbers publishes on the channel from 1), and the channel's 'ack' and 'nack' events answer
 * them. A batch resolves once the broker confirmed (acked) each of its messages; a nack (a queue
 * with x-overflow reject-publish that is full, an internal broker error) rejects it retryable.
 *
 * Connection: one connection with one ConfirmChannel, a "link". connect() opens one when there is
 * none, and reports `restored` when it replaces a lost one. A link dies when the broker or the
 * network closes the connection, the broker closes the channel, or a heartbeat is missed: every
 * batch waiting on it rejects at once (retryable, with the broker's reason) and `lost` is
 * reported. Batches in flight together hold different keys (the dispatcher's rule), so the order
 * in which they reach the channel does not matter and nothing here queues them.
 *
 * Refusals: a channel closed by the broker because of one message rejects that message's batch
 * as not retryable with `rejected` = its index: 406 "message size N is larger than configured max
 * size" (found by its size), or 403/404 naming a routed message's own exchange. For another
 * refusal the culprit is known only when every unconfirmed message belongs to one batch; otherwise
 * all batches reject retryable and the dispatcher's lone re-send (the probe) narrows it down.
 * A 403 on the `<topic>` exchange is a setup error (WAL_PUBLISH_CONFIG); a 404 on it (deleted
 * under us) is retryable: the next connect() declares it again.
 *
 * max_message_size cannot be learned: RabbitMQ does not announce it (connection.tune carries only
 * channel_max, frame_max and heartbeat), so maxPayloadBytes() is Infinity and an oversized message
 * is found by the 406 above, after it was sent.
 *
 * Flow control: a batch is written whole, whatever the socket still holds. The dispatcher bounds
 * what is in flight (`listener.maxInFlight` messages, 8 MiB of payloads), so that is what the
 * socket can hold while the broker reads slowly or blocks publishing (an alarm).
 *
 * What stays here that looks like timing, and why:
 *  - AMQP heartbeats (rabbitmq-address.ts): amqplib's timer, the only way to notice a broker that
 *    stops answering without closing the socket;
 *  - amqplib's socket timeout bounds connect() (TCP and AMQP handshake), `publisher.ackTimeout`;
 *  - close() waits at most CLOSE_GRACE_MS for the broker's CloseOk, so a hung broker cannot hold
 *    up shutdown.
 *
 * Not mandatory: a message no queue is bound for is confirmed and dropped by RabbitMQ, as with
 * ihippik/wal-listener. Bind queues before the daemon starts if every change must be kept.
 *
 * TLS: an `amqps://` address, or `enableTLS: true` with an `amqp://` one. `caCert` (otherwise the
 * system CAs), `clientCert` and `clientKey` are read at every connect; the broker's certificate is
 * verified against the URL's host name.
 */
import { EventEmitter } from 'node:events';
import { connect as amqpConnect, type ChannelModel, type ConfirmChannel } from 'amqplib';
import type { PublisherConfig } from '../config/schema.js';
import { describeError, PublishError, WalListenerError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { describeMessage, payloadBytes } from '../pipeline/message.js';
import type { OutboundMessage, Publisher, PublisherEvents } from './publisher.js';
import { parseRabbitAddress, socketOptions, withHeartbeat, type RabbitTarget } from './rabbitmq-address.js';
import { AmqpFrameWriter, type AmqpSocket } from './rabbitmq-frames.js';

export { parseRabbitAddress, type RabbitTarget } from './rabbitmq-address.js';

/** Error from amqplib's channel or connection close, with the AMQP reply code and failing method. */
type AmqpError = Error & { code?: number | string; classId?: number; methodId?: number };

const BASIC_CLASS = 60;
const BASIC_PUBLISH = 40;
const SIZE_REASON = /message size (\d+) is larger than/;
const EXCHANGE_REASON = /exchange '((?:[^'\\]|\\.)*)'/;
const CLOSE_GRACE_MS = 2_000;
const ACKED = 1;
const NACKED = 2;

/** A publish() call waiting for its confirms. */
interface Pending {
  readonly batch: readonly OutboundMessage[];
  /** Per message: 0 while the broker has not answered, ACKED or NACKED. */
  readonly confirmed: Uint8Array;
  /** Messages written to the channel: all of them, or none. */
  written: number;
  /** The delivery tag of its first message (the others follow it). */
  firstTag: number;
  /** Messages the broker answered (acked or nacked). */
  answered: number;
  /** The first message not covered by a `multiple` answer yet. */
  covered: number;
  remaining: number;
  settled: boolean;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
  readonly signal: AbortSignal;
  readonly onAbort: () => void;
}

/** Which message of which batch the broker refused, as far as it can be told. */
interface Culprit {
  readonly pending: Pending;
  readonly index: number | undefined;
}

/** What is used of amqplib's connection internals: its socket, frame size and heartbeat flag. */
interface AmqplibConnection {
  stream?: Partial<AmqpSocket>;
  frameMax?: unknown;
  sentSinceLastCheck?: unknown;
}

/** One connection and its confirm channel, with the batches waiting on it. */
class Link {
  readonly pending = new Set<Pending>();
  channel: ConfirmChannel | undefined;
  failure: Error | undefined;
  blocked = false;
  /** Set once the channel is up and the exchange declared. */
  open = false;
  /** A server-side channel close caused by a basic.publish. */
  private refusal: AmqpError | undefined;
  private frames: AmqpFrameWriter | undefined;
  private socket: AmqpSocket | undefined;
  /** amqplib's connection, to tell its heartbeat timer that something was sent. */
  private connection: AmqplibConnection | undefined;
  /** Written batches not fully answered yet, in delivery-tag order (the broker's confirms name tags). */
  private readonly unanswered: Pending[] = [];
  /** The delivery tag of the next message: the broker counts publishes on the channel from 1. */
  private nextTag = 1;

  constructor(
    readonly model: ChannelModel,
    private readonly owner: RabbitMqPublisher,
  ) {
    model.on('error', (err: Error) => this.fail(err));
    model.on('close', (err?: Error) => this.fail(err ?? new Error('connection closed')));
    model.on('blocked', (reason: string) => {
      this.blocked = true;
      owner.log.warn({ reason }, 'RabbitMQ blocked publishing (memory or disk alarm); waiting');
    });
    model.on('unblocked', () => {
      this.blocked = false;
      owner.log.info('RabbitMQ unblocked publishing');
    });
  }

  /**
   * Takes the confirm channel: its confirms come as the channel's 'ack' and 'nack' events, and
   * messages are written as frames straight to the connection's socket (rabbitmq-frames.ts).
   */
  attach(channel: ConfirmChannel): void {
    this.channel = channel;
    channel.on('error', (err: AmqpError) => {
      if (err.classId === BASIC_CLASS && err.methodId === BASIC_PUBLISH) this.refusal = err;
      this.fail(err);
    });
    // When the connection closes, amqplib closes the channel first and emits the connection's
    // 'close' (which carries the broker's reason) right after: let that reason win.
    channel.on('close', () => queueMicrotask(() => this.fail(new Error('channel closed'))));
    channel.on('ack', (fields: { deliveryTag: number; multiple: boolean }) => this.answer(fields.deliveryTag, fields.multiple, ACKED));
    channel.on('nack', (fields: { deliveryTag: number; multiple: boolean }) => this.answer(fields.deliveryTag, fields.multiple, NACKED));
    const connection = (this.model as unknown as { connection?: AmqplibConnection }).connection;
    const socket = connection?.stream;
    const number = (channel as unknown as { ch?: unknown }).ch;
    const frameMax = connection?.frameMax;
    if (typeof socket?.write !== 'function' || typeof socket.cork !== 'function' || typeof socket.uncork !== 'function' || typeof number !== 'number' || typeof frameMax !== 'number' || !(frameMax > 8)) {
      throw new WalListenerError('WAL_INTERNAL', "amqplib's connection has no socket, frame size or channel number where this version of wal-listener expects them (an unsupported amqplib version)");
    }
    this.socket = socket as AmqpSocket;
    this.connection = connection;
    this.frames = new AmqpFrameWriter(this.socket, number, frameMax, this.owner.topic);
  }

  get usable(): boolean {
    return this.open && this.failure === undefined && !this.blocked;
  }

  /**
   * Writes a batch's messages, all or none. The socket keeps what the broker does not take yet:
   * the dispatcher bounds what is in flight (messages and bytes).
   */
  write(entry: Pending): void {
    if (entry.settled || this.failure) return;
    const socket = this.socket!;
    if (socket.destroyed || !socket.writable) {
      this.fail(new Error('connection closed'));
      return;
    }
    const result = this.frames!.write(entry.batch);
    if (!result.sent) {
      const message = entry.batch[result.index];
      // amqplib would refuse it the same way (a name or property too long, headers over 64 KiB): it can never be sent.
      this.settle(entry, new PublishError(`cannot publish the message for ${describeMessage(message)} (id ${message?.id}): ${result.reason}`, false, { rejected: result.index }));
      return;
    }
    entry.firstTag = this.nextTag;
    entry.written = entry.batch.length;
    this.nextTag += entry.written;
    this.unanswered.push(entry);
    // amqplib sends a heartbeat only when nothing else was sent since its last check.
    const connection = this.connection!;
    if (typeof connection.sentSinceLastCheck === 'boolean') connection.sentSinceLastCheck = true;
  }

  /** The broker's ack or nack of delivery tag `tag` (and, with `multiple`, of every one before it). */
  private answer(tag: number, multiple: boolean, how: number): void {
    const list = this.unanswered;
    for (let k = 0; k < list.length; k++) {
      const entry = list[k]!;
      const first = entry.firstTag;
      if (first > tag) break;
      const last = first + entry.written - 1;
      if (!multiple) {
        if (tag <= last) {
          this.answerOne(entry, tag - first, how);
          break;
        }
        continue;
      }
      const upTo = Math.min(last, tag) - first;
      for (let i = entry.covered; i <= upTo; i++) this.answerOne(entry, i, how);
      entry.covered = Math.max(entry.covered, upTo + 1);
    }
    let done = 0;
    while (done < list.length && list[done]!.answered === list[done]!.written) done++;
    if (done > 0) list.splice(0, done);
  }

  private answerOne(entry: Pending, index: number, how: number): void {
    if (entry.confirmed[index] !== 0) return;
    entry.confirmed[index] = how;
    entry.answered++;
    if (entry.settled) return;
    if (how === NACKED) {
      this.settle(entry, new PublishError(`RabbitMQ nacked the message for ${describeMessage(entry.batch[index])} (a queue refused it, e.g. full with x-overflow reject-publish, or an internal broker error)`, true));
    } else if (--entry.remaining === 0) this.settle(entry, null);
  }

  settle(entry: Pending, err: unknown): void {
    if (entry.settled) return;
    entry.settled = true;
    this.pending.delete(entry);
    entry.signal.removeEventListener('abort', entry.onAbort);
    if (err === null) entry.resolve();
    else entry.reject(err);
  }

  /**
   * The link is dead (the first reason wins): every batch waiting on it rejects, the culprit of a
   * refusal first, the connection is closed, and the publisher reports the loss.
   */
  fail(reason: Error): void {
    if (this.failure) return;
    this.failure = reason;
    const culprit = this.culprit();
    for (const entry of [...this.pending]) this.settle(entry, this.errorFor(entry, culprit));
    this.model.close().catch(() => undefined); // already closed, or the broker may not answer: nothing to wait for
    this.owner.linkFailed(this, reason);
  }

  private errorFor(entry: Pending, culprit: Culprit | null): WalListenerError {
    const refusal = this.refusal;
    const reason = this.failure!;
    if (refusal && culprit?.pending === entry) {
      const index = culprit.index;
      const message = index === undefined ? undefined : entry.batch[index];
      const what = message ? `the message for ${describeMessage(message)} (id ${message.id})` : `a message of ${entry.batch.length} (first at LSN ${entry.batch[0]?.lsn}; found by re-sending them one by one)`;
      return new PublishError(`RabbitMQ refused ${what}: ${refusalText(refusal)}`, false, { cause: refusal, ...(index === undefined ? {} : { rejected: index }) });
    }
    if (refusal && refusal.code === 403 && exchangeNamed(refusal) === this.owner.topic) {
      return new WalListenerError('WAL_PUBLISH_CONFIG', `RabbitMQ refuses publishing to exchange ${JSON.stringify(this.owner.topic)}: ${refusalText(refusal)}`, { cause: refusal });
    }
    return new PublishError(`RabbitMQ did not confirm ${entry.batch.length} message(s) (first at LSN ${entry.batch[0]?.lsn}): ${describeError(reason)}`, true, { cause: reason });
  }

  /** The message a refusal was about, when it can be told (see the file header). */
  private culprit(): Culprit | null {
    const refusal = this.refusal;
    if (!refusal) return null;
    const size = SIZE_REASON.exec(refusal.message)?.[1];
    if (size !== undefined) return this.firstUnconfirmed((m) => payloadBytes(m) === Number(size), false);
    const exchange = exchangeNamed(refusal);
    if (exchange !== undefined) {
      // The topic exchange concerns every message (missing or forbidden): a setup matter, not a message's.
      if (exchange === this.owner.topic) return null;
      return this.firstUnconfirmed((m) => m.exchange === exchange, false);
    }
    return this.firstUnconfirmed(() => true, true);
  }

  /**
   * The first written, unconfirmed message that matches, in write order. `alone`: only when every
   * such message is in one batch (then the index only when it is the only one).
   */
  private firstUnconfirmed(match: (message: OutboundMessage) => boolean, alone: boolean): Culprit | null {
    let found: Culprit | null = null;
    for (const entry of this.pending) {
      for (let i = 0; i < entry.written; i++) {
        if (entry.confirmed[i] || !match(entry.batch[i]!)) continue;
        if (!alone) return { pending: entry, index: i };
        if (found === null) found = { pending: entry, index: i };
        else if (found.pending !== entry) return null;
        else found = { pending: entry, index: undefined };
      }
    }
    return found;
  }

  /** Closes the connection, waiting at most CLOSE_GRACE_MS for the broker's answer. */
  async close(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        (this.model.connection as { stream?: { destroy(): void } }).stream?.destroy();
        resolve();
      }, CLOSE_GRACE_MS);
    });
    await Promise.race([this.model.close().catch(() => undefined), grace]);
    clearTimeout(timer);
  }
}

function exchangeNamed(refusal: AmqpError): string | undefined {
  return EXCHANGE_REASON.exec(refusal.message)?.[1];
}

function refusalText(err: AmqpError): string {
  const text = /with message "(.*)"$/.exec(err.message)?.[1] ?? err.message;
  return SIZE_REASON.test(text) ? `${text} (raise max_message_size on the broker)` : text;
}

export class RabbitMqPublisher implements Publisher {
  /** Payloads are copied into frames or held until the socket wrote them (rabbitmq-frames.ts). */
  readonly releasesPayloads = true;
  readonly kind = 'rabbitmq';
  readonly events = new EventEmitter<PublisherEvents>();
  readonly topic: string;
  private parsedTarget: RabbitTarget | undefined;
  private link: Link | undefined;
  private opening: Promise<void> | undefined;
  /** A link was open before: the next one is a restoration. */
  private everOpen = false;
  private closed = false;
  private warnedTls = false;

  constructor(
    private readonly settings: PublisherConfig,
    readonly log: Logger,
  ) {
    this.topic = settings.topic;
  }

  private get target(): RabbitTarget {
    this.parsedTarget ??= parseRabbitAddress(this.settings.address, this.settings.enableTLS);
    return this.parsedTarget;
  }

  connect(): Promise<void> {
    if (this.closed) return Promise.reject(new PublishError('rabbitmq publisher is closed', true));
    if (this.link?.open && this.link.failure === undefined) return Promise.resolve();
    this.opening ??= this.open().finally(() => {
      this.opening = undefined;
    });
    return this.opening;
  }

  private async open(): Promise<void> {
    const target = this.target; // throws WAL_PUBLISH_CONFIG for a bad address
    const timeout = this.settings.ackTimeout > 0 ? this.settings.ackTimeout : 30_000;
    const options = await socketOptions(this.settings, target, timeout, (message) => {
      if (!this.warnedTls) this.log.warn(message);
      this.warnedTls = true;
    });
    let link: Link;
    try {
      link = new Link(await amqpConnect(withHeartbeat(target.url), options), this);
    } catch (err) {
      throw this.connectError(err);
    }
    try {
      const channel = await link.model.createConfirmChannel();
      link.attach(channel);
      await channel.assertExchange(this.topic, this.settings.exchangeKind, { durable: true });
    } catch (err) {
      link.fail(err instanceof Error ? err : new Error(String(err)));
    }
    if (link.failure) throw this.connectError(link.failure);
    if (this.closed) {
      link.fail(new Error('rabbitmq publisher closed'));
      throw new PublishError('rabbitmq publisher is closed', true);
    }
    link.open = true;
    this.link = link;
    this.log.info({ address: target.safeUrl, exchange: this.topic, kind: this.settings.exchangeKind }, 'connected to RabbitMQ');
    if (this.everOpen) this.events.emit('restored');
    this.everOpen = true;
  }

  private connectError(err: unknown): WalListenerError {
    if (err instanceof WalListenerError) return err;
    const text = describeError(err);
    const target = this.target.safeUrl;
    if (/ACCESS[-_]REFUSED|Expected ConnectionOpenOk|NOT[-_]ALLOWED/.test(text)) {
      return new WalListenerError('WAL_PUBLISH_CONFIG', `RabbitMQ at ${target} refused the login or the virtual host: ${text}`, { cause: err });
    }
    if (/PRECONDITION[-_]FAILED/.test(text)) {
      return new WalListenerError('WAL_PUBLISH_CONFIG', `exchange ${JSON.stringify(this.topic)} exists with other settings than a durable ${this.settings.exchangeKind} exchange: ${text}`, { cause: err });
    }
    return new PublishError(`cannot connect to RabbitMQ at ${target}: ${text}`, true, { cause: err });
  }

  /** Called by a link that died: the current one's loss is reported once. */
  linkFailed(link: Link, reason: Error): void {
    if (link !== this.link || !link.open || this.closed) return;
    this.log.warn({ err: describeError(reason) }, 'RabbitMQ connection lost');
    this.events.emit('lost', reason);
  }

  maxPayloadBytes(): number {
    return Infinity;
  }

  publish(batch: readonly OutboundMessage[], signal: AbortSignal): Promise<void> {
    if (this.closed) return Promise.reject(new PublishError('rabbitmq publisher is closed', true));
    if (batch.length === 0) return Promise.resolve();
    if (signal.aborted) return Promise.reject(signal.reason);
    const link = this.link;
    if (!link?.open || link.failure) return Promise.reject(new PublishError(`RabbitMQ at ${this.target.safeUrl} is not connected`, true));
    return new Promise<void>((resolve, reject) => {
      const entry: Pending = {
        batch,
        confirmed: new Uint8Array(batch.length),
        written: 0,
        firstTag: 0,
        answered: 0,
        covered: 0,
        remaining: batch.length,
        settled: false,
        resolve,
        reject,
        signal,
        onAbort: () => link.settle(entry, signal.reason),
      };
      signal.addEventListener('abort', entry.onAbort, { once: true });
      link.pending.add(entry);
      link.write(entry);
    });
  }

  healthy(): boolean {
    return !this.closed && this.link !== undefined && this.link.usable;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // A connection still being opened is closed by open() as soon as it completes.
    const link = this.link;
    if (!link || link.failure) return;
    for (const entry of [...link.pending]) link.settle(entry, new PublishError('rabbitmq publisher closed before the broker confirmed', true));
    await link.close();
  }
}
