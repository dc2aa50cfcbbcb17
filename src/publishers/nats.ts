/**
 * NATS JetStream publisher. Ensures stream `<topic>` with subjects `<topic>.>`, publishes every
 * message with `Nats-Msg-Id` = event id, and resolves a batch once JetStream has acknowledged all
 * of it.
 *
 * Fast path (measured: ≈136k msg/s vs ≈30k with one js.publish() promise per message): a batch's
 * HPUB frames, reply subject `<inbox>.<batch>`, written as bytes in one go through the client's
 * protocol handler (nats-frames.ts; the client's `nc.publish` per message when its internals are
 * not as expected); one subscription on `<inbox>.*` counts the PubAcks per batch and checks each
 * for an error. Connection state comes from the client's status
 * stream (it reconnects by itself): `lost` on disconnect, `restored` on reconnect.
 */
import { EventEmitter } from 'node:events';
import { connect, createInbox, headers as natsHeaders, type Msg, type MsgHdrs, type NatsConnection, type NodeConnectionOptions, type Subscription } from '@nats-io/transport-node';
import { jetstreamManager, type StreamInfo } from '@nats-io/jetstream';
import type { PublisherConfig } from '../config/schema.js';
import { PublishError, WalListenerError, describeError } from '../errors.js';
import type { Finding } from '../findings.js';
import type { Logger } from '../observability/logger.js';
import { describeMessage, payloadBuffer } from '../pipeline/message.js';
import { NatsAckReader } from './nats-ack-reader.js';
import { NatsFrameWriter } from './nats-frames.js';
import { MsgIdHeader } from './nats-msg-id-header.js';
import type { OutboundMessage, Publisher, PublisherEvents } from './publisher.js';

interface PendingBatch {
  remaining: number;
  error: WalListenerError | null;
  batch: readonly OutboundMessage[];
  resolve(): void;
  reject(err: unknown): void;
  signal: AbortSignal;
  onAbort(): void;
}

const NANOS_PER_MS = 1_000_000;
/** Protocol bytes around a message's payload and headers that count against max_payload, generously. */
const FRAME_OVERHEAD = 256;

export class NatsPublisher implements Publisher {
  /** Payloads are copied into frames, or held until the socket wrote them (nats-frames.ts), or held for good (the client's publish()). */
  readonly releasesPayloads = true;
  readonly kind = 'nats';
  readonly events = new EventEmitter<PublisherEvents>();
  private nc: NatsConnection | null = null;
  /** Writes a batch's frames in one go (nats-frames.ts); null: the client's publish(), per message. */
  private frames: NatsFrameWriter | null = null;
  private subscription: Subscription | null = null;
  /** Reads the acks off the connection's bytes (nats-ack-reader.ts); null: the subscription's callback gets them. */
  private ackReader: NatsAckReader | null = null;
  private inbox = '';
  private batchSeq = 0;
  private readonly pending = new Map<number, PendingBatch>();
  private connected = false;
  private closed = false;
  private connecting: Promise<void> | null = null;
  /** The stream's max_msg_size (-1: none). */
  private streamMaxMsg = -1;

  constructor(
    private readonly config: PublisherConfig,
    private readonly log: Logger,
  ) {}

  connect(): Promise<void> {
    if (this.closed) return Promise.reject(new PublishError('NATS publisher is closed', true));
    const nc = this.nc;
    if (nc !== null && !nc.isClosed()) {
      // The client reconnects by itself; `restored` tells the pipeline when it is back.
      return this.connected ? Promise.resolve() : Promise.reject(new PublishError('NATS is reconnecting', true));
    }
    this.connecting ??= this.open().finally(() => {
      this.connecting = null;
    });
    return this.connecting;
  }

