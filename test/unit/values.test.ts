/**
 * Value converter: (type, Postgres text output) → expected JSON text, for every row of DESIGN.md's
 * "Values" table, special values, extremes, arrays, and invalid input (published as text and
 * reported). Every output must be valid JSON.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RelationColumn } from '../../src/sources/postgres/pgoutput.js';
import { BUILTIN_TYPES, type QueryRows } from '../../src/sources/postgres/type-catalog.js';
import { JsonOut } from '../../src/pipeline/json-out.js';
import { createValueConverters, isJsonNumber, type ToJson } from '../../src/sources/postgres/values.js';

const T = {
  bool: 16, bytea: 17, char: 18, name: 19, int8: 20, int2: 21, int4: 23, text: 25, oid: 26, json: 114, xml: 142,
  point: 600, box: 603, float4: 700, float8: 701, money: 790, inet: 869, bpchar: 1042, varchar: 1043, date: 1082,
  time: 1083, timestamp: 1114, timestamptz: 1184, interval: 1186, timetz: 1266, bit: 1560, numeric: 1700,
  uuid: 2950, pg_lsn: 3220, jsonb: 3802, int4range: 3904, int4multirange: 4451,
  _bool: 1000, _bytea: 1001, _int2: 1005, _int4: 1007, _text: 1009, _int8: 1016, _point: 1017, _box: 1020,
  _float4: 1021, _float8: 1022, _varchar: 1015, _date: 1182, _time: 1183, _timestamp: 1115, _timestamptz: 1185,
  _interval: 1187, _numeric: 1231, _uuid: 2951, _json: 199, _jsonb: 3807, _int4range: 3905,
} as const;

const column = (typeOid: number, name = 'c'): RelationColumn => ({ isKey: false, name, typeOid, typeMod: -1 });

/** [type oid, Postgres text, expected JSON text, reported as a problem?] */
type Case = readonly [number, string, string, boolean?];
const PROBLEM = true;

