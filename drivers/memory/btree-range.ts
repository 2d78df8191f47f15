// Ranges over a B-tree keyed by the key's latin-1 string: shared by the memory
// driver and the read cache.
import BTree from 'sorted-btree';
import type { RangeQuery, RangeResult } from '../../src/mvcc/driver';
import { keyString, type KeyRange } from '../../src/mvcc/key-range';
import type { KeyValue } from '../../src/mvcc/kv';

export const compareKeys = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export function newTree<V>(): BTree<string, V> {
  return new BTree<string, V>(undefined, compareKeys);
}

/** Visits the values of tree keys inside the range; returns how many visits said yes. */
export function scan<V>(tree: BTree<string, V>, r: KeyRange, visit: (v: V) => boolean): number {
  const lo = keyString(r.key);
  let hi: string | undefined;
  if (r.end && r.end.length > 0) {
    hi = keyString(r.end);
    if (hi <= lo) return 0;
  } else {
    hi = tree.maxKey();
    if (hi === undefined || hi < lo) return 0;
  }
  let n = 0;
  tree.forRange(lo, hi, r.end !== null && r.end.length === 0, (_k, v) => {
    if (visit(v)) n++;
  });
  return n;
}

/** A range over a tree of live kvs (the current view). */
export function rangeLive(tree: BTree<string, KeyValue>, q: RangeQuery): RangeResult {
  if (q.end === null) {
    const kv = tree.get(keyString(q.key));
    return { kvs: kv && !q.countOnly ? [kv] : [], count: kv ? 1 : 0 };
  }
  const kvs: KeyValue[] = [];
  const want = q.countOnly ? 0 : q.limit > 0 ? q.limit : Infinity;
  const count = scan(tree, q, (kv) => {
    if (kvs.length < want) kvs.push(kv);
    return true;
  });
  return { kvs, count };
}
