/**
 * The configuration schema: wal-listener's YAML keys (camelCase), validated strictly.
 * Keys marked "+" in DESIGN.md are ours; everything else matches ihippik/wal-listener.
 */
import { z } from 'zod';
import { brokerNameIssues } from './broker-names.js';
import { checkBrokerSettings } from './broker-settings.js';
import { consoleSection } from './console.js';
import { formatDuration, parseDuration } from './duration.js';
import { parseListenAddress, type ListenAddress } from './listen-address.js';
import { mysqlSection } from './mysql.js';
import { outboxSection } from './outbox.js';
import { checkSourceSections, sourceSection, withSlotName } from './source.js';
import { pgqSection } from './pgq.js';

/** The longest delay a Node.js timer takes (2^31-1 ms, about 24.8 days); a longer one fires at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface DurationBounds {
  min?: number;
  max?: number;
  /** Said when the value is 0 and 0 is below `min`. */
  zero?: string;
}

/** A duration such as "30s" or "1m30s" (a bare number: seconds), turned into milliseconds, within bounds. */
const duration = (fallback: string, bounds: DurationBounds = {}) =>
  z
    .union([z.string(), z.number()], { error: (issue) => `expected a duration such as "30s" or "1m30s", got ${JSON.stringify(issue.input)}` })
    .default(fallback)
    .transform((value, ctx) => {
      const ms = typeof value === 'number' ? value * 1000 : parseDuration(value);
      const fail = (message: string): never => {
        ctx.addIssue({ code: 'custom', message });
        return z.NEVER;
      };
      if (ms === undefined || ms < 0) return fail(`expected a duration such as "30s" or "1m30s", got ${JSON.stringify(value)}`);
      const min = bounds.min ?? 0;
      const max = Math.min(bounds.max ?? MAX_TIMER_MS, MAX_TIMER_MS);
      if (ms < min) return fail(`must be at least ${formatDuration(min)}, got ${JSON.stringify(value)}${ms === 0 && bounds.zero ? ` (${bounds.zero})` : ''}`);
      const why = max === MAX_TIMER_MS ? ' (a Node.js timer cannot wait longer than about 24.8 days)' : '';
      if (ms > max) return fail(`must be at most ${formatDuration(max)}${why}, got ${JSON.stringify(value)}`);
      return ms;
    });

/** The shortest period that is not a busy loop, for reconnects, heartbeats and acknowledgements. */
const MIN_PERIOD_MS = 100;

export const ACTIONS = ['insert', 'update', 'delete', 'truncate'] as const;
export type Action = (typeof ACTIONS)[number];

const action = z
  .string()
  .transform((s) => s.toLowerCase())
  .pipe(z.enum(ACTIONS, { error: () => `expected one of ${ACTIONS.join(', ')}` }));

const port = z.number().int().min(1).max(65535);

