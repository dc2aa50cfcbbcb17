/**
 * createConsumer(): registrations, lifecycle (start, reconnect, stop) and the wiring of a broker
 * adapter to the shared dispatcher. Startup: connect and set up the broker objects, then deliver.
 * Shutdown, in this order: stop fetching, release what has not started, let running handlers
 * finish and acknowledge, disconnect.
 */
import { Backoff, sleep } from '../pipeline/backoff.js';
import type { AdapterContext, BrokerAdapter, DeliverySink } from './adapters/adapter.js';
import { MemoryDedupWindow } from './dedup.js';
import { createDecoder } from './decode.js';
import { Dispatcher } from './dispatch.js';
import { BrokerConnectionError, ConsumerConfigError, describe } from './errors.js';
import { settingsOf, subjectOf, tableName, type Settings } from './options.js';
import type { Consumer, ConsumerOptions, ConsumerStats, Handler, Row } from './types.js';

/**
 * Creates a consumer of wal-listener events for one broker. Register handlers with `on()`, then
 * `start()`. Throws ConsumerConfigError for wrong options.
 *
 * @example
 * const consumer = createConsumer({ broker: 'nats', servers: 'localhost:4222', topic: 'wal_listener', name: 'billing', tables });
 * consumer.on<PublicUsers>('public.users', async (change) => { … });
 * await consumer.start();
 */
export function createConsumer(options: ConsumerOptions): Consumer {
  return new WalConsumer(options, settingsOf(options));
}

const NO_STATS: ConsumerStats = { received: 0, handled: 0, duplicates: 0, retries: 0, deadLettered: 0, ignored: 0 };

class WalConsumer implements Consumer {
  private readonly handlers = new Map<string, Handler>();
  private state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new';
  private adapter: BrokerAdapter | undefined;
  private dispatcher: Dispatcher | undefined;
  private shutdown: Promise<void> | undefined;
  private reconnecting = false;
  private readonly stopSignal = new AbortController();
  readonly closed: Promise<void>;
  private settleClosed!: (error?: Error) => void;

  constructor(
    private readonly options: ConsumerOptions,
    private readonly settings: Settings,
  ) {
    this.closed = new Promise<void>((resolve, reject) => {
      this.settleClosed = (error) => (error ? reject(error) : resolve());
    });
    // Awaiting `closed` later (or never, with onError) must not be an unhandled rejection.
    this.closed.catch(() => undefined);
  }

  get stats(): ConsumerStats {
    return this.dispatcher?.stats ?? NO_STATS;
  }

  on<T = Row>(table: string, handler: Handler<T>): this {
    if (this.state !== 'new') throw new ConsumerConfigError(`on("${table}") after start(): register every handler first`);
    tableName(`on("${table}")`, table);
    if (typeof handler !== 'function') throw new ConsumerConfigError(`on("${table}"): the handler must be a function`);
    if (this.handlers.has(table)) throw new ConsumerConfigError(`on("${table}"): a handler for ${table} is registered already`);
    this.handlers.set(table, handler as Handler);
    return this;
  }

  async start(): Promise<void> {
    if (this.state !== 'new') throw new ConsumerConfigError('start() was called already');
    if (this.handlers.size === 0) throw new ConsumerConfigError('no handler registered: call on("schema.table", handler) before start()');
    this.state = 'starting';
    const { options, settings } = this;
    this.dispatcher = new Dispatcher({
      decode: createDecoder({ format: settings.format, decimal: options.decimal, tables: options.tables ?? {} }),
      handlers: this.handlers,
      concurrency: settings.concurrency,
      maxAttempts: settings.maxAttempts,
      initialDelayMs: settings.initialDelayMs,
      maxDelayMs: settings.maxDelayMs,
      dedup: options.dedupStore ?? new MemoryDedupWindow(settings.dedupWindow),
      onError: (error) => this.report(error),
      fatal: (error) => void this.close(error),
    });
    const tables = [...this.handlers.keys()];
    const context: AdapterContext = { tables, subjects: [...new Set(tables.map((t) => subjectOf(options, t)))], prefetch: settings.prefetch };
    const adapter = await createAdapter(options, context);
    this.adapter = adapter;
    try {
      await adapter.start(this.sink);
    } catch (err) {
      await adapter.close().catch(() => undefined);
      this.state = 'stopped';
      this.settleClosed();
      throw err;
    }
    // stop() during start() found the adapter still connecting.
    if (this.state !== 'starting') return void (await adapter.close().catch(() => undefined));
    this.state = 'running';
  }

  stop(): Promise<void> {
    return this.close(undefined);
  }

  private readonly sink: DeliverySink = {
    deliver: (delivery) => this.dispatcher!.deliver(delivery),
    lost: (error) => void this.reconnect(error),
  };

  private close(error: Error | undefined): Promise<void> {
    this.shutdown ??= (async () => {
      const wasStarted = this.state !== 'new';
      this.state = 'stopping';
      this.stopSignal.abort();
      if (wasStarted && this.adapter) {
        await this.adapter.stopFetching().catch(() => undefined);
        await this.dispatcher!.drain(this.settings.stopTimeoutMs);
        await this.adapter.close().catch(() => undefined);
      }
      this.state = 'stopped';
      if (error) this.report(error);
      this.settleClosed(error);
    })();
    return this.shutdown;
  }

  /** The adapter lost its connection for good: start it again with capped backoff until it works or we stop. */
  private async reconnect(cause: Error): Promise<void> {
    if (this.state !== 'running' || this.reconnecting) return;
    this.reconnecting = true;
    this.report(new BrokerConnectionError('WAL_CONSUMER_CONNECTION_LOST', `${this.options.broker} connection lost, reconnecting: ${describe(cause)}`, { cause }));
    const backoff = new Backoff({ initialMs: 500, maxMs: 30_000 });
    const adapter = this.adapter!;
    await adapter.close().catch(() => undefined);
    while (this.state === 'running') {
      await sleep(backoff.next(), this.stopSignal.signal);
      if (this.state !== 'running') break;
      try {
        await adapter.start(this.sink);
        // stop() may have run while this connected: its close found nothing to close yet.
        if (this.state !== 'running') await adapter.close().catch(() => undefined);
        break;
      } catch (err) {
        this.report(err as Error);
        await adapter.close().catch(() => undefined);
      }
    }
    this.reconnecting = false;
  }

  private report(error: Error): void {
    try {
      this.options.onError?.(error);
    } catch {
      // A throwing onError must not break the consumer.
    }
  }
}

/** Loads only the chosen broker's client library. */
async function createAdapter(options: ConsumerOptions, context: AdapterContext): Promise<BrokerAdapter> {
  switch (options.broker) {
    case 'nats':
      return (await import('./adapters/nats.js')).natsAdapter(options, context);
    case 'kafka':
      return (await import('./adapters/kafka.js')).kafkaAdapter(options, context);
    case 'rabbitmq':
      return (await import('./adapters/rabbitmq.js')).rabbitMqAdapter(options, context);
    case 'google_pubsub':
      return (await import('./adapters/google-pubsub.js')).pubSubAdapter(options, context);
  }
}
