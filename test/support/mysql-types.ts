/**
 * Every MySQL/MariaDB type the source converts, with an oracle: a query that builds the expected
 * JSON text of each column with MariaDB's own functions (CAST, HEX, TO_BASE64, BIN), never with
 * our converter. Used by the source's value test and by the end-to-end test through the daemon.
 * Also a reader for the raw JSON text of an event's members (JSON.parse would lose digits).
 */
import assert from 'node:assert/strict';
import type { MysqlTestDatabase } from './mysql.js';

export const TYPES_TABLE = `CREATE TABLE vals (
  id INT PRIMARY KEY,
  b1 TINYINT(1), ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, mi MEDIUMINT, i INT, iu INT UNSIGNED, bi BIGINT, bu BIGINT UNSIGNED,
  de DECIMAL(65,30), d2 DECIMAL(10,2), fl FLOAT, do DOUBLE,
  d DATE, t0 TIME, t6 TIME(6), dt0 DATETIME, dt3 DATETIME(3), dt6 DATETIME(6), ts0 TIMESTAMP NULL, ts6 TIMESTAMP(6) NULL, y YEAR,
  c CHAR(10), v VARCHAR(255), tx TEXT, mt MEDIUMTEXT, l1 VARCHAR(20) CHARACTER SET latin1,
  bn BINARY(4), vb VARBINARY(16), bl BLOB, lb LONGBLOB,
  j JSON, bit1 BIT(1), bit12 BIT(12), bit64 BIT(64),
  e ENUM('a', 'b,c', 'it''s', 'back\\\\slash', '😀'), s SET('x', 'y', 'z', 'w''v')
) ENGINE=InnoDB`;

/** Oracle expression per column: MariaDB's own text for the expected JSON; `kind` says how to read it. */
export type Kind = 'number' | 'string' | 'hexText' | 'hexJson' | 'float' | 'double' | 'datetime' | 'timestamp';
export const ORACLE: Record<string, [string, Kind]> = {
  id: ['CAST(id AS CHAR)', 'number'],
  b1: ['CAST(b1 AS CHAR)', 'number'], ti: ['CAST(ti AS CHAR)', 'number'], tu: ['CAST(tu AS CHAR)', 'number'],
  si: ['CAST(si AS CHAR)', 'number'], mi: ['CAST(mi AS CHAR)', 'number'], i: ['CAST(i AS CHAR)', 'number'],
  iu: ['CAST(iu AS CHAR)', 'number'], bi: ['CAST(bi AS CHAR)', 'number'], bu: ['CAST(bu AS CHAR)', 'number'],
  de: ['CAST(de AS CHAR)', 'string'], d2: ['CAST(d2 AS CHAR)', 'string'],
  fl: ['CAST(CAST(fl AS DOUBLE) AS CHAR)', 'float'], do: ['CAST(do AS CHAR)', 'double'],
  d: ['CAST(d AS CHAR)', 'string'], t0: ['CAST(t0 AS CHAR)', 'string'], t6: ['CAST(t6 AS CHAR)', 'string'],
  dt0: ['CAST(dt0 AS CHAR)', 'datetime'], dt3: ['CAST(dt3 AS CHAR)', 'datetime'], dt6: ['CAST(dt6 AS CHAR)', 'datetime'],
  ts0: ['CAST(ts0 AS CHAR)', 'timestamp'], ts6: ['CAST(ts6 AS CHAR)', 'timestamp'], y: ['CAST(y + 0 AS CHAR)', 'number'],
  c: ['HEX(CONVERT(c USING utf8mb4))', 'hexText'], v: ['HEX(v)', 'hexText'], tx: ['HEX(tx)', 'hexText'], mt: ['HEX(mt)', 'hexText'],
  l1: ['HEX(CONVERT(l1 USING utf8mb4))', 'hexText'],
  bn: ["REPLACE(TO_BASE64(bn), '\\n', '')", 'string'], vb: ["REPLACE(TO_BASE64(vb), '\\n', '')", 'string'],
  bl: ["REPLACE(TO_BASE64(bl), '\\n', '')", 'string'], lb: ["REPLACE(TO_BASE64(lb), '\\n', '')", 'string'],
  j: ['HEX(j)', 'hexJson'],
  bit1: ["LPAD(BIN(bit1 + 0), 1, '0')", 'string'], bit12: ["LPAD(BIN(bit12 + 0), 12, '0')", 'string'], bit64: ["LPAD(BIN(bit64 + 0), 64, '0')", 'string'],
  e: ['HEX(e)', 'hexText'], s: ['HEX(s)', 'hexText'],
};

