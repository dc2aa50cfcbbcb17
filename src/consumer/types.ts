/** Public types of the consumer SDK (`wal-listener/consumer`). */
import type { Timestamp } from './timestamp.js';

/** A decoded row: column name → value. */
export type Row = Record<string, unknown>;

/** Any JSON value as decoded (integers beyond 2^53 as bigint). */
export type JsonValue = null | boolean | number | bigint | string | JsonValue[] | { [key: string]: JsonValue };

export type Action = 'INSERT' | 'UPDATE' | 'DELETE' | 'TRUNCATE' | 'SNAPSHOT';

/** One row change, decoded. `T` is the row type (see `wal-listener typegen`). */
export interface Change<T = Row> {
  /** Event id: the same on every delivery of the same change. */
  readonly id: string;
  readonly action: Action;
  readonly schema: string;
  readonly table: string;
  /**
   * The old row or old key, when the source sent one (key changes and deletes; the whole row with
   * REPLICA IDENTITY FULL); null otherwise. With the default replica identity a DELETE's `before`
   * holds only the key columns (compat events: every column, the non-key ones null).
   */
  readonly before: T | null;
  /** The new row (INSERT, UPDATE, SNAPSHOT); null for DELETE and TRUNCATE. */
  readonly after: T | null;
  /** Commit LSN of the transaction ("0/1A2B3C4"; "" when the event has none). */
  readonly lsn: string;
  /** Transaction id, when the event has one. */
  readonly xid: number | undefined;
  /** Commit time (a Date; `.text` and {@link Change.commitTimeText} keep the microseconds). */
  readonly commitTime: Timestamp;
  /** Commit time exactly as published, e.g. "2024-02-29T08:15:56.123456Z". */
  readonly commitTimeText: string;
  /** Columns left out of `after` because they were unchanged TOAST values (not sent by PostgreSQL). */
  readonly unchangedToast: readonly string[];
}

/** Passed to a handler with each change. */
export interface HandlerContext {
  /** 1 on the first try; counts up while the handler is retried. */
  readonly attempt: number;
}

/** Handles one change. Resolve to acknowledge it; throw (or reject) to have it retried. */
export type Handler<T = Row> = (change: Change<T>, context: HandlerContext) => unknown;

/**
 * PostgreSQL type names of a table's columns, and its key columns. Type names are pg_type names
 * (`int8`, `numeric`, `timestamptz`, `bytea`, `text[]`, …; `wal-listener typegen` writes them);
 * a few SQL spellings (`bigint`, `integer`, `timestamp with time zone`) are understood too.
 * Columns of unknown or unlisted types keep their JSON value.
 */
export interface TableTypes {
  readonly columns: Readonly<Record<string, string>>;
  /**
   * Key columns (primary key or replica identity). NATS and RabbitMQ carry no message key, so the
   * consumer orders by these; without them a whole table is one key (still correct, less parallel).
   */
  readonly key?: readonly string[];
}

/** `"schema.table"` → its column types. */
export type ColumnTypeMap = Readonly<Record<string, TableTypes>>;

/**
 * Remembers which event ids were handled, to skip redeliveries. The default is an in-memory window
 * of the latest ids ({@link ConsumerOptionsBase.dedupWindow}). A store shared by restarts (a
 * database table written in the handler's transaction, Redis) makes dedup exact across them.
 */
export interface DedupStore {
  has(id: string): boolean | Promise<boolean>;
  add(id: string, change: Change): void | Promise<void>;
}

export interface RetryOptions {
  /** Tries per change, the first included (default 5). */
  readonly maxAttempts?: number;
  /** Delay before the second try (default 200 ms); doubles up to `maxDelayMs`, ±25% jitter. */
  readonly initialDelayMs?: number;
  /** Longest delay between tries (default 10 s). */
  readonly maxDelayMs?: number;
}

/** Options every broker shares. */
export interface ConsumerOptionsBase {
  /**
   * The daemon's `publisher.topic`: NATS stream, RabbitMQ exchange, and the first part of every
   * subject (Kafka and Pub/Sub topics are `<topic>.<topicPrefix><schema>_<table>`).
   */
  readonly topic: string;
  /** The daemon's `publisher.topicPrefix` (default ""). */
  readonly topicPrefix?: string;
  /** The daemon's `listener.topicsMap` (`{ public_users: "users" }`). */
  readonly topicsMap?: Readonly<Record<string, string>>;
  /**
   * Consumer name, durable across restarts: the NATS durable consumer, the Kafka group id, the
   * RabbitMQ queue, and the prefix of the Pub/Sub subscriptions (`<name>-<topic>`).
   */
  readonly name: string;
  /** The daemon's `publisher.eventFormat` (default "native"). */
  readonly format?: 'native' | 'compat';
  /** Column types per table, for typed values (see `wal-listener typegen`). */
  readonly tables?: ColumnTypeMap;
  /** Turns a `numeric` text into your decimal type (default: keep the exact string). */
  readonly decimal?: (text: string) => unknown;
  /** Handlers running at once, over different keys (default 16). Changes of one key never overlap. */
  readonly concurrency?: number;
  readonly retry?: RetryOptions;
  /** Event ids remembered in memory to skip redeliveries (default 100,000). Ignored with `dedupStore`. */
  readonly dedupWindow?: number;
  /** A store for exact dedup (see {@link DedupStore}). */
  readonly dedupStore?: DedupStore;
  /** Messages fetched ahead of the handlers (NATS, RabbitMQ, Pub/Sub; default 512). */
  readonly prefetch?: number;
  /** How long stop() waits for running handlers (default 30 s). */
  readonly stopTimeoutMs?: number;
  /**
   * Told about problems the consumer handles itself: a handler try that failed (retried), a message
   * dead-lettered, a lost connection (reconnected). Fatal errors reject `consumer.closed` instead.
   */
  readonly onError?: (error: Error) => void;
}