  private async open(): Promise<void> {
    const servers = this.servers();
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers,
        name: 'wal-listener',
        reconnect: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        waitOnFirstConnect: false,
        ...this.tlsOptions(),
      });
    } catch (err) {
      throw new PublishError(`cannot connect to NATS at ${this.shownServers()}: ${describeError(err)}`, true, { cause: err });
    }
    try {
      await this.ensureStream(nc);
    } catch (err) {
      await nc.close().catch(() => {});
      if (err instanceof WalListenerError) throw err;
      if (/jetstream not enabled|10039/i.test(describeError(err))) {
        throw new WalListenerError('WAL_PUBLISH_CONFIG', `JetStream is not enabled on the NATS server at ${this.shownServers()} (start nats-server with -js): ${describeError(err)}`, { cause: err });
      }
      throw new PublishError(`cannot set up JetStream stream ${this.config.topic}: ${describeError(err)}`, true, { cause: err });
    }
    const reconnected = this.nc !== null;
    this.nc = nc;
    const protocol = NatsFrameWriter.protocolOf(nc);
    this.frames = protocol === null ? null : new NatsFrameWriter(protocol);
    this.inbox = createInbox();
    this.subscription = nc.subscribe(`${this.inbox}.*`, { callback: (_err, msg) => this.onAck(msg) });
    this.ackReader = NatsAckReader.install(nc, this.subscription, this.inbox, (seq, buf, start, end) => this.onAckBytes(seq, buf, start, end));
    this.connected = true;
    void this.watch(nc);
    if (reconnected) this.events.emit('restored');
  }

  /** For `wal-listener check`: the server and the stream as they are; nothing is created. */
  async describe(): Promise<Finding[]> {
    const servers = this.servers();
    const shown = this.shownServers();
    let nc: NatsConnection;
    try {
      nc = await connect({ servers, name: 'wal-listener check', reconnect: false, timeout: 5_000, ...this.tlsOptions() });
    } catch (err) {
      return [{ status: 'problem', subject: 'NATS', detail: `not reachable at ${shown}: ${describeError(err)}`, fix: 'check publisher.address and that nats-server runs' }];
    }
    const stream = `NATS stream ${this.config.topic}`;
    try {
      const findings: Finding[] = [{ status: 'ok', subject: 'NATS', detail: `reachable at ${shown} (server ${nc.info?.server_name ?? ''} ${nc.info?.version ?? ''}, max_payload ${nc.info?.max_payload ?? '?'} bytes)` }];
      const jsm = await jetstreamManager(nc).catch((err: unknown) => {
        findings.push({ status: 'problem', subject: 'NATS JetStream', detail: describeError(err), fix: 'start nats-server with JetStream (-js)' });
        return null;
      });
      if (!jsm) return findings;
      const info = await jsm.streams.info(this.config.topic).catch((err: unknown) => {
        if (/not found/i.test(describeError(err))) return null;
        throw err;
      });
      const subject = `${this.config.topic}.>`;
      if (info === null) findings.push({ status: 'ok', subject: stream, detail: `absent; the first start creates it with subjects ${subject}` });
      else if (!(info.config.subjects ?? []).some((s) => s === subject || s === '>')) {
        findings.push({ status: 'warn', subject: stream, detail: `exists with subjects ${(info.config.subjects ?? []).join(', ')}, not ${subject}: events on subjects it does not cover are retried until it does`, fix: `add ${subject} to the stream's subjects` });
      } else {
        findings.push({ status: 'ok', subject: stream, detail: `exists: subjects ${(info.config.subjects ?? []).join(', ')}, ${info.state.messages} messages, max_msg_size ${info.config.max_msg_size ?? -1}, duplicate window ${Math.round((info.config.duplicate_window ?? 0) / NANOS_PER_MS)} ms` });
      }
      return findings;
    } finally {
      await nc.close().catch(() => {});
    }
  }

  /** The servers for messages: credentials (user:password, or a token) shown as `***`. */
  private shownServers(): string {
    return this.servers()
      .map((s) => s.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^@/]*@/i, '$1***@'))
      .join(',');
  }

  private servers(): string[] {
    return (this.config.address || '127.0.0.1:4222').split(',').map((s) => s.trim()).filter(Boolean);
  }

  private tlsOptions(): Partial<NodeConnectionOptions> {
    const { enableTLS, caCert, clientCert, clientKey } = this.config;
    if (!enableTLS && !caCert && !clientCert) return {};
    return {
      tls: {
        ...(caCert ? { caFile: caCert } : {}),
        ...(clientCert ? { certFile: clientCert } : {}),
        ...(clientKey ? { keyFile: clientKey } : {}),
      },
    };
  }

  private async ensureStream(nc: NatsConnection): Promise<void> {
    const name = this.config.topic;
    const subject = `${name}.>`;
    const jsm = await jetstreamManager(nc);
    let info: StreamInfo | null = null;
    try {
      info = await jsm.streams.info(name);
    } catch (err) {
      if (!/not found/i.test(describeError(err))) throw err;
    }
    const window = this.config.duplicateWindow * NANOS_PER_MS;
    if (info === null) {
      info = await jsm.streams.add({ name, subjects: [subject], duplicate_window: window });
      this.log.info({ stream: name, subjects: [subject], duplicateWindowMs: this.config.duplicateWindow }, 'created JetStream stream');
    } else {
      const subjects = info.config.subjects ?? [];
      if (!subjects.includes(subject) && !subjects.includes('>')) {
        this.log.warn({ stream: name, subjects }, `JetStream stream ${name} does not list subject ${subject}; events on subjects it does not cover are retried until it does`);
      }
      if ((info.config.duplicate_window ?? 0) < window) {
        this.log.warn(
          { stream: name, duplicateWindowMs: Math.round((info.config.duplicate_window ?? 0) / NANOS_PER_MS), wantedMs: this.config.duplicateWindow },
          'existing stream has a shorter duplicate window than publisher.duplicateWindow; redeliveries after a long outage may be stored twice',
        );
      }
    }
    this.streamMaxMsg = info.config.max_msg_size ?? -1;
  }

  private async watch(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') {
        if (!this.connected) continue;
        this.connected = false;
        this.events.emit('lost', new Error(`disconnected from NATS ${status.server}`));
      } else if (status.type === 'reconnect') {
        this.connected = true;
        this.events.emit('restored');
      }
    }
  }

  maxPayloadBytes(message: OutboundMessage): number {
    const maxPayload = this.nc?.info?.max_payload ?? Infinity;
    const headerBytes = message.headers === null ? 64 : 64 + JSON.stringify(message.headers).length;
    const overhead = FRAME_OVERHEAD + headerBytes + message.subject.length;
    const limit = this.streamMaxMsg > 0 ? Math.min(maxPayload, this.streamMaxMsg) : maxPayload;
    return limit - overhead;
  }

  publish(batch: readonly OutboundMessage[], signal: AbortSignal): Promise<void> {
    if (batch.length === 0) return Promise.resolve();
    if (this.closed) return Promise.reject(new PublishError('NATS publisher is closed', true));
    const nc = this.nc;
    if (nc === null || nc.isClosed() || !this.connected) return Promise.reject(new PublishError('NATS is not connected', true));
    if (signal.aborted) return Promise.reject(signal.reason);
    const seq = ++this.batchSeq;
    const reply = `${this.inbox}.${seq}`;
    return new Promise<void>((resolve, reject) => {
      const entry: PendingBatch = {
        remaining: batch.length,
        error: null,
        batch,
        resolve,
        reject,
        signal,
        onAbort: () => {
          this.pending.delete(seq);
          reject(signal.reason);
        },
      };
      signal.addEventListener('abort', entry.onAbort, { once: true });
      this.pending.set(seq, entry);
      const frames = this.frames;
      if (frames !== null) {
        if (nc.isDraining()) {
          this.finish(seq, entry);
          reject(new PublishError('NATS connection is draining', true));
          return;
        }
        let written;
        try {
          written = frames.write(batch, reply, nc.info?.max_payload ?? Infinity);
        } catch (err) {
          this.finish(seq, entry);
          reject(new PublishError(`NATS publish failed: ${describeError(err)}`, true, { cause: err }));
          return;
        }
        if (!written.sent) {
          this.finish(seq, entry);
          reject(new PublishError(`${written.reason} for ${describeMessage(batch[written.index])}`, false, { rejected: written.index }));
        }
        return;
      }
      let i = 0;
      try {
        for (; i < batch.length; i++) {
          const message = batch[i]!;
          // nats-core keeps the payload queued (across a reconnect, too): its chunk is never reused.
          message.lease?.hold();
          // Buffer.from takes small strings from Node's pool: cheaper than nats-core's TextEncoder.
          nc.publish(message.subject, payloadBuffer(message), { headers: headersOf(message), reply });
        }
      } catch (err) {
        this.finish(seq, entry);
        reject(publishError(err, batch, i));
      }
    });
  }

  private finish(seq: number, entry: PendingBatch): void {
    this.pending.delete(seq);
    entry.signal.removeEventListener('abort', entry.onAbort);
  }

  /** An ack as the client delivers it (HMSG statuses, or every ack when the ack reader is not installed). */
  private onAck(msg: Msg): void {
    const subject = msg.subject;
    const seq = Number(subject.slice(subject.lastIndexOf('.') + 1));
    const entry = this.pending.get(seq);
    if (entry === undefined) return; // a batch that was aborted
    this.settle(seq, entry, msg.headers?.hasError ? statusError(msg.headers, entry) : ackError(msg.data));
  }

  /** An ack read off the connection by the ack reader: batch `seq`, payload buf[start..end) (no headers). */
  private onAckBytes(seq: number, buf: Uint8Array, start: number, end: number): void {
    const entry = this.pending.get(seq);
    if (entry === undefined) return; // a batch that was aborted
    this.settle(seq, entry, isPubAck(buf, start, end) ? null : ackError(buf.slice(start, end)));
  }

  private settle(seq: number, entry: PendingBatch, error: WalListenerError | null): void {
    if (error !== null && entry.error === null) entry.error = error;
    if (--entry.remaining > 0) return;
    this.finish(seq, entry);
    if (entry.error !== null) entry.reject(entry.error);
    else entry.resolve();
  }

  /** PubAcks read straight off the connection's bytes (nats-ack-reader.ts); 0 when the reader is not installed. For tests and debugging. */
  directAcks(): number {
    return this.ackReader?.direct ?? 0;
  }

  healthy(): boolean {
    return this.connected && this.nc !== null && !this.nc.isClosed();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const connected = this.connected;
    this.connected = false;
    for (const [seq, entry] of this.pending) {
      this.finish(seq, entry);
      entry.reject(new PublishError('NATS publisher closed before the broker acknowledged', true));
    }
    this.ackReader?.uninstall();
    this.ackReader = null;
    this.subscription?.unsubscribe();
    const nc = this.nc;
    this.nc = null;
    if (nc) {
      // Draining needs the server; while it is away the client would wait for a reconnect attempt
      // first (≈0.3 s of a shutdown budget), and there is nothing it could flush anyway.
      if (connected) await nc.drain().catch(() => nc.close());
      else await nc.close();
    }
  }
}

