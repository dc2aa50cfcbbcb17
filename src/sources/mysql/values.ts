/**
 * MySQL/MariaDB values to JSON text (DESIGN.md "Values", MySQL rules), one converter per column,
 * chosen once from the column's type. The binlog reader hands values in exact forms (connection.ts):
 *   integers (TINYINT(1) too)     number; BIGINT beyond 2^53 as a string of all its digits → a JSON number
 *   DECIMAL                       string → JSON string, exact ("12.3400")
 *   FLOAT, DOUBLE                 number → the shortest decimal that reads back as the same float / double
 *   DATE                          "2024-02-29"
 *   DATETIME(n)                   "2024-02-29T13:45:56.123456" (no zone; n fraction digits, as declared)
 *   TIMESTAMP(n)                  "2024-02-29T11:45:56.123456Z" (UTC; n fraction digits)
 *   TIME(n)                       "-838:59:58.999999" (MySQL's text: a duration, may exceed 24 h)
 *   YEAR                          number (0 for YEAR 0000)
 *   CHAR, VARCHAR, TEXT           JSON string (any charset, utf8mb4 4-byte characters included)
 *   BINARY, VARBINARY, BLOB       base64
 *   BIT(n)                        string of n '0'/'1' characters, most significant first ("0101"), as
 *                                 PostgreSQL writes bit(n): lossless for BIT(64), where a number is not
 *   ENUM                          its label; SET: its labels as MySQL writes them, "a,b"
 *   JSON (MySQL type, or MariaDB  the JSON value itself, as stored
 *     LONGTEXT with json_valid)
 * A value that does not fit its column's form (a zero date "0000-00-00", text in a JSON column that
 * is not JSON) is published as its source text and reported through `problem`, never replaced.
 */
import type { ToJson } from '../../pipeline/change.js';

/** What information_schema says about a column, as far as its values are concerned. */
export interface ColumnType {
  readonly name: string;
  /** information_schema DATA_TYPE, lower case: "bigint", "datetime", "longtext", ... */
  readonly dataType: string;
  /** BIT(n): n. */
  readonly bits?: number;
  /** JSON: the MySQL type, or a MariaDB LONGTEXT constrained by json_valid(). */
  readonly json?: boolean;
}

/** Called with the source text of a value that was published unconverted. */
export type ConvertProblem = (column: string, sourceText: string) => void;

type Converter = (value: unknown) => string;

const quote = (text: string): string => JSON.stringify(text);

/** Any value as its source text: what a value that cannot be converted is published as. */
function sourceText(value: unknown): string {
  if (Buffer.isBuffer(value)) return value.toString('base64');
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null) return JSON.stringify(value);
  return String(value);
}

/** A value of an unknown type or form: numbers stay numbers, bytes become base64, objects JSON. */
function generic(value: unknown): string {
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : quote(String(value));
  if (typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  if (typeof value === 'object' && value !== null && !Buffer.isBuffer(value)) return JSON.stringify(value);
  return quote(sourceText(value));
}

const INTEGER = /^-?\d+$/;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATETIME = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?$/;
const DECIMAL = /^-?\d+(?:\.\d+)?$/;
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** A real calendar date (MySQL also stores zero dates and zero parts: "0000-00-00", "2024-02-00"). */
function isCalendarDate(year: string, month: string, day: string): boolean {
  const y = Number(year);
  const m = Number(month);
  const d = Number(day);
  if (m < 1 || m > 12 || d < 1) return false;
  const leap = y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
  return d <= (m === 2 && leap ? 29 : DAYS_IN_MONTH[m - 1]!);
}

/** The shortest decimal that reads back as the same 32-bit float (what MySQL stored). */
function float32Text(value: number): string {
  for (let digits = 1; digits < 10; digits++) {
    const candidate = Number(value.toPrecision(digits));
    if (Math.fround(candidate) === value) return String(candidate);
  }
  return String(value);
}

/** BIT(n) bytes (big-endian) as n binary digits. */
function bitText(bytes: Buffer, bits: number): string {
  let text = '';
  for (const byte of bytes) text += byte.toString(2).padStart(8, '0');
  return text.length > bits ? text.slice(text.length - bits) : text.padStart(bits, '0');
}

/** Converters that accept the expected form and return undefined for anything else. */
function strictConverter(column: ColumnType): (value: unknown) => string | undefined {
  switch (column.dataType) {
    case 'tinyint': case 'smallint': case 'mediumint': case 'int': case 'integer': case 'bigint':
      return (v) => (typeof v === 'number' && Number.isInteger(v) ? String(v) : typeof v === 'string' && INTEGER.test(v) ? v : undefined);
    case 'decimal': case 'numeric':
      // Digits need no escaping: concatenation is cheaper than JSON.stringify on the hot path.
      return (v) => (typeof v === 'string' && DECIMAL.test(v) ? `"${v}"` : undefined);
    case 'float':
      return (v) => (typeof v === 'number' && Number.isFinite(v) ? float32Text(v) : undefined);
    case 'double': case 'real':
      return (v) => (typeof v === 'number' && Number.isFinite(v) ? String(v) : undefined);
    case 'date':
      return (v) => {
        const m = typeof v === 'string' ? DATE.exec(v) : null;
        return m && isCalendarDate(m[1]!, m[2]!, m[3]!) ? quote(v as string) : undefined;
      };
    case 'datetime':
    case 'timestamp': {
      const zone = column.dataType === 'timestamp' ? 'Z"' : '"';
      return (v) => {
        if (typeof v !== 'string' || !DATETIME.test(v) || !isCalendarDate(v.slice(0, 4), v.slice(5, 7), v.slice(8, 10))) return undefined;
        return `"${v.slice(0, 10)}T${v.slice(11)}${zone}`;
      };
    }
    case 'time':
      return (v) => (typeof v === 'string' ? quote(v) : undefined);
    case 'year':
      // The binlog stores YEAR as years since 1900; the reader adds 1900 also to 0, which is YEAR 0000.
      return (v) => (typeof v === 'number' && Number.isInteger(v) ? String(v === 1900 ? 0 : v) : undefined);
    case 'bit': {
      const bits = column.bits ?? 64;
      return (v) => (Buffer.isBuffer(v) ? quote(bitText(v, bits)) : undefined);
    }
    case 'binary': case 'varbinary': case 'tinyblob': case 'blob': case 'mediumblob': case 'longblob':
      return (v) => (Buffer.isBuffer(v) ? quote(v.toString('base64')) : undefined);
    default:
      if (column.json || column.dataType === 'json') {
        return (v) => {
          if (typeof v !== 'string') return undefined;
          try {
            JSON.parse(v);
          } catch {
            return undefined;
          }
          return v;
        };
      }
      // char, varchar, the text types, enum, set, MariaDB's uuid/inet4/inet6 (already text).
      return (v) => (typeof v === 'string' ? quote(v) : undefined);
  }
}

/** The column's toJson: its converter, falling back to the source text (reported) for values that do not fit. */
export function columnToJson(column: ColumnType, problem: ConvertProblem): ToJson {
  const convert = strictConverter(column);
  const toJson: Converter = (value) => {
    const json = convert(value);
    if (json !== undefined) return json;
    const text = sourceText(value);
    problem(column.name, text);
    return quote(text);
  };
  return toJson;
}

/** toJson of a column the reader decoded but information_schema does not describe (altered since). */
export const genericToJson: ToJson = generic as Converter;