export const ROWS = [
  `(1, 1, -128, 255, -32768, -8388608, -2147483648, 4294967295, -9223372036854775808, 18446744073709551615,
    '12345678901234567890123456789012345.123456789012345678901234567891', -12345678.91, 0.1, 0.1,
    '2024-02-29', '-838:59:59', '838:59:58.999999', '2024-02-29 13:45:56', '2024-02-29 13:45:56.120', '2024-02-29 13:45:56.123456',
    '2038-01-19 03:14:07', '1970-01-01 00:00:01.000001', 2155,
    'ab', 'héllo 😀 𝄞 "quoted" \\\\ \\n tab\\t', REPEAT('long text 😀 ', 500), 'mediumtext ✓', 'café',
    0x01020000, 0x00ff00, 0xdeadbeef00, REPEAT(0xfe, 70000),
    '{"a": [1, 2.50, 12345678901234567890, -1e400], "b": "😀", "c": {"d": null, "e": true}}', b'1', b'101010101010', b'1111111111111111111111111111111111111111111111111111111111111111',
    'b,c', 'x,z,w''v')`,
  `(2, ${Array(Object.keys(ORACLE).length - 1).fill('NULL').join(', ')})`,
  `(3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    '1000-01-01', '00:00:00', '00:00:00.000000', '1000-01-01 00:00:00', '9999-12-31 23:59:59.999', '9999-12-31 23:59:59.999999',
    '1970-01-01 00:00:01', '2038-01-19 03:14:07.999999', '0000',
    '', '', '', '', '',
    '', '', '', '',
    '[]', b'0', b'0', b'0',
    'it''s', '')`,
  `(4, -1, 127, 1, 32767, 8388607, 2147483647, 1, 9223372036854775807, 9007199254740993,
    '-0.000000000000000000000000000001', 0.01, 3.40282e38, 1e300,
    '2000-02-29', '23:59:59', '-00:00:00.000001', '1999-12-31 23:59:59', '2000-01-01 00:00:00.001', '2000-01-01 00:00:00.000001',
    '2000-01-01 00:00:00', '2000-01-01 00:00:00.5', 1901,
    'x', '\\0nul and ctrl \\Z', 'line1\\r\\nline2', '', 'ÿ',
    0x00, 0x00, 0x00, 0x00,
    '"just a string"', b'1', b'100000000001', b'1000000000000000000000000000000000000000000000000000000000000000',
    'back\\\\slash', 'y')`,
  `(5, 1, 1, 1, 1, 1, 1, 1, 1, 1, '1', 1, -1.17549e-38, 5e-324,
    '2024-12-31', '12:00:00', '12:00:00.5', '2024-12-31 12:00:00', '2024-12-31 12:00:00.5', '2024-12-31 12:00:00.5',
    '2024-12-31 12:00:00', '2024-12-31 12:00:00.5', 1970,
    '😀', '😀', '😀', '😀', 'a',
    0xffffffff, 0xff, 0xff, 0xff,
    '12345678901234567890.5', b'0', b'111111111111', b'0000000000000000000000000000000000000000000000000000000000000001',
    '😀', 'x,y,z,w''v')`,
];

/** Changes every non-key column of each row (row 2 from NULL to values, the others to row 5's values or NULL). */
export const UPDATES = [
  "UPDATE vals SET v = CONCAT(v, ' ✎'), bu = bu - 1, dt6 = dt6 + INTERVAL 1 MICROSECOND, j = JSON_SET(j, '$.b', '𝄞'), bit12 = b'000000000001', e = 'a', s = 'y' WHERE id = 1",
  "UPDATE vals v2 JOIN vals v5 ON v5.id = 5 SET v2.b1 = v5.b1, v2.de = v5.de, v2.fl = v5.fl, v2.d = v5.d, v2.ts6 = v5.ts6, v2.v = v5.v, v2.bl = v5.bl, v2.j = v5.j, v2.bit64 = v5.bit64, v2.e = v5.e, v2.s = v5.s WHERE v2.id = 2",
  `UPDATE vals SET ${Object.keys(ORACLE).filter((c) => c !== 'id').map((c) => `${c} = NULL`).join(', ')} WHERE id = 3`,
  'UPDATE vals SET do = -do, fl = -fl, y = 2000, t6 = ADDTIME(t6, "01:00:00") WHERE id IN (4, 5)',
];

