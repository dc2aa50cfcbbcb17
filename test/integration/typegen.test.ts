/**
 * typegen against a real database: the column type map it writes equals the hand-written one the
 * broker tests decode with, enums, domains, arrays, odd names and replica identity come out
 * right, and the generated file compiles with tsc (strict) against the SDK, with wrong types
 * refused (each @ts-expect-error below must be an error, or tsc fails).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import YAML from 'yaml';
import { generateTypes } from '../../src/cli/typegen.js';
import { loadConfig } from '../../src/config/load.js';
import { COLUMN_TYPES, TABLES_SQL } from '../support/consumer-workload.js';
import { databaseSection, REPO_ROOT } from '../support/daemon.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';

const run = promisify(execFile);

const EXTRA_SQL = `
  CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
  CREATE DOMAIN cents AS int8 CHECK (VALUE >= 0);
  CREATE SCHEMA audit;
  CREATE TABLE audit."Odd Table" (
    "Key" uuid NOT NULL, n int2, m mood NOT NULL, moods mood[], price cents, prices cents[],
    "with space" text, d date, t timetz, i interval, f4 float4 NOT NULL, js json, ts timestamp[]
  );
  CREATE UNIQUE INDEX odd_key ON audit."Odd Table" ("Key");
  ALTER TABLE audit."Odd Table" REPLICA IDENTITY USING INDEX odd_key;
  CREATE TABLE nokey (a text);`;

const USAGE = `
import { createConsumer, type Change } from 'wal-listener/consumer';
import { columnTypes, type AuditOddTable, type PublicAccounts, type PublicTransfers, type Tables } from './generated.js';

const consumer = createConsumer({ broker: 'nats', servers: 'localhost:4222', topic: 'wal', name: 'app', tables: columnTypes });
consumer.on<PublicAccounts>('public.accounts', (change: Change<PublicAccounts>) => {
  const id: bigint = change.after!.id;
  const balance: string = change.after!.balance;
  const opened: Date = change.after!.opened;
  const micros: number = change.after!.opened.microseconds;
  const photo: Buffer | null = change.after!.photo;
  return [id, balance, opened, micros, photo];
});
consumer.on<Tables['public.transfers']>('public.transfers', (change) => change.after?.meta);
const transfer: PublicTransfers<{ exact: string }>['amount'] = { exact: '1.5' };
const odd: Pick<AuditOddTable, 'm' | 'moods' | 'price' | 'prices' | 'with space' | 'Key'> = {
  m: 'happy', moods: ['sad', null], price: 5n, prices: [1n, null], 'with space': null, Key: 'a4d6',
};
// @ts-expect-error int8 is bigint, not number
const wrongId: PublicAccounts['id'] = 1;
// @ts-expect-error NOT NULL columns are not nullable
const wrongOpened: PublicAccounts['opened'] = null;
// @ts-expect-error an enum is its labels only
const wrongMood: AuditOddTable['m'] = 'angry';
// @ts-expect-error bytea is a Buffer
const wrongPhoto: PublicAccounts['photo'] = 'abc';
export { transfer, odd, wrongId, wrongOpened, wrongMood, wrongPhoto };
`;

describe('typegen', () => {
  let db: TestDatabase;
  let dir: string;
  let configPath: string;

  before(async () => {
    db = await createTestDatabase('wl_typegen');
    await db.sql(TABLES_SQL + EXTRA_SQL);
    dir = mkdtempSync(join(tmpdir(), 'wl-typegen-'));
    configPath = join(dir, 'config.yml');
    writeFileSync(configPath, YAML.stringify({ listener: { slotName: 'unused' }, database: databaseSection(db), publisher: { type: 'stdout', topic: 'wal' } }));
  });

  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    await db?.drop();
  });

  it('writes the column type map of the tables and TypeScript that compiles strictly against the SDK', async () => {
    const { config } = loadConfig(configPath, {});
    const source = await generateTypes(config, ['public.accounts', 'public.transfers', 'public.tags', 'audit.Odd Table', 'public.nokey']);
    writeFileSync(join(dir, 'generated.ts'), source);

    const generated = (await import(pathToFileURL(join(dir, 'generated.ts')).href)) as { columnTypes: Record<string, unknown> };
    const { 'audit.Odd Table': odd, 'public.nokey': nokey, ...workload } = generated.columnTypes;
    assert.deepEqual(workload, COLUMN_TYPES, 'the same map as the hand-written one the broker tests use');
    assert.deepEqual(odd, {
      columns: { Key: 'uuid', n: 'int2', m: 'mood', moods: 'mood[]', price: 'int8', prices: 'int8[]', 'with space': 'text', d: 'date', t: 'timetz', i: 'interval', f4: 'float4', js: 'json', ts: 'timestamp[]' },
      key: ['Key'],
    });
    assert.deepEqual(nokey, { columns: { a: 'text' }, key: [] });
    assert.match(source, /export interface PublicAccounts<N = string> \{\n {2}id: bigint;\n {2}v: number;\n {2}balance: N;\n {2}opened: Timestamp;\n {2}photo: Buffer \| null;\n {2}nickname: string \| null;\n {2}doc: string;\n\}/);
    assert.match(source, /m: "sad" \| "ok" \| "happy";\n {2}moods: \("sad" \| "ok" \| "happy" \| null\)\[\] \| null;/);

    writeFileSync(join(dir, 'usage.ts'), USAGE);
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          noUnusedLocals: true,
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          skipLibCheck: true,
          types: ['node'],
          typeRoots: [join(REPO_ROOT, 'node_modules/@types')],
          paths: { 'wal-listener/consumer': [join(REPO_ROOT, 'src/consumer/index.ts')] },
        },
        files: ['generated.ts', 'usage.ts'],
      }),
    );
    const tsc = join(REPO_ROOT, 'node_modules/typescript/bin/tsc');
    const result = await run(process.execPath, [tsc, '-p', join(dir, 'tsconfig.json')]).then(
      () => '',
      (err: { stdout?: string }) => err.stdout ?? String(err),
    );
    assert.equal(result, '', 'tsc reports nothing');
  });

  it('runs as a command: TypeScript on stdout; a missing table exits 2 naming it', async () => {
    const entry = join(REPO_ROOT, 'src/cli.ts');
    const { stdout } = await run(process.execPath, ['--import', 'tsx', entry, 'typegen', '-c', configPath, 'public.tags'], { cwd: REPO_ROOT });
    assert.match(stdout, /export interface PublicTags \{\n {2}id: number;/);
    assert.match(stdout, /"public\.tags": \{ columns: \{ id: "int4", v: "int4", labels: "text\[\]", counts: "int8\[\]", flag: "bool", seen: "timestamptz" \}, key: \["id"\] \},/);
    const failed = await run(process.execPath, ['--import', 'tsx', entry, 'typegen', '-c', configPath, 'public.nope'], { cwd: REPO_ROOT }).then(
      () => assert.fail('typegen of a missing table succeeded'),
      (err: { code?: number; stderr?: string }) => err,
    );
    assert.equal(failed.code, 2);
    assert.match(failed.stderr ?? '', /^wal-listener typegen: table public\.nope does not exist in database wl_typegen_\w+ \[WAL_USAGE\]$/m);
  });
});
