// Key intervals as etcd defines them. A range is [key, end):
//   end === null      the single key `key`
//   end.length === 0  every key >= key (the request said range_end = "\0")
//   otherwise         keys k with key <= k < end (empty when key >= end)
import { EMPTY } from './kv';

export interface KeyRange {
  key: Buffer;
  end: Buffer | null;
}

/** Applies etcd's request conventions: empty range_end = one key, "\0" = unbounded. */
export function keyRange(key: Buffer, rangeEnd: Buffer | null | undefined): KeyRange {
  if (!rangeEnd || rangeEnd.length === 0) return { key, end: null };
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return { key, end: EMPTY };
  return { key, end: rangeEnd };
}

export function rangeContains(r: KeyRange, k: Buffer): boolean {
  if (r.end === null) return k.equals(r.key);
  if (Buffer.compare(k, r.key) < 0) return false;
  return r.end.length === 0 || Buffer.compare(k, r.end) < 0;
}

/** The range_end that selects every key with this prefix ("\0" when the prefix is all 0xff). */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

/** Latin-1 strings compare exactly like the bytes they hold: the B-tree key form. */
export function keyString(b: Buffer): string {
  return b.toString('latin1');
}

export function keyBuffer(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}
