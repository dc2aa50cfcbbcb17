/** Events → typed changes, in both formats, and the key that orders them. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createDecoder, createEventDecoder } from '../../src/consumer/decode.js';
import { EventDecodeError } from '../../src/consumer/errors.js';
import { Timestamp } from '../../src/consumer/timestamp.js';
import type { ColumnTypeMap } from '../../src/consumer/types.js';

const tables: ColumnTypeMap = {
  'public.accounts': {
    columns: { id: 'int8', balance: 'numeric', opened: 'timestamptz', photo: 'bytea', tags: 'text[]', ratio: 'float8', doc: 'json', note: 'text' },
    key: ['id'],
  },
};

const ID = '00000000-021a-8b71-8122-18c200000000';

describe('createDecoder', () => {
  it('native: typed values, before/after, commit time with microseconds, unchanged TOAST, row key', () => {
    const decode = createDecoder({ format: 'native', tables });
    const body =
      `{"id":"${ID}","schema":"public","table":"accounts","action":"UPDATE",` +
      '"data":{"id":9007199254740993,"balance":"12345678901234567890.1234567890","opened":"2024-02-29T08:15:56.123456Z","photo":"3q2+7w==","tags":["a",null],"ratio":"NaN","doc":{"n":1},"note":null},' +
      '"dataOld":{"id":9007199254740992},"unchangedToast":["big"],"commitTime":"2024-03-01T00:00:00.000001Z","lsn":"0/21AB710","xid":730}';
    const { change, table, key } = decode(body, undefined);
    assert.equal(table, 'public.accounts');
    assert.equal(key, 'public.accounts\u00009007199254740993');
    assert.equal(change.id, ID);
    assert.equal(change.action, 'UPDATE');
    assert.equal(change.lsn, '0/21AB710');
    assert.equal(change.xid, 730);
    assert.equal(change.commitTimeText, '2024-03-01T00:00:00.000001Z');
    assert.ok(change.commitTime instanceof Date);
    assert.equal(change.commitTime.microseconds, 1);
    assert.deepEqual(change.unchangedToast, ['big']);
    assert.deepEqual(change.before, { id: 9007199254740992n });
    const after = change.after!;
    assert.equal(after.id, 9007199254740993n);
    assert.equal(after.balance, '12345678901234567890.1234567890');
    assert.deepEqual(after.opened, Timestamp.from('2024-02-29T08:15:56.123456Z'));
    assert.deepEqual(after.photo, Buffer.from([0xde, 0xad, 0xbe, 0xef]));
    assert.deepEqual(after.tags, ['a', null]);
    assert.ok(Number.isNaN(after.ratio));
    assert.deepEqual(after.doc, { n: 1 });
    assert.equal(after.note, null);
  });

  it('compat: ihippik/wal-listener shapes, DELETE with every old column, no lsn or xid', () => {
    const decode = createDecoder({ format: 'compat', tables, decimal: (text) => `decimal(${text})` });
    const insert = decode(
      `{"id":"${ID}","schema":"public","table":"accounts","action":"INSERT",` +
        '"data":{"id":9007199254740993,"balance":"1.50","opened":"2024-02-29T08:15:56.12345Z","photo":"\\\\xdeadbeef","tags":"{a,NULL}","ratio":"1.5","doc":"{\\"n\\":12345678901234567890}","note":"x"},' +
        '"dataOld":{},"commitTime":"2024-02-29T08:15:56.1Z"}',
      undefined,
    ).change;
    assert.equal(insert.before, null);
    assert.equal(insert.lsn, '');
    assert.equal(insert.xid, undefined);
    assert.equal(insert.commitTime.toISOString(), '2024-02-29T08:15:56.100Z');
    assert.deepEqual(insert.after, {
      id: 9007199254740993n,
      balance: 'decimal(1.50)',
      opened: Timestamp.from('2024-02-29T08:15:56.12345Z'),
      photo: Buffer.from([0xde, 0xad, 0xbe, 0xef]),
      tags: ['a', null],
      ratio: 1.5,
      doc: { n: 12345678901234567890n },
      note: 'x',
    });
    const del = decode(
      `{"id":"${ID}","schema":"public","table":"accounts","action":"DELETE","data":{},` +
        '"dataOld":{"id":7,"balance":null,"opened":null,"photo":null,"tags":null,"ratio":null,"doc":null,"note":null},"commitTime":"2024-02-29T08:15:56Z"}',
      undefined,
    );
    assert.equal(del.change.after, null);
    assert.deepEqual(del.change.before, { id: 7n, balance: null, opened: null, photo: null, tags: null, ratio: null, doc: null, note: null });
    assert.equal(del.key, 'public.accounts\u00007', 'DELETE is ordered by its old key');
  });

  it('orders by the broker key when there is one, and by the whole table without key columns', () => {
    const decode = createDecoder({ format: 'native', tables: {} });
    const body = `{"id":"${ID}","schema":"s","table":"t","action":"TRUNCATE","data":{},"dataOld":{},"commitTime":"2024-02-29T08:15:56.000000Z","lsn":"0/1","xid":1}`;
    assert.equal(decode(body, '{"id":42}').key, 's.t\u0000{"id":42}');
    assert.equal(decode(body, undefined).key, 's.t');
    assert.equal(decode(body, undefined).change.before, null);
  });

  it('says what is wrong with a message that is not an event or has a value of the wrong shape', () => {
    const decode = createDecoder({ format: 'native', tables });
    assert.throws(() => decode('not json', undefined), (err: Error) => err instanceof EventDecodeError && err.code === 'WAL_CONSUMER_DECODE' && /not JSON/.test(err.message));
    assert.throws(() => decode('[1]', undefined), /not a JSON object/);
    assert.throws(() => decode('{"id":"x","schema":"public"}', undefined), /no string "table"/);
    assert.throws(() => decode(`{"id":"x","schema":"public","table":"accounts","action":"MERGE","data":{},"dataOld":{},"commitTime":"2024-02-29T08:15:56Z"}`, undefined), /unknown action "MERGE"/);
    assert.throws(
      () => decode(`{"id":"x","schema":"public","table":"accounts","action":"INSERT","data":{"opened":"soon"},"dataOld":{},"commitTime":"2024-02-29T08:15:56Z"}`, undefined),
      /event x: public\.accounts\.opened: not a timestamp: "soon"/,
    );
  });

  it('createEventDecoder: one event at a time, for events from other transports', () => {
    const decode = createEventDecoder({ tables });
    const change = decode<{ id: bigint }>(`{"id":"${ID}","schema":"public","table":"accounts","action":"INSERT","data":{"id":1},"dataOld":{},"commitTime":"2024-02-29T08:15:56.000000Z","lsn":"0/1","xid":1}`);
    assert.equal(change.after!.id, 1n);
  });
});