const cases: Record<string, readonly Case[]> = {
  bool: [
    [T.bool, 't', 'true'],
    [T.bool, 'f', 'false'],
    [T.bool, 'true', '"true"', PROBLEM],
    [T.bool, '', '""', PROBLEM],
  ],
  integers: [
    [T.int2, '-32768', '-32768'],
    [T.int2, '32767', '32767'],
    [T.int4, '0', '0'],
    [T.int4, '-2147483648', '-2147483648'],
    [T.int4, '2147483647', '2147483647'],
    [T.int8, '9223372036854775807', '9223372036854775807'],
    [T.int8, '-9223372036854775808', '-9223372036854775808'],
    [T.int8, '9007199254740993', '9007199254740993'],
    [T.oid, '4294967295', '4294967295'],
    [T.int4, '', '""', PROBLEM],
    [T.int4, '-', '"-"', PROBLEM],
    [T.int4, '01', '"01"', PROBLEM],
    [T.int4, '-0', '-0'],
    [T.int4, '1.5', '"1.5"', PROBLEM],
    [T.int8, '1e3', '"1e3"', PROBLEM],
    [T.int8, ' 1', '" 1"', PROBLEM],
    [T.int8, 'abc', '"abc"', PROBLEM],
  ],
  floats: [
    [T.float4, '1.5', '1.5'],
    [T.float4, '0.1', '0.1'],
    [T.float4, '-0', '-0'],
    [T.float4, '0', '0'],
    [T.float4, '1e+20', '1e+20'],
    [T.float4, '1e-45', '1e-45'], // smallest subnormal float4
    [T.float4, '3.4028235e+38', '3.4028235e+38'],
    [T.float8, '5e-324', '5e-324'], // smallest subnormal float8
    [T.float8, '2.2250738585072014e-308', '2.2250738585072014e-308'],
    [T.float8, '1.7976931348623157e+308', '1.7976931348623157e+308'],
    [T.float8, '-1.5e-07', '-1.5e-07'],
    [T.float8, '123456789.12345679', '123456789.12345679'],
    [T.float8, 'NaN', '"NaN"'],
    [T.float8, 'Infinity', '"Infinity"'],
    [T.float4, '-Infinity', '"-Infinity"'],
    [T.float8, 'inf', '"inf"', PROBLEM],
    [T.float8, '.5', '".5"', PROBLEM],
    [T.float8, '1.', '"1."', PROBLEM],
    [T.float8, '+1', '"+1"', PROBLEM],
    [T.float8, '1e', '"1e"', PROBLEM],
    [T.float8, '', '""', PROBLEM],
  ],
  numeric: [
    [T.numeric, '12345678901234567890.1234567890', '"12345678901234567890.1234567890"'],
    [T.numeric, '1234567890123456789012345678901234567890', '"1234567890123456789012345678901234567890"'],
    [T.numeric, '-0.000000000000000000000000000001', '"-0.000000000000000000000000000001"'],
    [T.numeric, '0.000', '"0.000"'],
    [T.numeric, '-5', '"-5"'],
    [T.numeric, 'NaN', '"NaN"'],
    [T.numeric, 'Infinity', '"Infinity"'],
    [T.numeric, '-Infinity', '"-Infinity"'],
    [T.numeric, '1e5', '"1e5"', PROBLEM],
    [T.numeric, '1..2', '"1..2"', PROBLEM],
    [T.numeric, '1.', '"1."', PROBLEM],
    [T.numeric, '', '""', PROBLEM],
  ],
  json: [
    [T.json, '{"a":[1,2]}', '{"a":[1,2]}'],
    [T.json, ' { "a" : 1 } ', ' { "a" : 1 } '], // json keeps the input text, which is valid JSON
    // ...except line breaks, which can only be whitespace between tokens: one event stays one line.
    [T.json, '{\n  "a": "x\\ny",\r\n  "b": [1,\n2]\n}\n', '{   "a": "x\\ny",    "b": [1, 2] } '],
    [T.json, '"x"', '"x"'],
    [T.json, 'null', 'null'],
    [T.jsonb, '{"a": "x\\"y", "b": [true, null, 1.5e300]}', '{"a": "x\\"y", "b": [true, null, 1.5e300]}'],
    [T.jsonb, '{"ż": "🎉"}', '{"ż": "🎉"}'],
    [T.jsonb, '12345678901234567890', '12345678901234567890'],
  ],
  bytea: [
    [T.bytea, '\\xdeadbeef', '"3q2+7w=="'],
    [T.bytea, '\\x', '""'],
    [T.bytea, '\\x00ff', '"AP8="'],
    [T.bytea, '\\xabc', '"\\\\xabc"', PROBLEM],
    [T.bytea, '\\xzz', '"\\\\xzz"', PROBLEM],
    [T.bytea, '\\xDEADBEEF', '"3q2+7w=="'],
    [T.bytea, '\\x0123456789abcdefABCDEF', '"ASNFZ4mrze+rze8="'],
    [T.bytea, '\\xdeadbeeg', '"\\\\xdeadbeeg"', PROBLEM],
    [T.bytea, '\\xde-dbeef', '"\\\\xde-dbeef"', PROBLEM],
    [T.bytea, '\\xdeadbe0g00', '"\\\\xdeadbe0g00"', PROBLEM],
    [T.bytea, 'abc\\000', '"abc\\\\000"', PROBLEM], // bytea_output=escape is not expected
  ],
  date: [
    [T.date, '2024-02-29', '"2024-02-29"'],
    [T.date, 'infinity', '"infinity"'],
    [T.date, '-infinity', '"-infinity"'],
    [T.date, '0001-01-01', '"0001-01-01"'],
    [T.date, '0001-01-01 BC', '"0000-01-01"'],
    [T.date, '0044-03-15 BC', '"-000043-03-15"'],
    [T.date, '4713-01-01 BC', '"-004712-01-01"'],
    [T.date, '10000-01-01', '"+010000-01-01"'],
    [T.date, '5874897-12-31', '"+5874897-12-31"'],
    [T.date, '02/29/2024', '"02/29/2024"', PROBLEM],
    [T.date, '29.02.2024', '"29.02.2024"', PROBLEM], // DateStyle German: not expected
    [T.date, '2024-13-01 BC', '"2024-13-01 BC"', PROBLEM],
    [T.date, '2024-02-29 AD', '"2024-02-29 AD"', PROBLEM],
  ],
  timestamp: [
    [T.timestamp, '2024-02-29 13:45:56.123456', '"2024-02-29T13:45:56.123456"'],
    [T.timestamp, '2024-02-29 13:45:56', '"2024-02-29T13:45:56.000000"'],
    [T.timestamp, '2024-02-29 13:45:56.5', '"2024-02-29T13:45:56.500000"'],
    [T.timestamp, '2024-02-29 13:45:56.000001', '"2024-02-29T13:45:56.000001"'],
    [T.timestamp, 'infinity', '"infinity"'],
    [T.timestamp, '-infinity', '"-infinity"'],
    [T.timestamp, '0044-03-15 12:00:00 BC', '"-000043-03-15T12:00:00.000000"'],
    [T.timestamp, '0044-03-15 12:00:00.5 BC', '"-000043-03-15T12:00:00.500000"'],
    [T.timestamp, '0044-03-15 12:00:00.123456 BC', '"-000043-03-15T12:00:00.123456"'],
    [T.timestamp, '294276-12-31 23:59:59.999999', '"+294276-12-31T23:59:59.999999"'],
    [T.timestamp, 'Thu Feb 29 13:45:56 2024', '"Thu Feb 29 13:45:56 2024"', PROBLEM],
    [T.timestamp, '2024-02-29 13:45:56+00', '"2024-02-29 13:45:56+00"', PROBLEM],
    [T.timestamp, '2024-02-29 13-45-56', '"2024-02-29 13-45-56"', PROBLEM],
    [T.timestamp, '2024-02-29 25:45:56 BC', '"2024-02-29 25:45:56 BC"', PROBLEM],
    [T.timestamp, '2024-02-29 13:45:56.1234567', '"2024-02-29 13:45:56.1234567"', PROBLEM],
    [T.timestamp, '2024-02-29 13:45:56.', '"2024-02-29 13:45:56."', PROBLEM],
  ],
  timestamptz: [
    [T.timestamptz, '2024-02-29 08:15:56.123456+00', '"2024-02-29T08:15:56.123456Z"'],
    [T.timestamptz, '2024-02-29 08:15:56+00', '"2024-02-29T08:15:56.000000Z"'],
    [T.timestamptz, '2024-02-29 08:15:56.1+00', '"2024-02-29T08:15:56.100000Z"'],
    [T.timestamptz, '2024-02-29 13:45:56.1+05:30', '"2024-02-29T08:15:56.100000Z"'],
    [T.timestamptz, '2024-03-01 00:00:00+01', '"2024-02-29T23:00:00.000000Z"'],
    [T.timestamptz, '2023-12-31 23:00:00-01', '"2024-01-01T00:00:00.000000Z"'],
    [T.timestamptz, '1850-01-01 05:53:28+05:53:28', '"1850-01-01T00:00:00.000000Z"'],
    [T.timestamptz, '1900-01-01 00:19:32.25+00:19:32', '"1900-01-01T00:00:00.250000Z"'],
    [T.timestamptz, '0001-01-01 00:30:00+01', '"0000-12-31T23:30:00.000000Z"'],
    [T.timestamptz, '0044-03-15 12:00:00+00 BC', '"-000043-03-15T12:00:00.000000Z"'],
    [T.timestamptz, '0044-03-15 12:00:00.5+00 BC', '"-000043-03-15T12:00:00.500000Z"'],
    [T.timestamptz, '4713-01-01 00:00:00+00 BC', '"-004712-01-01T00:00:00.000000Z"'],
    [T.timestamptz, '10000-01-01 00:00:00+00', '"+010000-01-01T00:00:00.000000Z"'],
    [T.timestamptz, '294276-12-31 23:59:59.999999+00', '"+294276-12-31T23:59:59.999999Z"'],
    [T.timestamptz, 'infinity', '"infinity"'],
    [T.timestamptz, '-infinity', '"-infinity"'],
    [T.timestamptz, '2024-02-29 08:15:56.123456', '"2024-02-29 08:15:56.123456"', PROBLEM],
    [T.timestamptz, 'Thu Feb 29 08:15:56.123456 2024 UTC', '"Thu Feb 29 08:15:56.123456 2024 UTC"', PROBLEM],
    [T.timestamptz, '2024-02-29 08:15:56+0', '"2024-02-29 08:15:56+0"', PROBLEM],
    [T.timestamptz, '2024-02-29 08:15:56.+00', '"2024-02-29 08:15:56.+00"', PROBLEM],
    [T.timestamptz, '2024-02-29 08:15:56.1234567+00', '"2024-02-29 08:15:56.1234567+00"', PROBLEM],
  ],
  'time, timetz, interval': [
    [T.time, '13:45:56.123456', '"13:45:56.123456"'],
    [T.time, '24:00:00', '"24:00:00"'],
    [T.timetz, '13:45:56.5+05:30', '"13:45:56.5+05:30"'],
    [T.interval, 'P1Y2M-3DT4H5M6.5S', '"P1Y2M-3DT4H5M6.5S"'],
    [T.interval, 'PT0S', '"PT0S"'],
    [T.interval, 'P-1Y', '"P-1Y"'],
    [T.interval, 'PT0.000001S', '"PT0.000001S"'],
    [T.interval, '1 year 2 mons', '"1 year 2 mons"', PROBLEM], // IntervalStyle postgres: not expected
  ],
  'text and other types': [
    [T.text, 'hello', '"hello"'],
    [T.text, '', '""'],
    [T.text, 'żółć 🎉 \u2028', '"żółć 🎉 \u2028"'],
    [T.text, 'a"b\\c\n\t\u0001', '"a\\"b\\\\c\\n\\t\\u0001"'],
    [T.varchar, 'x', '"x"'],
    [T.bpchar, 'ab  ', '"ab  "'],
    [T.char, 'a', '"a"'],
    [T.name, 'pg_class', '"pg_class"'],
    [T.uuid, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"'],
    [T.money, '$1,234.56', '"$1,234.56"'],
    [T.inet, '192.168.0.1/24', '"192.168.0.1/24"'],
    [T.xml, '<a>x</a>', '"<a>x</a>"'],
    [T.point, '(1,2)', '"(1,2)"'],
    [T.bit, '0101', '"0101"'],
    [T.pg_lsn, '0/16B3748', '"0/16B3748"'],
    [T.int4range, '[1,5)', '"[1,5)"'],
    [T.int4multirange, '{[1,5),[7,9)}', '"{[1,5),[7,9)}"'],
    [99999, 'some user type', '"some user type"'], // unknown type without a catalog: text
  ],
  arrays: [
    [T._int4, '{1,NULL,3}', '[1,null,3]'],
    [T._int4, '{}', '[]'],
    [T._int4, '{{1,2},{3,4}}', '[[1,2],[3,4]]'],
    [T._int4, '{{{1,NULL}},{{2,3}}}', '[[[1,null]],[[2,3]]]'],
    [T._int2, '{-32768,32767}', '[-32768,32767]'],
    [T._int8, '{9223372036854775807,-9223372036854775808}', '[9223372036854775807,-9223372036854775808]'],
    [T._text, '{"a\\"b","NULL","",NULL," x","a\\\\b","a,b","{}",plain}', '["a\\"b","NULL","",null," x","a\\\\b","a,b","{}","plain"]'],
    [T._text, '{null}', '[null]'], // array_in reads NULL case-insensitively
    [T._text, '{żółć,"🎉 x"}', '["żółć","🎉 x"]'],
    [T._varchar, '{"a}b","c{d"}', '["a}b","c{d"]'],
    [T._bool, '{t,f,NULL}', '[true,false,null]'],
    [T._float8, '{1.5,NaN,-Infinity,1e+20,-0}', '[1.5,"NaN","-Infinity",1e+20,-0]'],
    [T._float4, '{Infinity}', '["Infinity"]'],
    [T._numeric, '{1.5,NaN,-12345678901234567890.5}', '["1.5","NaN","-12345678901234567890.5"]'],
    [T._jsonb, '{"{\\"a\\": \\"x\\\\\\"y\\"}",NULL,"[1, 2]"}', '[{"a": "x\\"y"},null,[1, 2]]'],
    [T._json, '{"\\"s\\"",null}', '["s",null]'],
    [T._timestamptz, '{"2024-02-29 08:15:56.1+00",infinity,NULL}', '["2024-02-29T08:15:56.100000Z","infinity",null]'],
    [T._timestamp, '{"2024-02-29 13:45:56.123456"}', '["2024-02-29T13:45:56.123456"]'],
    [T._date, '{2024-02-29,"0044-03-15 BC",-infinity}', '["2024-02-29","-000043-03-15","-infinity"]'],
    [T._time, '{13:45:56,24:00:00}', '["13:45:56","24:00:00"]'],
    [T._interval, '{P1D,PT0S}', '["P1D","PT0S"]'],
    [T._bytea, '{"\\\\xdead",NULL,"\\\\x"}', '["3q0=",null,""]'],
    [T._uuid, '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', '["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]'],
    [T._box, '{(1,1),(0,0);(3,3),(2,2)}', '["(1,1),(0,0)","(3,3),(2,2)"]'],
    [T._point, '{"(1,2)","(3,4)"}', '["(1,2)","(3,4)"]'],
    [T._int4range, '{"[1,5)",empty}', '["[1,5)","empty"]'],
    // Lower bounds other than 1 cannot be carried by a JSON array: text, reported.
    [T._int4, '[2:3]={1,2}', '"[2:3]={1,2}"', PROBLEM],
    [T._int4, '[0:1][1:1]={{1},{2}}', '"[0:1][1:1]={{1},{2}}"', PROBLEM],
    // Malformed array text: text, reported.
    [T._int4, '{1,2', '"{1,2"', PROBLEM],
    [T._int4, '{1,,2}', '"{1,,2}"', PROBLEM],
    [T._int4, '{1}}', '"{1}}"', PROBLEM],
    [T._int4, '{1}x', '"{1}x"', PROBLEM],
    [T._text, '{"abc}', '"{\\"abc}"', PROBLEM],
    [T._int4, '', '""', PROBLEM],
    // A bad element is published as its text inside the array (and reported with the element type).
    [T._int4, '{1,x}', '[1,"x"]', PROBLEM],
  ],
};

function harness(query?: QueryRows): {
  convert: (oid: number, text: string) => string;
  write: (oid: number, text: string) => string | undefined;
  problems: Array<[number, string]>;
  forColumn: (c: RelationColumn) => ToJson;
} {
  const problems: Array<[number, string]> = [];
  const converters = createValueConverters({ query, onProblem: (oid, text) => problems.push([oid, text]) });
  return {
    problems,
    forColumn: (c) => converters.forColumn(c),
    convert: (oid, text) => {
      assert.equal(converters.prepare([column(oid)]), undefined, `type ${oid} needs no lookup`);
      return converters.forColumn(column(oid))(text);
    },
    // The byte path, on the text's bytes inside a larger buffer (digits around it must not be read).
    write: (oid, text) => {
      const writer = converters.forColumnWriter(column(oid));
      if (!writer) return undefined;
      const bytes = Buffer.from(`9${text}9`);
      const out = new JsonOut();
      out.begin();
      writer(bytes, 1, bytes.length - 1, out);
      return out.end().toString('utf8');
    },
  };
}

describe('value converters: Postgres text → JSON', () => {
  for (const [group, rows] of Object.entries(cases)) {
    it(group, () => {
      for (const [oid, text, expected, problem = false] of rows) {
        const h = harness();
        const json = h.convert(oid, text);
        const label = `type ${oid}, text ${JSON.stringify(text)}`;
        assert.equal(json, expected, label);
        const reported = [...h.problems];
        const written = h.write(oid, text);
        if (written !== undefined) {
          assert.equal(written, expected, `${label}: the byte path writes the same JSON`);
          assert.deepEqual(h.problems.slice(reported.length), reported, `${label}: the byte path reports the same problems`);
        }
        assert.doesNotThrow(() => JSON.parse(json), label);
        assert.equal(h.problems.length > 0, problem, `${label}: problem reported ${JSON.stringify(h.problems)}`);
        if (problem && oid !== T._int4 && h.problems.length) assert.equal(h.problems[0]?.[0], oid, label);
      }
    });
  }

  it('reports the element type for a bad element and the array type for bad array text', () => {
    const h = harness();
    h.convert(T._int4, '{1,x}');
    h.convert(T._int4, '[2:3]={1,2}');
    assert.deepEqual(h.problems, [
      [T.int4, 'x'],
      [T._int4, '[2:3]={1,2}'],
    ]);
  });

  it('keeps int8 digits that a JS number would round', () => {
    const json = harness().convert(T.int8, '9007199254740993');
    assert.equal(json, '9007199254740993');
    assert.notEqual(String(JSON.parse(json)), '9007199254740993'); // proves the text, not a number, was copied
  });

  it('isJsonNumber follows the JSON grammar', () => {
    for (const ok of ['0', '-0', '1', '10', '1.5', '1e5', '1E+5', '1e-05', '-0.5e-7']) assert.equal(isJsonNumber(ok), true, ok);
    for (const bad of ['', '-', '01', '1.', '.1', '+1', '1e', '1e+', '0x1', 'NaN', '1 ', ' 1', '1.5.5']) assert.equal(isJsonNumber(bad), false, bad);
    // The byte path takes the same numbers as they are and converts the rest by the string path.
    for (const text of ['0', '-0', '1', '10', '1.5', '1e5', '1E+5', '1e-05', '-0.5e-7', '', '-', '01', '1.', '.1', '+1', '1e', '1e+', '0x1', 'NaN', '1 ', ' 1', '1.5.5', '-.5', '1e5.5']) {
      const h = harness();
      assert.equal(h.write(T.float8, text), h.convert(T.float8, text), JSON.stringify(text));
    }
  });

  it('bytea: the byte path writes the base64 Buffer writes, for every length and digit case', () => {
    const h = harness();
    for (let n = 0; n < 40; n++) {
      const bytes = Buffer.from(Array.from({ length: n }, (_, i) => (i * 37 + n * 11) & 0xff));
      for (const hex of [bytes.toString('hex'), bytes.toString('hex').toUpperCase()]) {
        const text = `\\x${hex}`;
        assert.equal(h.write(T.bytea, text), `"${bytes.toString('base64')}"`, text);
        assert.equal(h.convert(T.bytea, text), `"${bytes.toString('base64')}"`, text);
      }
    }
    assert.equal(h.problems.length, 0);
    for (const bad of ['\\xdeadbeeg', '\\xgdeadbee', '\\xdead be', '\\', 'x00']) {
      const p = harness();
      assert.equal(p.write(T.bytea, bad), p.convert(T.bytea, bad), bad);
      assert.equal(p.problems.length, 2, bad);
    }
  });

  it('timestamptz (with offsets), timestamp and date match JavaScript Date over many instants', () => {
    const h = harness();
    const offsets = [-43200, -34200, -3600, 0, 1, 3600, 19800, 20700, 50400, 21208];
    for (let k = 0; k < 2000; k++) {
      // From 4713 BC to beyond 200000 AD, at varied times of day.
      const ms = (-2_400_000 + k * 37_000 + ((k * k) % 1000)) * 86_400_000 + ((k * 7_919_123) % 86_400_000);
      const offset = offsets[k % offsets.length] ?? 0;
      const local = new Date(ms + offset * 1000).toISOString(); // "YYYY-MM-DDTHH:MM:SS.mmmZ" or expanded year
      const abs = Math.abs(offset);
      const zone =
        (offset < 0 ? '-' : '+') + String(Math.floor(abs / 3600)).padStart(2, '0') +
        (abs % 3600 ? ':' + String(Math.floor((abs % 3600) / 60)).padStart(2, '0') + (abs % 60 ? ':' + String(abs % 60).padStart(2, '0') : '') : '');
      let [datePart, timePart] = local.slice(0, -1).split('T') as [string, string];
      let bc = '';
      const year = Number(datePart.slice(0, -6).replace('+', ''));
      if (year <= 0) {
        datePart = String(1 - year).padStart(4, '0') + datePart.slice(-6);
        bc = ' BC';
      } else if (year > 9999) {
        datePart = String(year) + datePart.slice(-6);
      }
      timePart = timePart.replace(/\.?0+$/, (m) => (m.startsWith('.') ? '' : m));
      const pgText = `${datePart} ${timePart}${zone}${bc}`;
      const expected = new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
      assert.equal(h.convert(T.timestamptz, pgText), JSON.stringify(expected), pgText);
      // The same local date-time as timestamp and date (no zone).
      const localIso = local.replace(/\.(\d{3})Z$/, '.$1000');
      assert.equal(h.convert(T.timestamp, `${datePart} ${timePart}${bc}`), JSON.stringify(localIso), `timestamp ${datePart} ${timePart}${bc}`);
      assert.equal(h.convert(T.date, `${datePart}${bc}`), JSON.stringify(localIso.slice(0, localIso.indexOf('T'))), `date ${datePart}${bc}`);
    }
    assert.deepEqual(h.problems, []);
  });
});

describe('type catalog', () => {
  // pg_type rows as the catalog query returns them (the integration test reads the real ones).
  const rows: Record<number, Record<string, unknown>> = {
    16500: { oid: 16500, typtype: 'd', typbasetype: 23, typelem: 0, typdelim: ',', typname: 'posint', is_array: false },
    16501: { oid: 16501, typtype: 'b', typbasetype: 0, typelem: 16500, typdelim: ',', typname: '_posint', is_array: true },
    16510: { oid: 16510, typtype: 'e', typbasetype: 0, typelem: 0, typdelim: ',', typname: 'mood', is_array: false },
    16511: { oid: 16511, typtype: 'b', typbasetype: 0, typelem: 16510, typdelim: ',', typname: '_mood', is_array: true },
    16520: { oid: 16520, typtype: 'c', typbasetype: 0, typelem: 0, typdelim: ',', typname: 'pair', is_array: false },
    16530: { oid: 16530, typtype: 'd', typbasetype: 1007, typelem: 0, typdelim: ',', typname: 'intlist', is_array: false },
    16540: { oid: 16540, typtype: 'd', typbasetype: 16500, typelem: 0, typdelim: ',', typname: 'small', is_array: false },
    16550: { oid: 16550, typtype: 'd', typbasetype: 3802, typelem: 0, typdelim: ',', typname: 'doc', is_array: false },
    16560: { oid: 16560, typtype: 'b', typbasetype: 0, typelem: 16561, typdelim: ';', typname: '_semi', is_array: true },
    16561: { oid: 16561, typtype: 'b', typbasetype: 0, typelem: 0, typdelim: ';', typname: 'semi', is_array: false },
  };
  const fakePgType = (): { query: QueryRows; calls: number[][] } => {
    const calls: number[][] = [];
    return {
      calls,
      query: async (_sql, params) => {
        const oids = params[0] as number[];
        calls.push([...oids]);
        return oids.flatMap((oid) => (rows[oid] ? [rows[oid]] : []));
      },
    };
  };

  it('built-in types need no query', () => {
    const pg = fakePgType();
    const converters = createValueConverters({ query: pg.query, onProblem: () => {} });
    assert.equal(converters.prepare([...BUILTIN_TYPES.keys()].map((oid) => column(oid))), undefined);
    assert.deepEqual(pg.calls, []);
  });

  it('resolves domains, enums, arrays of them and nested domains, querying each type once', async () => {
    const pg = fakePgType();
    const problems: unknown[] = [];
    const converters = createValueConverters({ query: pg.query, onProblem: (...p) => problems.push(p) });
    const cols = [16501, 16511, 16520, 16530, 16540, 16550, 16560, 23, 99999].map((oid) => column(oid));
    const prepared = converters.prepare(cols);
    assert.ok(prepared instanceof Promise);
    await prepared;
    assert.deepEqual(pg.calls, [[16501, 16511, 16520, 16530, 16540, 16550, 16560, 99999], [16500, 16510, 16561]]);
    const c = (oid: number, text: string): string => converters.forColumn(column(oid))(text);
    assert.equal(c(16501, '{1,NULL,2}'), '[1,null,2]');
    assert.equal(c(16511, '{happy,"very sad"}'), '["happy","very sad"]');
    assert.equal(c(16520, '(1,"a b")'), '"(1,\\"a b\\")"');
    assert.equal(c(16530, '{{1},{2}}'), '[[1],[2]]');
    assert.equal(c(16540, '7'), '7');
    assert.equal(c(16550, '{"a": 1}'), '{"a": 1}');
    assert.equal(c(16560, '{a,b;c}'), '["a,b","c"]');
    assert.equal(c(99999, 'x'), '"x"'); // not in pg_type (dropped): text
    assert.deepEqual(problems, []);
    // Everything is cached now: no further query.
    assert.equal(converters.prepare(cols), undefined);
    assert.equal(pg.calls.length, 2);
  });

  it('concurrent prepare() calls share one lookup', async () => {
    const pg = fakePgType();
    const converters = createValueConverters({ query: pg.query, onProblem: () => {} });
    await Promise.all([converters.prepare([column(16501)]), converters.prepare([column(16501), column(23)])]);
    assert.deepEqual(pg.calls, [[16501], [16500]]);
  });

  it('a prepare() for a type loaded by a lookup still in progress waits for what it references', async () => {
    const chain: Record<number, Record<string, unknown>> = {
      16600: { oid: 16600, typtype: 'b', typbasetype: 0, typelem: 16601, typdelim: ',', typname: '_d', is_array: true },
      16601: { oid: 16601, typtype: 'd', typbasetype: 16602, typelem: 0, typdelim: ',', typname: 'd', is_array: false },
      16602: { oid: 16602, typtype: 'd', typbasetype: 20, typelem: 0, typdelim: ',', typname: 'd2', is_array: false },
    };
    let releaseRound3: () => void = () => {};
    const round3 = new Promise<void>((resolve) => (releaseRound3 = resolve));
    const calls: number[][] = [];
    const query: QueryRows = async (_sql, params) => {
      const oids = params[0] as number[];
      calls.push([...oids]);
      if (oids.includes(16602)) await round3;
      return oids.flatMap((oid) => (chain[oid] ? [chain[oid]] : []));
    };
    const converters = createValueConverters({ query, onProblem: () => {} });
    const first = converters.prepare([column(16600)]);
    while (calls.length < 3) await new Promise((r) => setImmediate(r)); // rounds 1–2 done, round 3 waiting
    const second = converters.prepare([column(16601)]); // 16601 is loaded, its base 16602 is not
    assert.ok(second instanceof Promise);
    let secondDone = false;
    void second.then(() => (secondDone = true));
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    assert.equal(secondDone, false, 'prepare() must wait until the base type is known');
    releaseRound3();
    await Promise.all([first, second]);
    assert.equal(converters.forColumn(column(16601))('9223372036854775807'), '9223372036854775807');
    assert.equal(converters.forColumn(column(16600))('{1,NULL}'), '[1,null]');
  });

  it('a failed lookup rejects prepare() and is retried by the next prepare()', async () => {
    let fail = true;
    const pg = fakePgType();
    const query: QueryRows = (sql, params) => (fail ? Promise.reject(new Error('connection terminated')) : pg.query(sql, params));
    const converters = createValueConverters({ query, onProblem: () => {} });
    await assert.rejects(converters.prepare([column(16540)]) as Promise<void>, (err: Error & { code?: string }) => {
      assert.equal(err.code, 'WAL_PG_CONNECT');
      assert.match(err.message, /16540.*connection terminated/);
      return true;
    });
    fail = false;
    await converters.prepare([column(16540)]);
    assert.equal(converters.forColumn(column(16540))('5'), '5');
  });

  it('without a query function, unknown types are text and prepare() never waits', () => {
    const converters = createValueConverters({ onProblem: () => {} });
    assert.equal(converters.prepare([column(16540)]), undefined);
    assert.equal(converters.forColumn(column(16540))('5'), '"5"');
  });
});
