/**
 * Column values: the JSON value of an event → the typed value, chosen once per column from its
 * PostgreSQL type name. Native events (DESIGN.md "Values") and compat events (ihippik/wal-listener's
 * shapes: floats, json, oid as strings; arrays, bytea and interval in PostgreSQL text form) differ
 * only in some types; both are read here.
 *
 * | type                        | value                                                     |
 * |-----------------------------|-----------------------------------------------------------|
 * | bool                        | boolean                                                   |
 * | int2, int4, oid             | number                                                    |
 * | int8                        | bigint, always (even when it would fit a number)          |
 * | float4, float8              | number (NaN, ±Infinity included)                          |
 * | numeric                     | the exact string, or what the `decimal` option makes of it |
 * | json, jsonb                 | the JSON value (integers beyond 2^53 as bigint)           |
 * | bytea                       | Buffer                                                    |
 * | timestamp, timestamptz      | Timestamp (a Date that keeps its text and microseconds)   |
 * | arrays of the above (`T[]`) | nested arrays of those values, NULL → null                |
 * | anything else               | the JSON value as published (a string for text, uuid, date, interval, …) |
 */
import { parseJson } from './json.js';
import { parsePgArray, type PgArrayText } from './pg-array.js';
import { Timestamp } from './timestamp.js';

/** JSON value of one column (never null: nulls are not converted) → the typed value. */
export type Convert = (value: unknown) => unknown;

type Kind = 'bool' | 'int' | 'int8' | 'float' | 'numeric' | 'json' | 'jsonb' | 'bytea' | 'timestamp';

const KINDS: Readonly<Record<string, Kind>> = {
  bool: 'bool',
  boolean: 'bool',
  int2: 'int',
  int4: 'int',
  smallint: 'int',
  integer: 'int',
  int: 'int',
  oid: 'int',
  int8: 'int8',
  bigint: 'int8',
  float4: 'float',
  float8: 'float',
  real: 'float',
  'double precision': 'float',
  numeric: 'numeric',
  decimal: 'numeric',
  json: 'json',
  jsonb: 'jsonb',
  bytea: 'bytea',
  timestamp: 'timestamp',
  timestamptz: 'timestamp',
  'timestamp without time zone': 'timestamp',
  'timestamp with time zone': 'timestamp',
};

export interface ValueOptions {
  readonly format: 'native' | 'compat';
  readonly decimal?: ((text: string) => unknown) | undefined;
}

/** The converter of a column type, or undefined when its JSON value is kept as it is. */
export function converterFor(typeName: string, options: ValueOptions): Convert | undefined {
  const name = typeName.trim().toLowerCase();
  const arrayOf = name.endsWith('[]') ? name.slice(0, -2) : name.startsWith('_') ? name.slice(1) : undefined;
  if (arrayOf !== undefined) {
    const kind = KINDS[arrayOf];
    return arrayConverter(kind ? fromText(kind, options) : identity, kind ? fromJson(kind, options) : identity);
  }
  const kind = KINDS[name];
  if (!kind) return undefined;
  const json = fromJson(kind, options);
  if (options.format === 'native') return json;
  // Compat writes these as their PostgreSQL text; jsonb (already a value) and the rest as native does.
  return kind === 'float' || kind === 'json' || kind === 'bytea' || kind === 'int' ? textOr(fromText(kind, options), json) : json;
}

const identity: Convert = (value) => value;

function textOr(text: (s: string) => unknown, json: Convert): Convert {
  return (value) => (typeof value === 'string' ? text(value) : json(value));
}

/** A native JSON value → typed. */
function fromJson(kind: Kind, options: ValueOptions): Convert {
  switch (kind) {
    case 'bool':
    case 'int':
    case 'json':
    case 'jsonb':
      return identity;
    case 'int8':
      return (value) => (typeof value === 'bigint' ? value : BigInt(value as number | string));
    case 'float':
      // NaN and ±Infinity are published as strings.
      return (value) => (typeof value === 'number' ? value : Number(expectString(value)));
    case 'numeric':
      return decimal(options);
    case 'bytea':
      return (value) => bytea(expectString(value));
    case 'timestamp':
      return (value) => Timestamp.from(expectString(value));
  }
}

/** PostgreSQL text output (compat scalars, array elements) → typed. */
function fromText(kind: Kind, options: ValueOptions): (text: string) => unknown {
  switch (kind) {
    case 'bool':
      return (text) => (text === 't' || text === 'true' ? true : text === 'f' || text === 'false' ? false : invalid('boolean', text));
    case 'int':
    case 'float':
      return (text) => {
        const n = Number(text);
        return Number.isNaN(n) && text !== 'NaN' ? invalid('number', text) : n;
      };
    case 'int8':
      return (text) => BigInt(text);
    case 'numeric':
      return decimal(options) as (text: string) => unknown;
    case 'json':
    case 'jsonb':
      return parseJson;
    case 'bytea':
      return bytea;
    case 'timestamp':
      return (text) => Timestamp.from(text);
  }
}

function decimal(options: ValueOptions): Convert {
  const make = options.decimal;
  return make ? (value) => make(expectString(value)) : (value) => expectString(value);
}

/** Arrays: JSON arrays (native), or array text (compat, and native arrays with lower bounds other than 1). */
function arrayConverter(element: (text: string) => unknown, json: Convert): Convert {
  const fromJsonArray = (value: unknown[]): unknown[] => value.map((v) => (v === null ? null : Array.isArray(v) ? fromJsonArray(v) : json(v)));
  const fromTextArray = (value: PgArrayText): unknown[] => value.map((v) => (v === null ? null : typeof v === 'string' ? element(v) : fromTextArray(v)));
  return (value) => {
    if (Array.isArray(value)) return fromJsonArray(value);
    return fromTextArray(parsePgArray(expectString(value)));
  };
}

/** Native bytea is base64; compat (and PostgreSQL's hex output) is `\x` + hex digits. */
function bytea(text: string): Buffer {
  if (text.startsWith('\\x')) {
    const hex = text.slice(2);
    const bytes = Buffer.from(hex, 'hex');
    return bytes.length * 2 === hex.length ? bytes : invalid('hex bytea', text);
  }
  return Buffer.from(text, 'base64');
}

function expectString(value: unknown): string {
  return typeof value === 'string' ? value : invalid('string', value);
}

function invalid(what: string, value: unknown): never {
  throw new RangeError(`expected a ${what}, got ${typeof value === 'string' ? JSON.stringify(value.slice(0, 100)) : typeof value}`);
}
