/**
 * The live feed behind `/events` and `/console`: a tap on the events the broker acknowledged (the
 * `acked` observer hook, one call per batch), written to each connected Server-Sent Events client
 * whose filter matches. It never applies back-pressure; a client is disconnected (dropped) when
 *   - stalled: more than SLOW_CLIENT_BUFFER unsent and its socket took nothing for a whole
 *     second (checked by the once-a-second tick: a burst of a large transaction does not drop a
 *     client that reads, a client that stopped reading goes within about 2 s);
 *   - too far behind: more than MAX_CLIENT_BUFFER unsent (a client reading slower than the feed);
 *   - furthest behind while all clients together have more than MAX_TOTAL_BUFFER unsent.
 * Unsent frames are references to the shared frames, so stuck clients mostly hold the same bytes.
 * A stuck browser costs the pipeline what its kernel socket buffers took before it was found out
 * (measured in bench/console-clients.ts), and memory stays bounded.
 *
 * Per change, one frame is built once (only when some client wants it) and the same Buffer is
 * written to every matching client; nothing is copied per client. With no client connected the
 * hook only counts.
 *
 * Frame of a change (SSE, https://html.spec.whatwg.org/multipage/server-sent-events.html):
 *   id: <event id>
 *   key: <message key, as Kafka's>      (an extra field: EventSource ignores it; the console reads it)
 *   data: <the event JSON, as published>
 * Routed messages (outbox, PgQ) are not change events: their data is
 *   {"id","schema","table","action":"MESSAGE","subject","key","payload":"<payload as text>"}.
 * Clients that ask for `stats` also get `event: stats` once a second (throughput, lag, state).
 */
import type { ServerResponse } from 'node:http';
import type { OutboundMessage } from '../pipeline/message.js';
import type { DaemonState, PipelineObserver } from '../pipeline/observer.js';
import type { Logger } from './logger.js';

/** Unsent bytes (Node's and ours, not the kernel's) above which a client that made no progress for a second is dropped. */
export const SLOW_CLIENT_BUFFER = 1024 * 1024;
/** Unsent bytes of one client above which it is dropped at once. */
export const MAX_CLIENT_BUFFER = 4 * 1024 * 1024;
/** Unsent bytes of all clients together above which the furthest behind are dropped. */
export const MAX_TOTAL_BUFFER = 32 * 1024 * 1024;
/** Bytes a drained client is given at once from its queue. */
const FLUSH_BYTES = 256 * 1024;
/** Seconds of stats history sent to a new console (its sparklines start filled). */
const HISTORY = 60;
/** A comment line to every client this often, so proxies keep idle streams open. */
const KEEPALIVE_MS = 15_000;

/** What one client wants: tables (`table` any schema, `schema.table` exactly) and actions; null = all. */
export interface FeedFilter {
  readonly tables: ReadonlySet<string> | null;
  /** Upper case (INSERT, UPDATE, ...). */
  readonly actions: ReadonlySet<string> | null;
}

export interface Stats {
  /** Seconds since the epoch. */
  t: number;
  /** Events acknowledged per second (all tables). */
  rate: number;
  /** Commit-to-acknowledgement latency in ms, the worst of the last second (null: nothing acked). */
  latencyMs: number | null;
  /** Bytes between the source's newest and confirmed positions, when the source reports it. */
  lagBytes: number | null;
  total: number;
  state: DaemonState;
  publisher: { ok: boolean; reason: string };
  clients: number;
  dropped: number;
}

/**
 * One SSE stream. Node's own write buffer is kept to about one highWaterMark (16 KiB): while the
 * socket needs a drain, frames wait in `pending` (references to the shared frames, no copies) and
 * go out on 'drain'. Dropping a client then discards a plain array; a Node stream holding
 * thousands of queued writes would build an error object per write when destroyed (measured:
 * 20 stuck clients cost the daemon 9x its CPU that way).
 */
class Client {
  private pending: (Buffer | string)[] = [];
  private next = 0;
  private pendingBytes = 0;
  /** 'drain' events so far, and at the last tick: progress. */
  drains = 0;
  drainsAtTick = 0;

  constructor(
    readonly res: ServerResponse,
    readonly filter: FeedFilter,
    readonly stats: boolean,
    readonly remote: string,
  ) {
    res.on('drain', () => {
      this.drains++;
      this.flush();
    });
  }

  matches(message: OutboundMessage): boolean {
    const { tables, actions } = this.filter;
    if (actions !== null && !actions.has(message.action)) return false;
    return tables === null || tables.has(message.table) || tables.has(`${message.schema}.${message.table}`);
  }

