/**
 * The schema's key names, for reading keys the way ihippik/wal-listener (viper) does: in any
 * letter case. Built once from the zod schema, so a key added there is found here too.
 */
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { configSchema, KEY_ALIASES } from './schema.js';

export type Leaf = 'string' | 'number' | 'boolean' | 'structured';

export interface KeyInfo {
  path: string[];
  leaf: Leaf;
}

/** The object schema at a key path (root, listener, publisher.sasl, ...), or undefined for a leaf or a map. */
function objectAt(path: readonly PropertyKey[]): z.ZodObject | undefined {
  let current: z.ZodType = unwrap(configSchema);
  for (const key of path) {
    if (!(current instanceof z.ZodObject)) return undefined;
    const child = (current.shape as Record<string, z.ZodType>)[String(key)];
    if (child === undefined) return undefined;
    current = unwrap(child);
  }
  return current instanceof z.ZodObject ? current : undefined;
}

/** The keys the schema knows at `path` (for "did you mean"). */
export function keysAt(path: readonly PropertyKey[]): string[] {
  const object = objectAt(path);
  return object ? Object.keys(object.shape) : [];
}

/**
 * Renames every key of `raw` written in another letter case (or as a documented alias such as
 * enable_tls) to the schema's spelling, in place. Two spellings of one key are an error naming
 * both. Unknown keys are left for the schema to report. Maps (filter.tables, topicsMap) keep
 * their keys: those are table names.
 */
export function normalizeKeys(raw: Record<string, unknown>, path: string[] = []): void {
  const object = objectAt(path);
  if (!object) return;
  const byLowerName = new Map<string, string>();
  for (const key of Object.keys(object.shape)) byLowerName.set(key.toLowerCase(), key);
  for (const [alias, key] of Object.entries(KEY_ALIASES[path.join('.')] ?? {})) byLowerName.set(alias.toLowerCase(), key);

  const spelledAs = new Map<string, string>();
  for (const written of Object.keys(raw)) {
    const key = byLowerName.get(written.toLowerCase());
    if (key === undefined) continue;
    const earlier = spelledAs.get(key);
    if (earlier !== undefined) {
      const prefix = path.map((p) => `${p}.`).join('');
      throw new ConfigError('WAL_CONFIG_INVALID', `config keys ${prefix}${earlier} and ${prefix}${written} are the same setting (${prefix}${key}; keys are read in any letter case); keep one`);
    }
    spelledAs.set(key, written);
  }
  for (const [key, written] of spelledAs) {
    if (written !== key) {
      raw[key] = raw[written];
      delete raw[written];
    }
    const value = raw[key];
    if (isPlainObject(value)) normalizeKeys(value, [...path, key]);
  }
}

let envKeys: Map<string, KeyInfo> | undefined;

/** Every key path of the schema by its environment spelling without the WAL_ prefix (DATABASE_PORT). */
export function envKeyTable(): Map<string, KeyInfo> {
  if (envKeys) return envKeys;
  const table = new Map<string, KeyInfo>();
  const walk = (schema: z.ZodType, path: string[]): void => {
    const base = unwrap(schema);
    if (path.length > 0) table.set(path.join('_').toUpperCase(), { path, leaf: leafKind(base) });
    if (base instanceof z.ZodObject) {
      for (const [key, child] of Object.entries(base.shape as Record<string, z.ZodType>)) walk(child, [...path, key]);
    }
  };
  walk(configSchema, []);
  envKeys = table;
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

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
