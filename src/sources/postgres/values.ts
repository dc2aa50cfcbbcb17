/**
 * Value conversion: a column's PostgreSQL text output → a JSON fragment (DESIGN.md "Values").
 * A converter is chosen once per column when a Relation message arrives (never per value),
 * and turns text into JSON text directly, without building intermediate objects.
 *
 * The text must be produced with the session settings in REPLICATION_SESSION_OPTIONS
 * (connection-options.ts): DateStyle ISO, TimeZone UTC, IntervalStyle iso_8601,
 * extra_float_digits 3, bytea_output hex.
 *
 * | type                         | JSON                                                        |
 * |------------------------------|-------------------------------------------------------------|
 * | bool                         | true / false                                                |
 * | int2, int4, int8, oid        | number, digits copied (int8 keeps all of them)              |
 * | float4, float8               | number as Postgres prints it (shortest exact); "NaN", "Infinity", "-Infinity" as strings |
 * | numeric                      | string, exact ("NaN", "Infinity", "-Infinity" too)          |
 * | json, jsonb                  | the value itself                                            |
 * | bytea                        | base64 string                                               |
 * | date                         | "2024-02-29"                                                |
 * | timestamp                    | "2024-02-29T13:45:56.123456" (always 6 fraction digits)     |
 * | timestamptz                  | "2024-02-29T08:15:56.123456Z" (UTC, always 6 digits)        |
 * | ±infinity date/timestamp     | "infinity" / "-infinity"                                    |
 * | years outside 0000–9999, BC  | ISO 8601 expanded years: "+010000-01-01", "-000043-03-15" (= 44 BC) |
 * | interval                     | ISO 8601 duration as Postgres prints it: "P1Y2M-3DT4H5M6.5S" |
 * | time, timetz                 | Postgres text: "13:45:56.123456", "13:45:56+05:30"          |
 * | arrays (any element type)    | nested JSON arrays of converted elements, NULL → null       |
 * | domains                      | as their base type (also arrays of domains)                 |
 * | everything else              | Postgres text as a JSON string (text, uuid, enum, money, composite, range, …) |
 *
 * A value that cannot be converted (text of an unexpected shape, or an array with lower bounds
 * other than 1, which a JSON array cannot carry) is published as its Postgres text and reported
 * through onProblem; it is never replaced by a zero value or dropped.
 */
import { arrayToJson, arrayWriter } from './arrays.js';
import type { WriteJson } from '../../pipeline/change.js';
import type { JsonOut } from '../../pipeline/json-out.js';
import { compatConverter } from './compat-values.js';
import { writerFor } from './value-writers.js';
import { dateToJson, timestampToJson, timestamptzToJson } from './datetime.js';
import type { RelationColumn } from './pgoutput.js';
import { TypeCatalog, type QueryRows, type ScalarKind } from './type-catalog.js';

/** Postgres text output of one value → the JSON text that represents it. */
export type ToJson = (text: string) => string;

export interface ValueConverters {
  /**
   * Called for every Relation message before rows of that relation are converted. Returns a
   * promise when it must first look something up (e.g. an unknown type in pg_type); the pipeline
   * waits for it. Returns undefined when nothing needs waiting for (the common case).
   */
  prepare(columns: readonly RelationColumn[]): Promise<void> | undefined;
  /** The converter for one column; called once per column per Relation message. */
  forColumn(column: RelationColumn): ToJson;
  /** The converter for `publisher.eventFormat: compat` (compat-values.ts): ihippik/wal-listener's shapes. */
  forColumnCompat(column: RelationColumn): ToJson;
  /** The byte path of forColumn (value-writers.ts), for the types that have one. */
  forColumnWriter(column: RelationColumn): WriteJson | undefined;
}

/** Called when a value could not be converted and was published as its Postgres text instead. */
export type ConvertProblem = (typeOid: number, text: string) => void;

export interface ValueConvertersOptions {
  /**
   * Runs a query on a regular SQL connection (not the replication one); used by prepare() to read
   * pg_type for non-built-in types. Without it those types are published as their text.
   */
  query?: QueryRows;
  onProblem: ConvertProblem;
}

