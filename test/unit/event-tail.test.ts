/**
 * The per-transaction parts of events: the native tail (written piece by piece for a
 * transaction's first event, as bytes for later ones) and the text it is made of.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TransactionInfo } from '../../src/pipeline/change.js';
import { jsonText, nativeEncoder, writeEnd, xidJson } from '../../src/pipeline/encoder.js';
import { JsonOut } from '../../src/pipeline/json-out.js';

const infos: TransactionInfo[] = [
  { idPrefix: 'p', commitTime: '2024-02-29T08:15:56.123456Z', position: '16/B374D848', xid: 4711 },
  { idPrefix: 'p', commitTime: '2024-02-29T08:15:56.123000Z', position: 'binlog.000003:4711', xid: '18446744073709551615' },
  { idPrefix: 'p', commitTime: '2024-02-29T08:15:56.123000Z', position: 'bïnlog "3"\\\n:1', xid: 'gtid:é"x' },
  { idPrefix: 'p', commitTime: '2024-02-29T08:15:56Z', position: 'lone \ud800 surrogate', xid: 0 },
];

/** What the tail always was: the template's UTF-8 bytes. */
const expected = (info: TransactionInfo): Buffer => Buffer.from(`,"commitTime":"${info.commitTime}","lsn":${JSON.stringify(info.position)},"xid":${xidJson(info.xid)}}`);

test('the native tail gives the same bytes to every event of a transaction, first or later', () => {
  const out = new JsonOut();
  for (const info of infos) {
    const tail = nativeEncoder.tail(info);
    for (let event = 0; event < 4; event++) {
      out.begin();
      out.ascii('{"id":1');
      writeEnd(out, event === 2 ? ['body'] : null, tail);
      const payload = Buffer.from(out.end());
      const want = Buffer.concat([Buffer.from('{"id":1'), event === 2 ? Buffer.from(',"unchangedToast":["body"]') : Buffer.alloc(0), expected(info)]);
      assert.ok(payload.equals(want), `event ${event} of ${info.position}: ${payload.toString()}`);
      assert.doesNotThrow(() => JSON.parse(payload.toString()));
    }
  }
});

test('jsonText is JSON.stringify', () => {
  const samples = ['', '0/0', 'FFFFFFFF/FFFFFFFF', 'a"b', 'a\\b', '\u007f', '\u0000', 'tab\t', 'é', '\ud800', '😀'];
  for (let c = 0; c < 0x300; c++) samples.push(`x${String.fromCharCode(c)}y`);
  for (const s of samples) assert.equal(jsonText(s), JSON.stringify(s), JSON.stringify(s));
});
