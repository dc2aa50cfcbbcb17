/** Checks createConsumer() options, fills defaults, and names the broker subjects of tables. */
import { ConsumerConfigError } from './errors.js';
import type { ConsumerOptions } from './types.js';

export interface Settings {
  readonly format: 'native' | 'compat';
  readonly concurrency: number;
  readonly maxAttempts: number;
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly dedupWindow: number;
  readonly prefetch: number;
  readonly stopTimeoutMs: number;
}

const REQUIRED: Readonly<Record<ConsumerOptions['broker'], string>> = { nats: 'servers', kafka: 'brokers', rabbitmq: 'url', google_pubsub: 'projectId' };

/** Validated settings with defaults; throws ConsumerConfigError naming the option. */
export function settingsOf(options: ConsumerOptions): Settings {
  if (typeof options !== 'object' || options === null) throw new ConsumerConfigError('createConsumer() needs an options object');
  const required = REQUIRED[options.broker];
  if (required === undefined) throw new ConsumerConfigError(`option broker: expected one of ${Object.keys(REQUIRED).join(', ')}, got ${JSON.stringify(options.broker)}`);
  const value = (options as unknown as Record<string, unknown>)[required];
  if (value === undefined || value === '' || (Array.isArray(value) && value.length === 0)) throw new ConsumerConfigError(`option ${required} is required for broker ${options.broker}`);
  nonEmpty('topic', options.topic);
  nonEmpty('name', options.name);
  if (options.broker === 'nats' && /[\s.*>]/.test(options.name)) {
    throw new ConsumerConfigError(`option name: a NATS durable name cannot contain spaces, ".", "*" or ">" (got ${JSON.stringify(options.name)})`);
  }
  if (options.format !== undefined && options.format !== 'native' && options.format !== 'compat') {
    throw new ConsumerConfigError(`option format: expected "native" or "compat", got ${JSON.stringify(options.format)}`);
  }
  for (const [table, types] of Object.entries(options.tables ?? {})) {
    tableName(`tables["${table}"]`, table);
    if (typeof types?.columns !== 'object' || types.columns === null) throw new ConsumerConfigError(`option tables["${table}"]: expected { columns: { column: "type" }, key?: [...] }`);
  }
  const retry = options.retry ?? {};
  return {
    format: options.format ?? 'native',
    concurrency: count('concurrency', options.concurrency, 16),
    maxAttempts: count('retry.maxAttempts', retry.maxAttempts, 5),
    initialDelayMs: count('retry.initialDelayMs', retry.initialDelayMs, 200, 0),
    maxDelayMs: count('retry.maxDelayMs', retry.maxDelayMs, 10_000, 0),
    dedupWindow: count('dedupWindow', options.dedupWindow, 100_000),
    prefetch: count('prefetch', options.prefetch, 512),
    stopTimeoutMs: count('stopTimeoutMs', options.stopTimeoutMs, 30_000, 0),
  };
}

/** Checks a `"schema.table"` name. */
export function tableName(what: string, table: string): void {
  if (typeof table !== 'string' || !/^[^.]+\.[^.]+$/.test(table)) {
    throw new ConsumerConfigError(`${what}: expected "schema.table", got ${JSON.stringify(table)}`);
  }
}

/** The daemon's subject of a table: `<topic>.<topicPrefix><schema>_<table>`, topicsMap applied. */
export function subjectOf(options: ConsumerOptions, table: string): string {
  const [schema, name] = table.split('.') as [string, string];
  const base = `${schema}_${name}`;
  return `${options.topic}.${options.topicPrefix ?? ''}${options.topicsMap?.[base] ?? base}`;
}

function nonEmpty(name: string, value: unknown): void {
  if (typeof value !== 'string' || value === '') throw new ConsumerConfigError(`option ${name} is required (a non-empty string)`);
}

function count(name: string, value: number | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min) throw new ConsumerConfigError(`option ${name}: expected an integer ≥ ${min}, got ${JSON.stringify(value)}`);
  return value;
}