const LINE_BREAKS = /[\r\n]/g;

export const quote: ToJson = (text) => JSON.stringify(text);

const enum Char {
  Minus = 0x2d,
  Plus = 0x2b,
  Dot = 0x2e,
  Zero = 0x30,
  Nine = 0x39,
  LowerE = 0x65,
  UpperE = 0x45,
  UpperP = 0x50,
  Backslash = 0x5c,
  LowerX = 0x78,
}

const isDigit = (c: number): boolean => c >= Char.Zero && c <= Char.Nine;

/** -?(0|[1-9][0-9]*): an integer JSON accepts as is. */
export function isJsonInteger(text: string): boolean {
  const n = text.length;
  let i = text.charCodeAt(0) === Char.Minus ? 1 : 0;
  if (i >= n) return false;
  if (text.charCodeAt(i) === Char.Zero) return i + 1 === n;
  for (; i < n; i++) if (!isDigit(text.charCodeAt(i))) return false;
  return true;
}

/** The JSON number grammar: -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)? */
export function isJsonNumber(text: string): boolean {
  const n = text.length;
  let i = text.charCodeAt(0) === Char.Minus ? 1 : 0;
  let c = text.charCodeAt(i);
  if (c === Char.Zero) i++;
  else if (isDigit(c)) while (isDigit(text.charCodeAt(++i)));
  else return false;
  if (text.charCodeAt(i) === Char.Dot) {
    if (!isDigit(text.charCodeAt(++i))) return false;
    while (isDigit(text.charCodeAt(++i)));
  }
  c = text.charCodeAt(i);
  if (c === Char.LowerE || c === Char.UpperE) {
    c = text.charCodeAt(++i);
    if (c === Char.Plus || c === Char.Minus) i++;
    if (!isDigit(text.charCodeAt(i))) return false;
    while (isDigit(text.charCodeAt(++i)));
  }
  return i === n;
}

const isSpecialFloat = (text: string): boolean => text === 'NaN' || text === 'Infinity' || text === '-Infinity';

/** numeric_out: -?digits[.digits], or NaN/±Infinity. Needs no JSON escaping. */
function isNumericText(text: string): boolean {
  const n = text.length;
  let i = text.charCodeAt(0) === Char.Minus ? 1 : 0;
  if (!isDigit(text.charCodeAt(i))) return isSpecialFloat(text);
  let dots = 0;
  for (; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === Char.Dot) {
      if (++dots > 1 || !isDigit(text.charCodeAt(i + 1))) return false;
    } else if (!isDigit(c)) return false;
  }
  return true;
}

function byteaToJson(text: string): string | undefined {
  // bytea_output=hex: "\x" then two hex digits per byte. Buffer.from stops at the first bad
  // digit, so the length check also validates the digits.
  if (text.charCodeAt(0) !== Char.Backslash || text.charCodeAt(1) !== Char.LowerX || text.length % 2 !== 0) return undefined;
  const bytes = Buffer.from(text.slice(2), 'hex');
  return bytes.length * 2 === text.length - 2 ? '"' + bytes.toString('base64') + '"' : undefined;
}

function intervalToJson(text: string): string | undefined {
  // IntervalStyle iso_8601 always starts with P (PG 17 adds "infinity" / "-infinity").
  if (text.charCodeAt(0) === Char.UpperP || text === 'infinity' || text === '-infinity') return JSON.stringify(text);
  return undefined;
}