  /** Unsent bytes: waiting here and in Node's buffers (not the kernel's). */
  get buffered(): number {
    return this.res.writableLength + this.pendingBytes;
  }

  write(chunk: Buffer | string): void {
    if (this.pendingBytes === 0 && !this.res.writableNeedDrain) this.res.write(chunk);
    else {
      this.pending.push(chunk);
      this.pendingBytes += byteLength(chunk);
    }
  }

  /** Writes what waits, up to FLUSH_BYTES in Node's buffer: one writev of that size, not many of 16 KiB. */
  private flush(): void {
    const socket = this.res.socket;
    socket?.cork();
    while (this.next < this.pending.length && this.res.writableLength < FLUSH_BYTES) {
      const chunk = this.pending[this.next++]!;
      this.pendingBytes -= byteLength(chunk);
      this.res.write(chunk);
    }
    socket?.uncork();
    if (this.next === this.pending.length) {
      this.pending = [];
      this.next = 0;
    } else if (this.next > 4096) {
      this.pending = this.pending.slice(this.next);
      this.next = 0;
    }
  }

  discard(): void {
    this.pending = [];
    this.next = 0;
    this.pendingBytes = 0;
  }
}

export interface ConsoleFeedOptions {
  maxClients: number;
  logger: Logger;
  /** Unsent bytes above which a client without progress for a second is dropped (default SLOW_CLIENT_BUFFER). */
  slowBuffer?: number;
  /** Unsent bytes above which a client is dropped at once (default MAX_CLIENT_BUFFER). */
  maxBuffer?: number;
  /** Unsent bytes of all clients above which the furthest behind are dropped (default MAX_TOTAL_BUFFER). */
  maxTotalBuffer?: number;
}

export class ConsoleFeed {
  private readonly clients = new Set<Client>();
  private readonly slowBuffer: number;
  private readonly maxBuffer: number;
  private readonly maxTotalBuffer: number;
  private total = 0;
  private lastTotal = 0;
  private lastTick = Date.now();
  private worstLatency: number | null = null;
  private lagBytes: number | null = null;
  private state: DaemonState = 'starting';
  private health: () => { ok: boolean; reason: string } = () => ({ ok: false, reason: 'publisher not connected yet' });
  private readonly history: Stats[] = [];
  private timer: NodeJS.Timeout | undefined;
  private lastKeepalive = Date.now();
  /** Clients dropped for not reading (since start). */
  dropped = 0;
  /** Clients refused because maxClients were connected (since start). */
  refused = 0;

  constructor(private readonly options: ConsoleFeedOptions) {
    this.slowBuffer = options.slowBuffer ?? SLOW_CLIENT_BUFFER;
    this.maxBuffer = options.maxBuffer ?? MAX_CLIENT_BUFFER;
    this.maxTotalBuffer = options.maxTotalBuffer ?? MAX_TOTAL_BUFFER;
  }

  get size(): number {
    return this.clients.size;
  }

  get full(): boolean {
    return this.clients.size >= this.options.maxClients;
  }

  observer(): Required<Pick<PipelineObserver, 'acked' | 'lag' | 'state' | 'health'>> {
    return {
      acked: (messages) => this.acked(messages),
      lag: (bytes) => {
        this.lagBytes = bytes;
      },
      state: (state) => {
        this.state = state;
      },
      health: (check) => {
        this.health = check;
      },
    };
  }

  /** Starts the once-a-second stats tick. */
  start(): void {
    this.timer = setInterval(() => this.tick(), 1000);
    this.timer.unref();
  }

  /** Ends every stream and stops the tick. */
  stop(): void {
    clearInterval(this.timer);
    for (const client of this.clients) client.res.end();
    this.clients.clear();
  }

  /** Registers a response whose SSE headers were sent; it leaves the feed when its connection closes. */
  add(res: ServerResponse, filter: FeedFilter, stats: boolean, remote: string): void {
    const client = new Client(res, filter, stats, remote);
    this.clients.add(client);
    res.once('close', () => this.clients.delete(client));
    if (stats) {
      // The recent history at once, so the sparklines and the state show before the first tick.
      const now = this.snapshot();
      for (const entry of [...this.history, now]) client.write(`event: stats\ndata: ${JSON.stringify(entry)}\n\n`);
    }
  }