/** A bare port (0 = off, as in ihippik/wal-listener), or ":port" / "host:port" to bind one interface. */
const serverAddress = z
  .union([z.number(), z.string()], { error: (issue) => `expected a port or "<host>:<port>", got ${JSON.stringify(issue.input)}` })
  .default(0)
  .transform((value, ctx): ListenAddress | null => {
    const text = String(value).trim();
    try {
      if (/^\d+$/.test(text) && Number(text) === 0) return null;
      return parseListenAddress(text);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

const EMPTY_FILTER = 'is empty, so every change would be dropped; remove the key to publish every table';

const listener = z.strictObject({
  slotName: z
    .string({ error: 'expected a string' })
    .regex(/^[a-z0-9_]{1,63}$/, 'must be 1–63 lower-case letters, digits or underscores (a PostgreSQL slot name)')
    .optional(),
  publication: z.string().min(1).default('wal-listener'),
  /** /healthz and /ready: a port (every interface), ":port" or "host:port"; 0 or absent = off. */
  serverPort: serverAddress,
  refreshConnection: duration('30s', { min: MIN_PERIOD_MS }),
  heartbeatInterval: duration('10s', { min: MIN_PERIOD_MS, max: 3_600_000, zero: 'the standby status would be sent in a busy loop' }),
  /** Accepted for compatibility with ihippik/wal-listener, which ignores it too. */
  ackTimeout: duration('0s').optional(),
  filter: z
    .strictObject({
      tables: z
        .record(z.string().min(1), z.array(action).nullable().default([...ACTIONS]))
        .nullable()
        .transform((tables, ctx) => {
          if (tables === null || Object.keys(tables).length === 0) {
            ctx.addIssue({ code: 'custom', message: EMPTY_FILTER });
            return z.NEVER;
          }
          return tables;
        })
        .optional(),
    })
    .prefault({}),
  topicsMap: z.record(z.string(), z.string().min(1)).default({}),
  /** + Tables whose inserted rows are messages (DESIGN.md "Outbox"). */
  outbox: outboxSection,
  /** + Upper bound on changes published but not yet acknowledged by the broker. */
  maxInFlight: z.number().int().min(1).max(1_000_000).default(4096),
  /** + How long SIGTERM waits for in-flight acknowledgements before giving up (inside Kubernetes' 30 s grace). */
  shutdownTimeout: duration('20s', { max: 600_000 }),
  /** + PostgreSQL 17+: the slot is created (or altered) with FAILOVER, so standbys that sync slots keep it. */
  failoverSlot: z.boolean().default(false),
  /** + Snapshots (DESIGN.md "Snapshots"): tables read in the slot's exported snapshot when the daemon creates the slot. */
  snapshot: z
    .strictObject({
      initial: z.array(z.string().regex(/^[^."\s]+\.[^."\s]+$/, 'expected "schema.table"')).default([]),
      /** Rows per chunk (initial snapshot and the default of `wal-listener backfill --chunk`). */
      chunkSize: z.number().int().min(1).max(1_000_000).default(2000),
    })
    .prefault({}),
});

const logger = z
  .strictObject({
    level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
    fmt: z.enum(['json', 'text']).default('json'),
    /** + How often an info line sums up events published, lag and in-flight (and says idle/flowing again). */
    progressInterval: duration('1m', { min: 1000 }),
  })
  .prefault({});

const SSL_MODES = ['disable', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;

const database = z.strictObject({
  host: z.string().min(1).default('localhost'),
  port: port.default(5432),
  name: z.string().min(1).default('postgres'),
  user: z.string().min(1).default('postgres'),
  password: z.string().default(''),
  /** Accepted for compatibility with ihippik/wal-listener; ignored. */
  debug: z.boolean().optional(),
  /**
   * ihippik/wal-listener's switch: false = plain text whatever sslMode says; true = sslMode
   * (default require). Absent: sslMode alone decides (default disable).
   */
  enableTLS: z.boolean().optional(),
  sslMode: z.enum(SSL_MODES).optional(),
  sslRootCert: z.string().optional(),
  sslCert: z.string().optional(),
  sslKey: z.string().optional(),
}).transform((db, ctx) => {
  let sslMode = db.sslMode ?? (db.enableTLS ? 'require' : 'disable');
  if (db.enableTLS === false) sslMode = 'disable';
  else if (db.enableTLS === true && sslMode === 'disable') {
    ctx.addIssue({ code: 'custom', path: ['sslMode'], message: '"disable" contradicts database.enableTLS: true; use prefer, require, verify-ca or verify-full, or set enableTLS: false' });
    return z.NEVER;
  }
  return { ...db, enableTLS: sslMode !== 'disable', sslMode };
});

const publisher = z.strictObject({
  type: z.enum(['nats', 'kafka', 'rabbitmq', 'google_pubsub', 'stdout']),
  address: z.string().default(''),
  topic: z.string({ error: (issue) => (issue.input === undefined ? 'is required' : 'expected a string') }).min(1),
  topicPrefix: z.string().default(''),
  messageKeyFrom: z.string().default(''),
  exchangeKind: z.enum(['direct', 'fanout', 'topic', 'headers']).default('topic'),
  pubSubProjectId: z.string().default(''),
  /** + google_pubsub: create missing topics instead of stopping with an error. */
  createTopics: z.boolean().default(false),
  enableTLS: z.boolean().default(false),
  clientCert: z.string().optional(),
  clientKey: z.string().optional(),
  caCert: z.string().optional(),
  /** + kafka: SASL authentication. */
  sasl: z
    .strictObject({
      mechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']),
      username: z.string(),
      password: z.string(),
    })
    .optional(),
  /** + nats: JetStream duplicate window; must cover a restart so redelivered changes are dropped. */
  duplicateWindow: duration('1h'),
  /** + How long to wait for a broker acknowledgement before the publish counts as failed and is retried. */
  ackTimeout: duration('30s', { min: MIN_PERIOD_MS, zero: '0 does not turn the timeout off; a publish needs time to be acknowledged' }),
  /** + native: DESIGN.md's value shapes; compat: ihippik/wal-listener v2.11's, for its existing consumers. */
  eventFormat: z.enum(['native', 'compat']).default('native'),
  /** + What a message the broker will never accept gets: stop the daemon, or a row in wal_listener.dead_letters. */
  onReject: z.enum(['stop', 'deadLetter']).optional(),
}).superRefine((value, ctx) => {
  if (value.type === 'google_pubsub' && value.pubSubProjectId === '') {
    ctx.addIssue({ code: 'custom', path: ['pubSubProjectId'], message: 'is required for publisher.type google_pubsub' });
  }
  if ((value.type === 'kafka' || value.type === 'rabbitmq') && value.address === '') {
    ctx.addIssue({ code: 'custom', path: ['address'], message: `is required for publisher.type ${value.type}` });
  }
  checkBrokerSettings(value, ctx);
});

const monitoring = z
  .strictObject({
    sentryDSN: z.string().default(''),
    promAddr: z
      .string()
      .default('')
      .superRefine((text, ctx) => {
        try {
          parseListenAddress(text);
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: (err as Error).message });
        }
      }),
  })
  .prefault({});

export const configSchema = z
  .strictObject({
    source: sourceSection,
    listener: listener.prefault({}),
    logger,
    database: database.prefault({}),
    mysql: mysqlSection.optional(),
    pgq: pgqSection(duration).optional(),
    publisher,
    monitoring,
    /** + live browser console and SSE feed (src/config/console.ts); off by default. */
    console: consoleSection,
  })
  .superRefine(checkSourceSections)
  .superRefine((config, ctx) => {
    for (const issue of brokerNameIssues(config.publisher, config.listener.topicsMap)) ctx.addIssue({ code: 'custom', ...issue });
    // One port serves probes and metrics together only when both name the same interface.
    const probes = config.listener.serverPort;
    const metrics = parseListenAddress(config.monitoring.promAddr);
    if (probes && metrics && probes.port === metrics.port && probes.port !== 0 && probes.host !== metrics.host) {
      ctx.addIssue({ code: 'custom', path: ['monitoring', 'promAddr'], message: `names port ${metrics.port} like listener.serverPort but another host; use the same host in both, or another port` });
    }
  }, { when: (payload) => payload.issues.length === 0 })
  .transform(withSlotName);

export type Config = z.output<typeof configSchema>;
export type ListenerConfig = Config['listener'];
export type DatabaseConfig = Config['database'];
export type PublisherConfig = Config['publisher'];
export type PublisherType = PublisherConfig['type'];
export type PgqConfig = NonNullable<Config['pgq']>;

/** Keys ihippik/wal-listener documents but ignores; accepted with a warning. */
export const IGNORED_KEYS = ['database.debug', 'listener.ackTimeout'] as const;

/** snake_case spellings from ihippik/wal-listener's config_example.yml, read as their camelCase key. */
export const KEY_ALIASES: Record<string, Record<string, string>> = {
  publisher: { enable_tls: 'enableTLS', client_cert: 'clientCert', client_key: 'clientKey', ca_cert: 'caCert' },
};