/** The converter for a scalar kind; `oid` is what onProblem reports. */
function scalarConverter(kind: ScalarKind, oid: number, onProblem: ConvertProblem): ToJson {
  const fallback = (text: string): string => {
    onProblem(oid, text);
    return quote(text);
  };
  const checked =
    (convert: (text: string) => string | undefined): ToJson =>
    (text) =>
      convert(text) ?? fallback(text);
  switch (kind) {
    case 'bool':
      return (text) => (text === 't' ? 'true' : text === 'f' ? 'false' : fallback(text));
    case 'int':
      return (text) => (isJsonInteger(text) ? text : fallback(text));
    case 'float':
      return (text) => (isJsonNumber(text) ? text : isSpecialFloat(text) ? '"' + text + '"' : fallback(text));
    case 'numeric':
      return (text) => (isNumericText(text) ? '"' + text + '"' : fallback(text));
    case 'json':
      // Postgres only outputs valid JSON for json/jsonb, so it is copied as is; but `json` keeps
      // its input's line breaks, which would split an event over lines (stdout framing). A raw
      // line break can only be whitespace between tokens (inside strings JSON escapes it), so it
      // becomes a space.
      return (text) => (text.indexOf('\n') < 0 && text.indexOf('\r') < 0 ? text : text.replace(LINE_BREAKS, ' '));
    case 'bytea':
      return checked(byteaToJson);
    case 'date':
      return checked(dateToJson);
    case 'timestamp':
      return checked(timestampToJson);
    case 'timestamptz':
      return checked(timestamptzToJson);
    case 'interval':
      return checked(intervalToJson);
    case 'text':
      return quote;
  }
}

/** Converters for every type: built-ins from a baked-in table, other types read from pg_type. */
export function createValueConverters(options: ValueConvertersOptions): ValueConverters {
  const { onProblem } = options;
  const catalog = new TypeCatalog(options.query);
  const cache = new Map<number, ToJson>();

  /** The converter for a type, or undefined while some type it depends on is not loaded. */
  const resolve = (oid: number, depth: number): ToJson | undefined => {
    const cached = cache.get(oid);
    if (cached) return cached;
    const info = catalog.get(oid);
    if (!info || depth > 32) return undefined;
    let convert: ToJson | undefined;
    if (info.form === 'scalar') {
      convert = scalarConverter(info.kind, oid, onProblem);
    } else if (info.form === 'domain') {
      convert = resolve(info.baseOid, depth + 1);
    } else {
      const element = resolve(info.elementOid, depth + 1);
      const delimiter = info.delimiter.charCodeAt(0);
      if (element) {
        convert = (text) => {
          const json = arrayToJson(text, element, delimiter);
          if (json !== undefined) return json;
          onProblem(oid, text);
          return quote(text);
        };
      }
    }
    if (convert) cache.set(oid, convert);
    return convert;
  };

  /** The type behind domains: its OID and whether it is an array, or undefined while not loaded. */
  const base = (oid: number, depth = 0): { oid: number; array: boolean } | undefined => {
    const info = catalog.get(oid);
    if (!info || depth > 32) return undefined;
    if (info.form === 'domain') return base(info.baseOid, depth + 1);
    return { oid, array: info.form === 'array' };
  };

  /** The byte writer of a scalar type or an array of one (through domains), else undefined. */
  const writer = (oid: number): WriteJson | undefined => {
    const type = base(oid);
    const info = type && catalog.get(type.oid);
    const convert = resolve(oid, 0);
    if (!info || !convert) return undefined;
    if (info.form === 'scalar') return writerFor(info.kind, convert);
    if (info.form !== 'array') return undefined;
    const elementType = base(info.elementOid);
    const elementInfo = elementType && !elementType.array ? catalog.get(elementType.oid) : undefined;
    const elementText = resolve(info.elementOid, 0);
    if (elementInfo?.form !== 'scalar' || !elementText) return undefined;
    const element = writerFor(elementInfo.kind, elementText);
    const whole = (buf: Buffer, from: number, to: number, out: JsonOut): void => out.utf8(convert(buf.toString('utf8', from, to)));
    return element && arrayWriter(element, elementText, info.delimiter.charCodeAt(0), whole);
  };

  return {
    prepare: (columns) => catalog.load(columns.map((column) => column.typeOid)),
    // A type prepare() has not loaded (no query configured) is published as its text.
    forColumn: (column) => resolve(column.typeOid, 0) ?? quote,
    forColumnWriter: (column) => writer(column.typeOid),
    forColumnCompat: (column) => {
      const type = base(column.typeOid);
      return (type && compatConverter(type.oid, type.array, onProblem)) ?? resolve(column.typeOid, 0) ?? quote;
    },
  };
}
