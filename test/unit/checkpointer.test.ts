/** Property test of the delivery rule: random ack orders never confirm past an unacknowledged change. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Checkpointer, type TxnRecord } from '../../src/pipeline/checkpointer.js';

const compareLsn = (a: bigint, b: bigint): number => (a < b ? -1 : a > b ? 1 : 0);
const txn = (): TxnRecord<bigint> => ({ pending: 0, end: undefined, committed: false });

/** Small deterministic PRNG so a failing seed can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Change {
  txn: number;
  acked: boolean;
}

test('random ack orders never confirm past an unacknowledged change', () => {
  for (let seed = 1; seed <= 300; seed++) {
    const random = rng(seed);
    const cp = new Checkpointer<bigint>(5n, compareLsn);
    const txns: { record: TxnRecord<bigint>; endLsn: bigint; committed: boolean }[] = [];
    const changes: Change[] = [];
    const inFlight: number[] = [];
    let lsn = 100n;
    const steps = 200;
    let open: number | null = null;
    for (let step = 0; step < steps || inFlight.length > 0 || open !== null; step++) {
      const r = random();
      if (step < steps && open === null && r < 0.2) {
        txns.push({ record: cp.begin(txn()), endLsn: 0n, committed: false });
        open = txns.length - 1;
      } else if (step < steps && open !== null && r < 0.6) {
        changes.push({ txn: open, acked: false });
        txns[open]!.record.pending++; // what the dispatcher does on add
        inFlight.push(changes.length - 1);
      } else if (open !== null && (r < 0.7 || step >= steps)) {
        lsn += BigInt(1 + Math.floor(random() * 100));
        txns[open]!.endLsn = lsn;
        txns[open]!.committed = true;
        cp.commit(txns[open]!.record, lsn);
        open = null;
      } else if (inFlight.length > 0) {
        const pick = Math.floor(random() * inFlight.length);
        const change = changes[inFlight[pick]!]!;
        inFlight.splice(pick, 1);
        change.acked = true;
        cp.ack(txns[change.txn]!.record, 1);
      }
      // Invariant: the confirmed LSN is the end of a transaction whose predecessors and itself are fully acked.
      const confirmed = cp.confirmed;
      for (let t = 0; t < txns.length; t++) {
        const txn = txns[t]!;
        const done = txn.committed && changes.every((c) => c.txn !== t || c.acked);
        if (!done) {
          assert.ok(!txn.committed || confirmed! < txn.endLsn, `seed ${seed}: confirmed ${confirmed} passes unacked txn ending ${txn.endLsn}`);
          for (let later = t + 1; later < txns.length; later++) {
            if (txns[later]!.committed) assert.ok(confirmed! < txns[later]!.endLsn, `seed ${seed}: confirmed past a later txn while txn ${t} is unacked`);
          }
          break;
        }
      }
    }
    // Everything acked and committed: the last transaction's end is confirmed.
    const last = txns[txns.length - 1];
    if (last) assert.equal(cp.confirmed, last.endLsn, `seed ${seed}`);
    assert.equal(cp.open, 0);
  }
});

test('empty transactions are confirmed once everything before them is', () => {
  const cp = new Checkpointer<bigint>(0n, compareLsn);
  const a = cp.begin(txn());
  a.pending = 2;
  cp.commit(a, 10n);
  const empty = cp.begin(txn());
  cp.commit(empty, 20n);
  assert.equal(cp.confirmed, 0n);
  cp.ack(a, 1);
  assert.equal(cp.confirmed, 0n);
  cp.ack(a, 1);
  assert.equal(cp.confirmed, 20n);
});

test('keepalive WAL end is confirmed only when nothing is open', () => {
  const cp = new Checkpointer<bigint>(10n, compareLsn);
  const a = cp.begin(txn());
  assert.equal(cp.confirmIdle(50n), false);
  a.pending = 1;
  cp.commit(a, 30n);
  assert.equal(cp.confirmIdle(50n), false);
  cp.ack(a, 1);
  assert.equal(cp.confirmed, 30n);
  assert.equal(cp.confirmIdle(50n), true);
  assert.equal(cp.confirmed, 50n);
  assert.equal(cp.confirmIdle(40n), false, 'never goes backwards');
  assert.equal(cp.confirmed, 50n);
});

test('more acks than changes is a bug, not a silent miscount', () => {
  const cp = new Checkpointer<bigint>(0n, compareLsn);
  const a = cp.begin(txn());
  a.pending = 1;
  cp.ack(a, 1);
  assert.throws(() => cp.ack(a, 1), /more acks than messages/);
});
