/**
 * Reads the YAML config, applies WAL_ environment overrides, validates it and fills defaults.
 * This is the only module that reads process.env (STYLE.md).
 */
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { applyEnvOverrides, type Env } from './env.js';
import { isPlainObject, keysAt, normalizeKeys } from './keys.js';
import { configSchema, IGNORED_KEYS, type Config } from './schema.js';
import { closestName } from './suggest.js';

export interface LoadedConfig {
  config: Config;
  /** Things worth a warning log line once the logger exists (ignored keys and the like). */
  warnings: string[];
  /**
   * WAL_ environment variables that name no config key (Kubernetes service links and the like):
   * not applied; worth one debug log line with their names.
   */
  ignoredVariables: string[];
}

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
  normalizeKeys(raw);
  const fromEnv = applyEnvOverrides(raw, env);
  // Again for YAML values given in variables (WAL_PUBLISHER_SASL='{Mechanism: plain, ...}').
  normalizeKeys(raw);
  const warnings = IGNORED_KEYS.filter((key) => getPath(raw, key.split('.')) !== undefined).map(
    (key) => `config key ${key} is accepted for compatibility with ihippik/wal-listener but has no effect`,
  );
  const db = raw.database;
  if (isPlainObject(db) && db.enableTLS === false && typeof db.sslMode === 'string' && db.sslMode !== 'disable') {
    warnings.push(`database.sslMode ${db.sslMode} has no effect because database.enableTLS is false (as in ihippik/wal-listener): the connection to PostgreSQL is not encrypted`);
  }
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    throw new ConfigError('WAL_CONFIG_INVALID', formatIssues(result.error, source));
  }
  return { config: result.data, warnings: [...fromEnv.warnings, ...warnings], ignoredVariables: fromEnv.ignored };
}

function formatIssues(error: z.ZodError, source: string): string {
  const lines = error.issues.map((issue) => {
    if (issue.code === 'unrecognized_keys') {
      const base = issue.path.map((p) => `${String(p)}.`).join('');
      return issue.keys
        .map((key) => {
          const near = closestName(key, keysAt(issue.path));
          return `unknown key ${base}${key}${near ? ` (did you mean ${base}${near}?)` : ''}`;
        })
        .join('; ');
    }
    const key = issue.path.join('.') || '(root)';
    return `${key}: ${issue.message}`;
  });
  return `invalid config (${source}): ${lines.join('; ')}`;
}

function getPath(obj: Record<string, unknown>, path: string[]): unknown {
  let current: unknown = obj;
  for (const key of path) {
    if (!isPlainObject(current)) return undefined;
    current = current[key];
  }
  return current;
}