  /** The published messages of one acknowledged batch. Never throws, never waits. */
  private acked(messages: readonly OutboundMessage[]): void {
    this.total += messages.length;
    const committedAt = messages[0]?.committedAt;
    if (committedAt !== undefined && !Number.isNaN(committedAt)) {
      const latency = Math.max(0, Date.now() - committedAt);
      if (this.worstLatency === null || latency > this.worstLatency) this.worstLatency = latency;
    }
    if (this.clients.size === 0) return;
    try {
      this.send(messages);
    } catch (err) {
      this.options.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'console feed: writing to clients failed');
    }
  }

  private send(messages: readonly OutboundMessage[]): void {
    const frames: (Buffer | undefined)[] = new Array(messages.length);
    for (const client of this.clients) {
      const socket = client.res.socket;
      let corked = false;
      for (let i = 0; i < messages.length; i++) {
        const message = messages[i]!;
        if (!client.matches(message)) continue;
        if (!corked && socket) {
          // One write (writev) per client per batch instead of one per frame.
          socket.cork();
          corked = true;
        }
        client.write((frames[i] ??= frame(message)));
      }
      if (corked) socket!.uncork();
      if (client.buffered > this.maxBuffer) this.drop(client, 'limit');
    }
    this.enforceTotal();
  }

  /** Drops the clients furthest behind while all together have more than maxTotalBuffer unsent. */
  private enforceTotal(): void {
    let total = 0;
    for (const client of this.clients) total += client.buffered;
    while (total > this.maxTotalBuffer) {
      let furthest: Client | undefined;
      for (const client of this.clients) if (furthest === undefined || client.buffered > furthest.buffered) furthest = client;
      if (furthest === undefined) return;
      total -= furthest.buffered;
      this.drop(furthest, 'total');
    }
  }

  private drop(client: Client, why: 'stalled' | 'limit' | 'total'): void {
    this.clients.delete(client);
    this.dropped++;
    const reason = {
      stalled: `more than ${this.slowBuffer} bytes unsent and none taken for a second`,
      limit: `more than ${this.maxBuffer} bytes unsent`,
      total: `furthest behind while all clients had more than ${this.maxTotalBuffer} bytes unsent`,
    }[why];
    this.options.logger.warn({ client: client.remote, bufferedBytes: client.buffered, reason }, 'console client dropped: it does not read its event stream fast enough');
    client.discard();
    client.res.destroy();
  }

  private snapshot(): Stats {
    const now = Date.now();
    const seconds = Math.max(0.001, (now - this.lastTick) / 1000);
    return {
      t: Math.round(now / 1000),
      rate: Math.round((this.total - this.lastTotal) / seconds),
      latencyMs: this.worstLatency,
      lagBytes: this.lagBytes,
      total: this.total,
      state: this.state,
      publisher: this.health(),
      clients: this.clients.size,
      dropped: this.dropped,
    };
  }

  private tick(): void {
    const stats = this.snapshot();
    this.lastTick = Date.now();
    this.lastTotal = this.total;
    this.worstLatency = null;
    this.history.push(stats);
    if (this.history.length > HISTORY) this.history.shift();
    if (this.clients.size === 0) return;
    const keepalive = this.lastTick - this.lastKeepalive >= KEEPALIVE_MS;
    if (keepalive) this.lastKeepalive = this.lastTick;
    const text = `event: stats\ndata: ${JSON.stringify(stats)}\n\n`;
    for (const client of this.clients) {
      const stalled = client.drains === client.drainsAtTick && client.buffered > this.slowBuffer;
      client.drainsAtTick = client.drains;
      if (stalled) this.drop(client, 'stalled');
      else if (client.stats) client.write(text);
      else if (keepalive) client.write(': keepalive\n\n');
    }
  }
}

/** One SSE frame for a message: built once, written to every matching client. */
function frame(message: OutboundMessage): Buffer {
  const head = `id: ${message.id}\nkey: ${oneLine(message.key)}\ndata: `;
  if (message.action !== 'MESSAGE') {
    const payload = typeof message.payload === 'string' ? message.payload : message.payload.toString('utf8');
    return Buffer.from(`${head}${oneLine(payload)}\n\n`);
  }
  const routed = {
    id: message.id,
    schema: message.schema,
    table: message.table,
    action: message.action,
    subject: message.subject,
    key: message.key,
    payload: typeof message.payload === 'string' ? message.payload : message.payload.toString('utf8'),
  };
  return Buffer.from(`${head}${JSON.stringify(routed)}\n\n`);
}

/** SSE fields end at a line break; event JSON has none (JSON escapes them), other text might. */
function oneLine(text: string): string {
  return text.includes('\n') || text.includes('\r') ? text.replace(/\r\n|\r|\n/g, ' ') : text;
}

function byteLength(chunk: Buffer | string): number {
  return typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
}
