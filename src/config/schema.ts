/**
 * The configuration schema: wal-listener's YAML keys (camelCase), validated strictly.
 * Keys marked "+" in DESIGN.md are ours; everything else matches ihippik/wal-listener.
 */
import { z } from 'zod';
import { parseDuration } from './duration.js';
import { pgqSection } from './pgq.js';

/** A duration such as "30s" or "1m30s", turned into milliseconds. */
const duration = (fallback: string) =>
  z
    .union([z.string(), z.number()])
    .default(fallback)
    .transform((value, ctx) => {
      const ms = typeof value === 'number' ? value * 1000 : parseDuration(value);
      if (ms === undefined || ms < 0) {
        ctx.addIssue({ code: 'custom', message: `expected a duration such as "30s" or "1m30s", got ${JSON.stringify(value)}` });
        return z.NEVER;
      }
      return ms;
    });

export const ACTIONS = ['insert', 'update', 'delete', 'truncate'] as const;
export type Action = (typeof ACTIONS)[number];

const action = z
  .string()
  .transform((s) => s.toLowerCase())
  .pipe(z.enum(ACTIONS, { error: () => `expected one of ${ACTIONS.join(', ')}` }));

const port = z.number().int().min(0).max(65535);

const listener = z.strictObject({
  slotName: z
    .string({ error: (issue) => (issue.input === undefined ? 'is required' : 'expected a string') })
    .regex(/^[a-z0-9_]{1,63}$/, 'must be 1–63 lower-case letters, digits or underscores (a PostgreSQL slot name)'),
  publication: z.string().min(1).default('wal-listener'),
  serverPort: port.default(0),
  refreshConnection: duration('30s'),
  heartbeatInterval: duration('10s'),
  /** Accepted for compatibility with ihippik/wal-listener, which ignores it too. */
  ackTimeout: duration('0s').optional(),
  filter: z
    .strictObject({
      tables: z.record(z.string().min(1), z.array(action).nullable().default([...ACTIONS])).optional(),
    })
    .prefault({}),
  topicsMap: z.record(z.string(), z.string().min(1)).default({}),
  /** + Upper bound on changes published but not yet acknowledged by the broker. */
  maxInFlight: z.number().int().min(1).max(1_000_000).default(4096),
  /** + How long SIGTERM waits for in-flight acknowledgements before giving up. */
  shutdownTimeout: duration('30s'),
});

const logger = z
  .strictObject({
    level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
    fmt: z.enum(['json', 'text']).default('json'),
  })
  .prefault({});

const database = z.strictObject({
  host: z.string().min(1).default('localhost'),
  port: port.default(5432),
  name: z.string().min(1).default('postgres'),
  user: z.string().min(1).default('postgres'),
  password: z.string().default(''),
  /** Accepted for compatibility with ihippik/wal-listener; ignored. */
  debug: z.boolean().optional(),
  sslMode: z.enum(['disable', 'prefer', 'require', 'verify-ca', 'verify-full']).default('disable'),
  sslRootCert: z.string().optional(),
  sslCert: z.string().optional(),
  sslKey: z.string().optional(),
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
  ackTimeout: duration('30s'),
}).superRefine((value, ctx) => {
  if (value.type === 'google_pubsub' && value.pubSubProjectId === '') {
    ctx.addIssue({ code: 'custom', path: ['pubSubProjectId'], message: 'is required for publisher.type google_pubsub' });
  }
  if ((value.type === 'kafka' || value.type === 'rabbitmq') && value.address === '') {
    ctx.addIssue({ code: 'custom', path: ['address'], message: `is required for publisher.type ${value.type}` });
  }
});

const monitoring = z
  .strictObject({
    sentryDSN: z.string().default(''),
    promAddr: z.string().default(''),
  })
  .prefault({});

export const configSchema = z.strictObject({
  source: z.strictObject({ type: z.enum(['postgres', 'mysql', 'pgq']).default('postgres') }).prefault({}),
  listener,
  logger,
  database: database.prefault({}),
  publisher,
  monitoring,
  pgq: pgqSection(duration).optional(),
});

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
