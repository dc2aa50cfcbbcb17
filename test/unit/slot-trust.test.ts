/**
 * The pure decisions behind slot loss and publication scope: whether a slot can be trusted
 * (slot-history.ts assessSlot) and how an existing publication differs from the filter
 * (publication.ts compareScope, createStatement). The integration and fault tests produce each
 * situation for real; these cover the combinations.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareScope, createStatement, type ExistingPublication, type PublicationScope } from '../../src/sources/postgres/publication.js';
import { assessSlot, invalidation, type SlotFacts, type SlotInfo } from '../../src/sources/postgres/slot-history.js';
import type { SlotRecord } from '../../src/sources/postgres/state.js';

const slot = (extra: Partial<SlotInfo> = {}): SlotInfo => ({
  name: 's1', plugin: 'pgoutput', slotType: 'logical', database: 'db', temporary: false, activePid: null, restartLsn: '0/100',
  confirmedFlush: '0/200', walStatus: 'reserved', safeWalSize: null, conflicting: null, invalidationReason: null, inactiveSince: null, ...extra,
});
const record = (extra: Partial<SlotRecord> = {}): SlotRecord => ({
  slotName: 's1', database: 'db', systemId: '111', publication: 'p', origin: 'created', createdAt: new Date('2026-01-01T00:00:00Z'),
  createdLsn: '0/10', confirmedLsn: '0/180', confirmedAt: new Date('2026-01-02T00:00:00Z'), problem: null, gaps: [], ...extra,
});
const facts = (extra: Partial<SlotFacts>): SlotFacts => ({ slotName: 's1', database: 'db', publication: 'p', systemId: '111', slot: null, record: null, publicationExists: true, ...extra });

test('assessSlot: first start, usable, adopted, moved by pg_upgrade', () => {
  assert.deepEqual(assessSlot(facts({})), { kind: 'new' });
  assert.deepEqual(assessSlot(facts({ slot: slot(), record: record() })), { kind: 'usable', adopt: false, movedFrom: null });
  assert.deepEqual(assessSlot(facts({ slot: slot() })), { kind: 'usable', adopt: true, movedFrom: null });
  assert.deepEqual(assessSlot(facts({ slot: slot(), record: record({ systemId: '999' }) })), { kind: 'usable', adopt: false, movedFrom: '999' });
  assert.deepEqual(assessSlot(facts({ publicationExists: false })), { kind: 'new' }, 'a missing publication with no slot: created with the slot');
  assert.deepEqual(assessSlot(facts({ slot: slot(), record: record(), systemId: 'unknown' })), { kind: 'usable', adopt: false, movedFrom: null }, 'a server that does not tell its system id is not taken for another');
});

test('assessSlot: gone, moved to another system, invalidated, publication missing under the slot', () => {
  const gone = assessSlot(facts({ record: record() }));
  assert.equal(gone.kind, 'broken');
  if (gone.kind !== 'broken') return;
  assert.equal(gone.error.code, 'WAL_PG_SLOT_LOST');
  assert.equal(gone.lostFrom, '0/180');
  assert.match(gone.error.message, /^replication slot "s1" \(created 2026-01-01T00:00:00\.000Z at LSN 0\/10\) no longer exists: .* Changes committed after LSN 0\/180 \(recorded 2026-01-02T00:00:00\.000Z\) were not published/);
  assert.match(gone.error.message, /wal-listener run -c <config> --recreate-slot.*wal-listener backfill -c <config> <schema\.table>/);

  const moved = assessSlot(facts({ record: record(), systemId: '222' }));
  assert.ok(moved.kind === 'broken' && /recorded on PostgreSQL system 111, but this database now belongs to system 222/.test(moved.error.message));

  for (const [info, reason] of [
    [{ walStatus: 'lost' }, /wal_status = lost/],
    [{ walStatus: 'lost', invalidationReason: 'wal_removed' }, /max_slot_wal_keep_size\) \(invalidation_reason = wal_removed\)/],
    [{ conflicting: true, invalidationReason: 'rows_removed' }, /conflict with recovery/],
    [{ conflicting: true }, /conflicting = true/],
    [{ invalidationReason: 'idle_timeout' }, /idle_replication_slot_timeout/],
  ] as const) {
    const verdict = assessSlot(facts({ slot: slot(info), record: record() }));
    assert.ok(verdict.kind === 'broken' && verdict.error.code === 'WAL_PG_SLOT_LOST', JSON.stringify(info));
    assert.match(verdict.error.message, reason);
    assert.equal(verdict.lostFrom, '0/200', 'the slot\'s own confirmed position when it still has one');
  }
  assert.equal(invalidation(slot({ walStatus: 'unreserved' })), null, 'unreserved is a risk, not a loss yet');

  for (const other of [{ plugin: 'test_decoding' }, { slotType: 'physical', plugin: null, database: null }, { database: 'otherdb' }]) {
    const foreign = assessSlot(facts({ slot: slot(other), record: record(), publicationExists: false }));
    assert.ok(foreign.kind === 'foreign' && foreign.error.code === 'WAL_PG_SLOT_MISMATCH', `someone else's slot is never taken for ours: ${JSON.stringify(other)}`);
  }

  const publication = assessSlot(facts({ slot: slot(), record: record(), publicationExists: false }));
  assert.ok(publication.kind === 'broken' && publication.error.code === 'WAL_PG_PUBLICATION');
  assert.match(publication.error.message, /^publication "p" does not exist, but replication slot "s1" \(confirmed up to LSN 0\/200\) streams through it\. The daemon never re-creates a publication under an existing slot/);
});

const scope = (extra: Partial<PublicationScope>): PublicationScope => ({ allTables: false, tables: [], schemas: [], publish: ['insert', 'update', 'delete', 'truncate'], unmatched: [], ...extra });
const existing = (extra: Partial<ExistingPublication>): ExistingPublication => ({ allTables: false, tables: [], schemas: [], publish: ['insert', 'update', 'delete', 'truncate'], ...extra });

test('createStatement: tables, schemas, actions, quoting', () => {
  assert.equal(createStatement('wal-listener', scope({ allTables: true })), 'CREATE PUBLICATION "wal-listener" FOR ALL TABLES');
  assert.equal(
    createStatement('p', scope({ tables: ['public.users', 'we"ird.t'], schemas: ['audit'], publish: ['insert', 'delete'] })),
    `CREATE PUBLICATION "p" FOR TABLE "public"."users", "we""ird"."t", TABLES IN SCHEMA "audit" WITH (publish = 'insert, delete')`,
  );
  assert.equal(createStatement('p', scope({})), 'CREATE PUBLICATION "p"', 'no existing table yet: an empty publication');
});

test('compareScope: what differs, and the statement that fixes it', () => {
  assert.equal(compareScope('p', existing({ tables: ['public.users'] }), scope({ tables: ['public.users'] })), null);
  assert.equal(compareScope('p', existing({ tables: ['audit.a', 'audit.b'], schemas: ['audit'] }), scope({ schemas: ['audit'] })), null, 'a schema covers its tables');

  const narrower = compareScope('p', existing({ allTables: true }), scope({ tables: ['public.users'] }));
  assert.match(narrower!.differences[0]!, /is FOR ALL TABLES, but listener.filter.tables names only public.users/);
  assert.equal(narrower!.fix, 'BEGIN; DROP PUBLICATION "p"; CREATE PUBLICATION "p" FOR TABLE "public"."users"; COMMIT;', 'replaced in one transaction: never missing in the WAL');

  const wider = compareScope('p', existing({ tables: ['public.users'] }), scope({ allTables: true }));
  assert.match(wider!.differences[0]!, /covers only public.users, but no listener.filter.tables is set: changes to other tables are not published/);

  const changed = compareScope('p', existing({ tables: ['public.old'], publish: ['insert'] }), scope({ tables: ['public.users'], schemas: ['audit'], publish: ['insert', 'delete'] }));
  assert.deepEqual(changed!.differences, [
    'publication "p" does not cover public.users, schema audit, which listener.filter.tables names: their changes are not published (daemons with different filters need a listener.publication each)',
    'publication "p" also publishes public.old, which listener.filter.tables does not name (decoded for nothing; UPDATE/DELETE on them need a replica identity)',
    'publication "p" does not publish delete, which listener.filter.tables asks for',
  ]);
  assert.equal(changed!.fix, `ALTER PUBLICATION "p" SET TABLE "public"."users", TABLES IN SCHEMA "audit"; ALTER PUBLICATION "p" SET (publish = 'insert, delete');`);
});