/** The client refused message `index` (too large for max_payload: it will never fit) or the connection failed. */
function publishError(err: unknown, batch: readonly OutboundMessage[], index: number): PublishError {
  const text = describeError(err);
  if (/max_payload|MAX_PAYLOAD|payload.*exceed/i.test(text)) {
    return new PublishError(`NATS refuses a message of ${payloadBuffer(batch[index]!).length} bytes (over the server's max_payload) for ${describeMessage(batch[index])}`, false, { cause: err, rejected: index });
  }
  return new PublishError(`NATS publish failed: ${text}`, true, { cause: err });
}

/** `{"stream":`: how a PubAck without an error starts (nats-server writes `error` first when there is one). */
const PUBACK_START = Buffer.from('{"stream":', 'latin1');

/** A success PubAck (`duplicate` ones too): a cheap look at its first bytes instead of a JSON parse. */
function isPubAck(data: Uint8Array, start = 0, end = data.length): boolean {
  const n = PUBACK_START.length;
  if (end - start <= n) return false;
  for (let i = 0; i < n; i++) if (data[start + i] !== PUBACK_START[i]) return false;
  return true;
}

/**
 * A reply with a status header instead of a PubAck: no stream takes the subject → 503. Acks of
 * one batch arrive in publish order (one connection, one stream), so the n-th ack answers the
 * n-th message.
 */