export interface NatsConsumerOptions extends ConsumerOptionsBase {
  readonly broker: 'nats';
  /** Server list, "host:port" or an array of them. */
  readonly servers: string | readonly string[];
  /** More @nats-io/transport-node connection options (user, pass, token, tls, …). */
  readonly connection?: Record<string, unknown>;
  /** JetStream ack wait of the durable consumer (default 30 s); retries keep the message alive. */
  readonly ackWaitMs?: number;
  /**
   * What to do with a change whose handler failed every try: terminate it (`term`, which emits the
   * JetStream advisory `$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.<stream>.<name>`) after
   * publishing a copy to `subject` if given. Absent: the consumer stops instead.
   */
  readonly deadLetter?: { readonly subject?: string };
}

export interface KafkaConsumerOptions extends ConsumerOptionsBase {
  readonly broker: 'kafka';
  /** Broker list, "host:port,host:port" or an array. */
  readonly brokers: string | readonly string[];
  /** More kafkajs client options (ssl, sasl, clientId, …). */
  readonly kafka?: Record<string, unknown>;
  /** More kafkajs consumer options (sessionTimeout, rebalanceTimeout, heartbeatInterval, …). */
  readonly consumer?: Record<string, unknown>;
  /** Where a new group starts: the oldest retained message (default true) or only new ones. */
  readonly fromBeginning?: boolean;
  /** Partitions handled at once (default 4). */
  readonly partitionsConsumedConcurrently?: number;
  /** Topic for changes whose handler failed every try (with headers `error`, `source-topic`, …). Absent: the consumer stops instead. */
  readonly deadLetterTopic?: string;
}

export interface RabbitMqConsumerOptions extends ConsumerOptionsBase {
  readonly broker: 'rabbitmq';
  /** amqp:// or amqps:// URL (default login guest/guest). */
  readonly url: string;
  /** More amqplib socket options (TLS files, …). */
  readonly socket?: Record<string, unknown>;
  /** The daemon's `publisher.exchangeKind` (default "topic"). */
  readonly exchangeKind?: 'direct' | 'fanout' | 'topic' | 'headers';
  /**
   * Exchange that receives changes whose handler failed every try (the queue is declared with
   * `x-dead-letter-exchange`; the exchange is declared as a durable fanout with a queue
   * `<name>.dead-letter` bound to it). Absent: the consumer stops instead.
   */
  readonly deadLetterExchange?: string;
}

export interface PubSubConsumerOptions extends ConsumerOptionsBase {
  readonly broker: 'google_pubsub';
  /** The daemon's `publisher.pubSubProjectId`. */
  readonly projectId: string;
  /** More @google-cloud/pubsub client options (apiEndpoint, emulatorMode, credentials, …). */
  readonly client?: Record<string, unknown>;
  /**
   * Topic for changes whose handler failed every try: the consumer publishes them there (with
   * attributes `error` and `subscription`) and acknowledges them; new subscriptions also get it as
   * their dead-letter policy, which catches messages of a consumer that keeps crashing. Absent: the
   * consumer stops instead.
   */
  readonly deadLetterTopic?: string;
  /** Delivery attempts before Pub/Sub itself dead-letters a message (default 10, 5–100). */
  readonly maxDeliveryAttempts?: number;
}

export type ConsumerOptions = NatsConsumerOptions | KafkaConsumerOptions | RabbitMqConsumerOptions | PubSubConsumerOptions;

/** Counters since start(). */
export interface ConsumerStats {
  /** Messages received from the broker (redeliveries included). */
  readonly received: number;
  /** Changes whose handler resolved. */
  readonly handled: number;
  /** Redeliveries skipped because their id was handled already. */
  readonly duplicates: number;
  /** Handler tries that failed and were retried. */
  readonly retries: number;
  /** Changes handed to the dead-letter destination. */
  readonly deadLettered: number;
  /** Events of tables without a handler (acknowledged, not handled). */
  readonly ignored: number;
}

export interface Consumer {
  /**
   * Registers the handler of a table (`"schema.table"`), before start(). Its changes are handled
   * one at a time per row key, in the order the broker delivers them.
   */
  on<T = Row>(table: string, handler: Handler<T>): this;
  /** Connects, creates what is missing (durable consumer, queue and bindings, subscriptions) and starts handling. */
  start(): Promise<void>;
  /** Stops fetching, waits for running handlers (up to `stopTimeoutMs`), acknowledges them and disconnects. */
  stop(): Promise<void>;
  /**
   * Resolves after stop(); rejects with the error that stopped the consumer by itself (e.g.
   * HandlerFailedError, also given to `onError`). Await it, or give `onError`, to learn why.
   */
  readonly closed: Promise<void>;
  readonly stats: ConsumerStats;
}
