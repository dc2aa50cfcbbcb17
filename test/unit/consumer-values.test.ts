/** The consumer's value decoding: lossless JSON, timestamps, PostgreSQL array text, typed columns in both event formats. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseJson } from '../../src/consumer/json.js';
import { parsePgArray } from '../../src/consumer/pg-array.js';
import { Timestamp } from '../../src/consumer/timestamp.js';
import { converterFor } from '../../src/consumer/values.js';

describe('parseJson', () => {
  it('keeps integers beyond 2^53 exact as bigint and leaves the rest as JSON.parse does', () => {
    const text = '{"a":9007199254740993,"b":-9223372036854775808,"c":9007199254740991,"d":1.5,"e":[12345678901234567890,1],"f":"9007199254740993","g":1e300,"h":{"x":null,"y":true}}';
    assert.deepEqual(parseJson(text), {
      a: 9007199254740993n,
      b: -9223372036854775808n,
      c: 9007199254740991,
      d: 1.5,
      e: [12345678901234567890n, 1],
      f: '9007199254740993',
      g: 1e300,
      h: { x: null, y: true },
    });
  });

  it('parses like JSON.parse on the slow path too: escapes, whitespace, __proto__ as an own key', () => {
    const text = ' { "s" : "a\\"b\\u00e9\\n" , "n": [ 1 , 2.5e3, -0, 1234567890123456 ] , "__proto__": {"p": 1}, "big": 99999999999999999 } ';
    const parsed = parseJson(text) as Record<string, unknown>;
    const { big, ...rest } = parsed;
    const reference = JSON.parse(text) as Record<string, unknown>;
    delete reference.big;
    assert.deepEqual(rest, reference);
    assert.equal(big, 99999999999999999n);
    assert.equal(Object.getPrototypeOf(parsed), Object.prototype);
    assert.deepEqual(Object.getOwnPropertyDescriptor(parsed, '__proto__')?.value, { p: 1 });
  });

  it('turns only integer tokens into bigints: not digits in strings, fractions or exponents', () => {
    const text = '{"s":"a,12345678901234567890,b","k":"\\"12345678901234567890","f":12345678901234567890.5,"e":12345678901234567890e2,"g":0.12345678901234567,"big":[-12345678901234567890]}';
    assert.deepEqual(parseJson(text), { ...(JSON.parse(text) as object), big: [-12345678901234567890n] });
  });

  it('rejects bad JSON on both paths', () => {
    assert.throws(() => parseJson('{"a":1'), SyntaxError);
    assert.throws(() => parseJson('{"a":12345678901234567890'), SyntaxError);
    assert.throws(() => parseJson('{"a":12345678901234567890} x'), SyntaxError);
    assert.throws(() => parseJson('[12345678901234567890,]'), SyntaxError);
  });
});

describe('Timestamp', () => {
  it('is a Date that keeps the published text and its microseconds', () => {
    const t = Timestamp.from('2024-02-29T08:15:56.123456Z');
    assert.ok(t instanceof Date);
    assert.equal(t.toISOString(), '2024-02-29T08:15:56.123Z');
    assert.equal(t.microseconds, 456);
    assert.equal(t.text, '2024-02-29T08:15:56.123456Z');
    assert.equal(JSON.stringify({ t }), '{"t":"2024-02-29T08:15:56.123456Z"}');
  });

  it('reads zone-less timestamps as UTC, offsets, Go and PostgreSQL text forms, expanded and BC years, infinity', () => {
    const iso = (text: string): string => Timestamp.from(text).toISOString();
    assert.equal(iso('2024-02-29T13:45:56.123456'), '2024-02-29T13:45:56.123Z');
    assert.equal(iso('2024-02-29T08:15:56.12Z'), '2024-02-29T08:15:56.120Z');
    assert.equal(iso('2024-02-29T08:15:56Z'), '2024-02-29T08:15:56.000Z');
    assert.equal(iso('2024-02-29T10:15:56+02:00'), '2024-02-29T08:15:56.000Z');
    assert.equal(iso('2024-02-29 08:15:56.5+00'), '2024-02-29T08:15:56.500Z');
    assert.equal(iso('2024-02-29 13:45:56+05:30'), '2024-02-29T08:15:56.000Z');
    assert.equal(iso('+010000-01-01T00:00:00.000000Z'), '+010000-01-01T00:00:00.000Z');
    assert.equal(iso('-000043-03-15T00:00:00.000000Z'), '-000043-03-15T00:00:00.000Z');
    assert.equal(iso('0044-03-15 00:00:00 BC'), '-000043-03-15T00:00:00.000Z');
    assert.equal(iso('0099-12-31T23:59:59.000000Z'), '0099-12-31T23:59:59.000Z');
    const inf = Timestamp.from('infinity');
    assert.equal(inf.infinite, 1);
    assert.ok(inf > Timestamp.from('+200000-01-01T00:00:00Z'));
    assert.equal(Timestamp.from('-infinity').infinite, -1);
    assert.throws(() => Timestamp.from('yesterday'), RangeError);
    assert.throws(() => Timestamp.from('2024-02-29T08:15:5x.123456Z'), RangeError, 'a non-digit in the daemon\'s own form');
    assert.throws(() => Timestamp.from('2024-02-29T08:15:56.12345xZ'), RangeError);
  });
});

describe('parsePgArray', () => {
  it('reads PostgreSQL array text: NULL, quotes, escapes, nesting, dimensions, delimiters', () => {
    assert.deepEqual(parsePgArray('{}'), []);
    assert.deepEqual(parsePgArray('{1,2,NULL,null}'), ['1', '2', null, null]);
    assert.deepEqual(parsePgArray('{"NULL","a b","c\\"d","e\\\\f",""}'), ['NULL', 'a b', 'c"d', 'e\\f', '']);
    assert.deepEqual(parsePgArray('{{1,2},{3,4}}'), [['1', '2'], ['3', '4']]);
    assert.deepEqual(parsePgArray('[0:1]={7,8}'), ['7', '8']);
    assert.deepEqual(parsePgArray('{(1\\,2);(3,4)}', ';'), ['(1,2)', '(3,4)']);
    assert.deepEqual(parsePgArray('{ a b , c }'), ['a b', 'c']);
    assert.throws(() => parsePgArray('{1,2'), RangeError);
    assert.throws(() => parsePgArray('1,2'), RangeError);
  });
});

describe('column converters', () => {
  const native = (type: string, value: unknown): unknown => (converterFor(type, { format: 'native' }) ?? ((v: unknown) => v))(value);
  const compat = (type: string, value: unknown): unknown => (converterFor(type, { format: 'compat' }) ?? ((v: unknown) => v))(value);

  it('native: int8 always bigint, floats with NaN/Infinity, numeric exact or a decimal, bytea from base64, timestamps, arrays', () => {
    assert.equal(native('int8', 42), 42n);
    assert.equal(native('bigint', 9007199254740993n), 9007199254740993n);
    assert.equal(native('int4', 7), 7);
    assert.equal(native('float8', 1.5), 1.5);
    assert.ok(Number.isNaN(native('float8', 'NaN')));
    assert.equal(native('float4', '-Infinity'), -Infinity);
    assert.equal(native('numeric', '12345678901234567890.1234567890'), '12345678901234567890.1234567890');
    const decimal = converterFor('numeric', { format: 'native', decimal: (text) => ({ decimal: text }) })!;
    assert.deepEqual(decimal('1.10'), { decimal: '1.10' });
    assert.deepEqual(native('bytea', '3q2+7w=='), Buffer.from([0xde, 0xad, 0xbe, 0xef]));
    assert.equal((native('timestamptz', '2024-02-29T08:15:56.123456Z') as Timestamp).microseconds, 456);
    assert.deepEqual(native('jsonb', { a: [1, 2n] }), { a: [1, 2n] });
    assert.equal(native('json', 'a string value'), 'a string value');
    assert.deepEqual(native('int8[]', [1, null, [2, 9007199254740993n]]), [1n, null, [2n, 9007199254740993n]]);
    assert.deepEqual(native('_bytea', ['3q2+7w==', null]), [Buffer.from([0xde, 0xad, 0xbe, 0xef]), null]);
    assert.deepEqual(native('int4[]', '[0:1]={7,8}'), [7, 8], 'an array JSON cannot express arrives as its text');
    assert.equal(native('text', 'x'), 'x');
    assert.equal(native('uuid', '6f1c0000-0000-4000-8000-000000000000'), '6f1c0000-0000-4000-8000-000000000000');
    assert.throws(() => native('timestamptz', 17), RangeError);
  });

  it("compat: ihippik/wal-listener's shapes (floats, json and oid as strings; bytea and arrays as PostgreSQL text)", () => {
    assert.equal(compat('float8', '1.5'), 1.5);
    assert.ok(Number.isNaN(compat('float4', 'NaN')));
    assert.equal(compat('oid', '16384'), 16384);
    assert.equal(compat('int8', 9007199254740993n), 9007199254740993n);
    assert.deepEqual(compat('json', '{"a":[1,9007199254740993]}'), { a: [1, 9007199254740993n] });
    assert.deepEqual(compat('jsonb', { a: 1 }), { a: 1 });
    assert.equal(compat('jsonb', 'a string value'), 'a string value');
    assert.deepEqual(compat('bytea', '\\xdeadbeef'), Buffer.from([0xde, 0xad, 0xbe, 0xef]));
    assert.deepEqual(compat('int8[]', '{1,NULL,9007199254740993}'), [1n, null, 9007199254740993n]);
    assert.deepEqual(compat('bool[]', '{t,f}'), [true, false]);
    assert.deepEqual(compat('float8[]', '{1.5,NaN,-Infinity}'), [1.5, NaN, -Infinity]);
    assert.deepEqual(compat('text[]', '{"a,b",c}'), ['a,b', 'c']);
    assert.deepEqual(compat('bytea[]', '{"\\\\x00ff"}'), [Buffer.from([0, 255])]);
    const ts = compat('timestamptz[]', '{"2024-02-29 08:15:56.123456+00"}') as Timestamp[];
    assert.equal(ts[0]!.toISOString(), '2024-02-29T08:15:56.123Z');
    assert.equal((compat('timestamptz', '2024-02-29T08:15:56.12345Z') as Timestamp).microseconds, 450);
    assert.equal(compat('interval', '1 day 02:00:00'), '1 day 02:00:00');
    assert.throws(() => compat('bytea', '\\xzz'), RangeError);
    assert.throws(() => compat('int4', 'seven'), RangeError);
  });
});