/** Expected JSON text from the oracle's text. */
function expected(kind: Kind, text: string | null): string {
  if (text === null) return 'null';
  switch (kind) {
    case 'number':
      return text;
    case 'string':
      return JSON.stringify(text);
    case 'hexText':
      return JSON.stringify(Buffer.from(text, 'hex').toString('utf8'));
    case 'hexJson':
      return Buffer.from(text, 'hex').toString('utf8');
    case 'datetime':
      return JSON.stringify(text.replace(' ', 'T'));
    case 'timestamp':
      return JSON.stringify(`${text.replace(' ', 'T')}Z`);
    case 'float':
    case 'double':
      return text;
  }
}

/** Each row of `vals` as MariaDB's own texts (see ORACLE), by id. */
export async function oracle(db: MysqlTestDatabase): Promise<Map<number, Record<string, string | null>>> {
  const c = await db.connect();
  try {
    await c.query("SET time_zone = '+00:00'");
    const [rows] = await c.query(`SELECT ${Object.entries(ORACLE).map(([name, [expr]]) => `${expr} AS \`${name}\``).join(', ')} FROM vals ORDER BY id`);
    return new Map((rows as Record<string, string | null>[]).map((row) => [Number(row.id), row]));
  } finally {
    await c.end();
  }
}

/**
 * `lossyLabels`: MariaDB's information_schema (and SHOW CREATE TABLE) write 4-byte characters of
 * ENUM/SET labels as "?"; without binlog_row_metadata=FULL that is all there is to read them from.
 * `ours`: each column's JSON text, as published.
 */
export function compareRow(ours: Record<string, string | undefined>, truth: Map<number, Record<string, string | null>>, what: string, lossyLabels: boolean): void {
  const id = Number(ours.id);
  const want = truth.get(id);
  assert.ok(want, `${what}: the oracle has no row ${id}`);
  for (const [column, [, kind]] of Object.entries(ORACLE)) {
    const got: string | undefined = ours[column];
    const text: string | null = want[column] ?? null;
    const context: string = `${what}, row ${id}, column ${column}: ours ${got}, MariaDB ${text}`;
    if (kind === 'float' && text !== null) {
      // FLOAT: our shortest decimal must read back as the very float MariaDB stored (its exact double value).
      assert.equal(Math.fround(Number(got)), Number(text), context);
    } else if (kind === 'double' && text !== null) {
      assert.equal(Number(got), Number(text), context);
    } else if (lossyLabels && (column === 'e' || column === 's')) {
      assert.equal(got, expected(kind, text).replace(/[\u{10000}-\u{10FFFF}]/gu, '?'), context);
    } else {
      assert.equal(got, expected(kind, text), context);
    }
  }
}


/**
 * The raw JSON text of each member of the object `text` (one level deep, e.g. an event's `data`):
 * `{"a": 18446744073709551615}` → `{ a: '18446744073709551615' }`, digits and spelling kept.
 */
export function rawMembers(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  let i = skipSpace(text, 0);
  if (text[i] !== '{') throw new Error(`not a JSON object: ${text.slice(0, 80)}`);
  i = skipSpace(text, i + 1);
  if (text[i] === '}') return out;
  for (;;) {
    const keyEnd = endOfValue(text, i);
    const key = JSON.parse(text.slice(i, keyEnd)) as string;
    i = skipSpace(text, keyEnd);
    if (text[i] !== ':') throw new Error(`expected ':' at ${i} of ${text.slice(0, 80)}`);
    const start = skipSpace(text, i + 1);
    const end = endOfValue(text, start);
    out[key] = text.slice(start, end);
    i = skipSpace(text, end);
    if (text[i] === '}') return out;
    if (text[i] !== ',') throw new Error(`expected ',' at ${i} of ${text.slice(0, 80)}`);
    i = skipSpace(text, i + 1);
  }
}

function skipSpace(text: string, i: number): number {
  while (i < text.length && ' \t\r\n'.includes(text[i]!)) i++;
  return i;
}

/** The index just past the JSON value (string, number, literal, object or array) that starts at `i`. */
function endOfValue(text: string, i: number): number {
  let depth = 0;
  let inString = false;
  for (let j = i; j < text.length; j++) {
    const c = text[j]!;
    if (inString) {
      if (c === '\\') j++;
      else if (c === '"') {
        inString = false;
        if (depth === 0) return j + 1;
      }
    } else if (c === '"') inString = true;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      if (depth === 0) return j;
      if (--depth === 0) return j + 1;
    } else if (depth === 0 && ' \t\r\n,'.includes(c)) return j;
  }
  return text.length;
}
