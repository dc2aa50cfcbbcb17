/**
 * Reads the YAML config, applies WAL_ environment overrides, validates it and fills defaults.
 * This is the only module that reads process.env (STYLE.md).
 */
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { configSchema, IGNORED_KEYS, KEY_ALIASES, type Config } from './schema.js';

export interface LoadedConfig {
  config: Config;
  /** Things worth a warning log line once the logger exists (ignored keys and the like). */
  warnings: string[];
}

type Env = Record<string, string | undefined>;
type Leaf = 'string' | 'number' | 'boolean' | 'structured';

/** Loads and validates the config file at `path` with overrides from `env`. Throws ConfigError. */
export function loadConfig(path: string, env: Env = process.env): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : 'cannot be read';
    throw new ConfigError('WAL_CONFIG_NOT_FOUND', `config file ${path} ${reason}`, { cause: err });
  }
  return parseConfig(text, path, env);
}

/** Validates config text (YAML) with overrides from `env`. Throws ConfigError. */
export function parseConfig(text: string, source: string, env: Env = {}): LoadedConfig {
  const doc = YAML.parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!;
    throw new ConfigError('WAL_CONFIG_PARSE', `config file ${source} is not valid YAML: ${first.message.split('\n')[0]}`);
  }
  const raw: unknown = doc.toJS() ?? {};
  if (!isPlainObject(raw)) {
    throw new ConfigError('WAL_CONFIG_INVALID', `config file ${source} must be a mapping of sections (listener, database, publisher, ...)`);
  }
  applyAliases(raw);
  applyEnvOverrides(raw, env);
  const warnings = IGNORED_KEYS.filter((key) => getPath(raw, key.split('.')) !== undefined).map(
    (key) => `config key ${key} is accepted for compatibility with ihippik/wal-listener but has no effect`,
  );
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    throw new ConfigError('WAL_CONFIG_INVALID', formatIssues(result.error, source));
  }
  return { config: result.data, warnings };
}

function formatIssues(error: z.ZodError, source: string): string {
  const lines = error.issues.map((issue) => {
    if (issue.code === 'unrecognized_keys') {
      const base = issue.path.join('.');
      return issue.keys.map((key) => `unknown key ${base ? `${base}.` : ''}${key}`).join('; ');
    }
    const key = issue.path.join('.') || '(root)';
    return `${key}: ${issue.message}`;
  });
  return `invalid config (${source}): ${lines.join('; ')}`;
}

function applyAliases(raw: Record<string, unknown>): void {
  for (const [section, aliases] of Object.entries(KEY_ALIASES)) {
    const target = raw[section];
    if (!isPlainObject(target)) continue;
    for (const [alias, key] of Object.entries(aliases)) {
      if (!(alias in target)) continue;
      if (key in target) throw new ConfigError('WAL_CONFIG_INVALID', `config keys ${section}.${alias} and ${section}.${key} are the same setting; keep one`);
      target[key] = target[alias];
      delete target[alias];
    }
  }
}

/** WAL_ + the key path in upper case with "_" between levels, e.g. WAL_DATABASE_PORT. */
function applyEnvOverrides(raw: Record<string, unknown>, env: Env): void {
  const keys = envKeyTable();
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('WAL_') || value === undefined) continue;
    const entry = keys.get(name.slice(4));
    if (!entry) {
      throw new ConfigError('WAL_CONFIG_INVALID', `environment variable ${name} names no config key (expected WAL_ + a key path such as WAL_DATABASE_PORT)`);
    }
    setPath(raw, entry.path, coerce(value, entry.leaf, name));
  }
}

function coerce(value: string, leaf: Leaf, name: string): unknown {
  switch (leaf) {
    case 'string':
      return value;
    case 'number': {
      const n = Number(value);
      if (value.trim() === '' || !Number.isFinite(n)) throw new ConfigError('WAL_CONFIG_INVALID', `environment variable ${name}: expected a number, got ${JSON.stringify(value)}`);
      return n;
    }
    case 'boolean':
      if (/^(true|1|yes)$/i.test(value)) return true;
      if (/^(false|0|no)$/i.test(value)) return false;
      throw new ConfigError('WAL_CONFIG_INVALID', `environment variable ${name}: expected true or false, got ${JSON.stringify(value)}`);
    case 'structured':
      try {
        return YAML.parse(value);
      } catch {
        throw new ConfigError('WAL_CONFIG_INVALID', `environment variable ${name}: expected a YAML or JSON value`);
      }
  }
}

let cachedKeys: Map<string, { path: string[]; leaf: Leaf }> | undefined;

/** Every key path of the schema, by its environment spelling. */
function envKeyTable(): Map<string, { path: string[]; leaf: Leaf }> {
  if (cachedKeys) return cachedKeys;
  const table = new Map<string, { path: string[]; leaf: Leaf }>();
  const walk = (schema: z.ZodType, path: string[]): void => {
    const base = unwrap(schema);
    if (path.length > 0) table.set(path.join('_').toUpperCase(), { path, leaf: leafKind(base) });
    if (base instanceof z.ZodObject) {
      for (const [key, child] of Object.entries(base.shape as Record<string, z.ZodType>)) walk(child, [...path, key]);
    }
  };
  walk(configSchema, []);
  cachedKeys = table;
  return table;
}

function unwrap(schema: z.ZodType): z.ZodType {
  let current: z.ZodType = schema;
  for (;;) {
    if (current instanceof z.ZodDefault || current instanceof z.ZodPrefault || current instanceof z.ZodOptional || current instanceof z.ZodNullable) {
      current = current.unwrap() as z.ZodType;
    } else if (current instanceof z.ZodPipe) {
      current = current.in as z.ZodType;
    } else {
      return current;
    }
  }
}

function leafKind(schema: z.ZodType): Leaf {
  if (schema instanceof z.ZodNumber) return 'number';
  if (schema instanceof z.ZodBoolean) return 'boolean';
  if (schema instanceof z.ZodString || schema instanceof z.ZodEnum || schema instanceof z.ZodUnion) return 'string';
  return 'structured';
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function getPath(obj: Record<string, unknown>, path: string[]): unknown {
  let current: unknown = obj;
  for (const key of path) {
    if (!isPlainObject(current)) return undefined;
    current = current[key];
  }
  return current;
}

function setPath(obj: Record<string, unknown>, path: string[], value: unknown): void {
  let current = obj;
  for (const key of path.slice(0, -1)) {
    const next = current[key];
    if (!isPlainObject(next)) current[key] = {};
    current = current[key] as Record<string, unknown>;
  }
  current[path[path.length - 1]!] = value;
}