function statusError(headers: MsgHdrs, entry: PendingBatch): WalListenerError {
  const code = headers.code;
  return new PublishError(
    code === 503 ? `no JetStream stream takes subject ${entry.batch[0]?.subject} or a later one of the batch (NATS 503 no responders)` : `NATS replied ${code} ${headers.description} to a publish`,
    true,
  );
}

/** A PubAck's payload, `{"stream":…,"seq":…}` (maybe `"duplicate":true`) or `{"error":{…}}`: the error, if any. */
function ackError(data: Uint8Array): WalListenerError | null {
  if (isPubAck(data)) return null;
  const text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8');
  let ack: { error?: { code?: number; err_code?: number; description?: string } } | null;
  try {
    ack = JSON.parse(text) as typeof ack;
  } catch {
    return new PublishError(`unreadable JetStream ack: ${text.slice(0, 200)}`, true);
  }
  if (ack === null || typeof ack !== 'object') return new PublishError(`unreadable JetStream ack: ${text.slice(0, 200)}`, true);
  if (!ack.error) return null;
  const { code, err_code: errCode, description } = ack.error;
  const what = `${description ?? 'error'} (code ${code}, err_code ${errCode})`;
  // 10054 "message size exceeds maximum allowed": the stream will never take it. Which message of
  // the batch it was is not said (acks carry no id): the pipeline re-sends one by one to find it.
  if (errCode === 10054) return new PublishError(`JetStream rejected a message: ${what}`, false);
  if (errCode === 10039) return new WalListenerError('WAL_PUBLISH_CONFIG', `JetStream is not enabled for this account: ${what}`);
  return new PublishError(`JetStream rejected a message: ${what}`, true);
}

/** Nats-Msg-Id for change events (prebuilt bytes); with a routed message's headers and key, general headers. */
function headersOf(message: OutboundMessage): MsgHdrs {
  if (message.headers === null) return new MsgIdHeader(message.id);
  const h = natsHeaders();
  h.set('Nats-Msg-Id', message.id);
  if (message.keyHeader && message.key) h.set('key', message.key);
  for (const [name, value] of Object.entries(message.headers)) h.append(name, value);
  return h;
}
