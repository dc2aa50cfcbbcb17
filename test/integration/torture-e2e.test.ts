/**
 * The torture table (test/fixtures/torture.ts) through the whole daemon: rows are inserted while
 * the daemon streams with the stdout publisher, and every published `data` value must be, byte for
 * byte, the JSON literal the fixture expects (raw text is compared, so int8 digits beyond 2^53
 * count). The one value that cannot be converted losslessly (an array with lower bound 2) must be
 * reported in the log as a conversion problem.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TORTURE_COLUMNS, TORTURE_ROW_COUNT, TORTURE_TABLE_SQL, TORTURE_TYPES_SQL, expectedJson, tortureInserts } from '../fixtures/torture.js';
import { databaseSection, startDaemon, type DaemonProcess } from '../support/daemon.js';
import { waitFor } from '../support/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

/** The raw JSON text of each member of a JSON object text (top level only). */
function rawMembers(json: string): Map<string, string> {
  const members = new Map<string, string>();
  let i = json.indexOf('{') + 1;
  const skipSpace = (): void => {
    while (/\s/.test(json[i] ?? '')) i++;
  };
  const endOfString = (start: number): number => {
    let j = start + 1;
    while (json[j] !== '"') j += json[j] === '\\' ? 2 : 1;
    return j + 1;
  };
  for (;;) {
    skipSpace();
    if (json[i] === '}') return members;
    const keyEnd = endOfString(i);
    const key = JSON.parse(json.slice(i, keyEnd)) as string;
    i = keyEnd;
    skipSpace();
    i++; // ':'
    skipSpace();
    const start = i;
    let depth = 0;
    while (i < json.length) {
      const c = json[i];
      if (c === '"') {
        i = endOfString(i);
        if (depth === 0) break;
        continue;
      }
      if (c === '{' || c === '[') depth++;
      else if (c === '}' || c === ']') depth--;
      if (depth < 0 || (depth === 0 && c === ',')) break;
      i++;
      if (depth === 0 && (c === '}' || c === ']')) break;
    }
    members.set(key, json.slice(start, i).trim());
    skipSpace();
    if (json[i] === ',') i++;
  }
}

describe('torture table through the daemon (stdout publisher)', () => {
  let db: TestDatabase;
  let daemon: DaemonProcess | undefined;

  before(async () => {
    db = await createTestDatabase('wltort');
    await db.sql(TORTURE_TYPES_SQL);
    await db.sql(TORTURE_TABLE_SQL);
  });

  after(async () => {
    await daemon?.kill();
    await db?.drop();
  });

  it('publishes every value as the expected JSON', async () => {
    daemon = await startDaemon({
      listener: { slotName: db.slotName('tort'), publication: 'torture_pub' },
      database: databaseSection(db),
      publisher: { type: 'stdout', topic: 'wal' },
    });
    const client = await db.client();
    try {
      for (const insert of tortureInserts()) await client.query(insert.sql, insert.params);
    } finally {
      await client.end();
    }
    const lines = await waitFor('all torture rows on stdout', () => {
      const found = daemon!.stdout().split('\n').filter((l) => l.includes('"table":"torture"'));
      return found.length >= TORTURE_ROW_COUNT ? found : undefined;
    }, 30_000);
    assert.equal(await daemon.stop(), 0);

    const mismatches: string[] = [];
    for (const line of lines) {
      const event = rawMembers(line);
      const data = rawMembers(event.get('data') ?? '{}');
      const id = Number(data.get('id'));
      for (const column of TORTURE_COLUMNS) {
        const actual = data.get(column.name);
        const expected = expectedJson(column.name, id).trim(); // json keeps its input's spaces; outside the value they don't count
        if (actual !== expected) mismatches.push(`${column.name} row ${id}: ${actual} expected ${expected}`);
      }
      assert.doesNotThrow(() => JSON.parse(line), line);
    }
    assert.deepEqual(mismatches, []);
    const problems = daemon.logs().filter((r) => /could not be converted/.test(String(r.msg)));
    assert.deepEqual(problems.map((r) => r.typeOid), [1007], 'the array with explicit bounds is reported, once');
  });
});
