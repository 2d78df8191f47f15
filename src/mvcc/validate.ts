// Request checks that etcd makes before a request reaches the store. They
// need no data, so they run before a write joins a batch; a request that fails
// here changes nothing.
import {
  ErrDuplicateKey,
  ErrEmptyKey,
  ErrInvalidSortOption,
  ErrKeyNotFound,
  ErrLeaseProvided,
  ErrTooManyOps,
  ErrValueProvided,
  keyTooLong,
} from '../errors';
import { isTooDeep } from './txn-nesting';
import { leaseId, type DeleteRangeRequest, type PutRequest, type RangeRequest, type RequestOp, type TxnRequest } from './requests';

export function checkRange(r: RangeRequest): void {
  if (r.key.length === 0) throw ErrEmptyKey;
  if (!(r.sort_order >= 0 && r.sort_order <= 2)) throw ErrInvalidSortOption;
  if (!(r.sort_target >= 0 && r.sort_target <= 4)) throw ErrInvalidSortOption;
}

export function checkPut(r: PutRequest): void {
  if (r.key.length === 0) throw ErrEmptyKey;
  if (r.ignore_value && r.value.length !== 0) throw ErrValueProvided;
  if (r.ignore_lease && leaseId(r.lease) !== '0') throw ErrLeaseProvided;
}

export function checkDelete(r: DeleteRangeRequest): void {
  if (r.key.length === 0) throw ErrEmptyKey;
}

/**
 * The op budget: max(compares, success, failure) <= maxOps, and a nested txn
 * gets what the enclosing level leaves of it.
 */
export function checkTxn(r: TxnRequest, maxOps: number): void {
  if (isTooDeep(r)) throw ErrTooManyOps;
  const opc = Math.max(r.compare.length, r.success.length, r.failure.length);
  if (opc > maxOps) throw ErrTooManyOps;
  for (const c of r.compare) if (c.key.length === 0) throw ErrEmptyKey;
  for (const op of r.success) checkOp(op, maxOps - opc);
  for (const op of r.failure) checkOp(op, maxOps - opc);
}

function checkOp(op: RequestOp, maxOps: number): void {
  switch (op.request) {
    case 'request_range':
      return checkRange(op.request_range!);
    case 'request_put':
      return checkPut(op.request_put!);
    case 'request_delete_range':
      return checkDelete(op.request_delete_range!);
    case 'request_txn':
      return checkTxn(op.request_txn!, maxOps);
    default:
      throw ErrKeyNotFound; // an empty op: etcd answers this
  }
}

/** Refuses keys the storage cannot hold (SQL index limits); etcd itself has none below the request size. */
export function checkKeyLength(key: Buffer, max: number): void {
  if (key.length > max) throw keyTooLong(max);
}

export function checkTxnKeyLengths(r: TxnRequest, max: number): void {
  for (const op of [...r.success, ...r.failure]) {
    if (op.request === 'request_put') checkKeyLength(op.request_put!.key, max);
    else if (op.request === 'request_txn') checkTxnKeyLengths(op.request_txn!, max);
  }
}

/** Bytes a write will add: what the batcher counts to keep transactions bounded. */
export function writeBytes(r: TxnRequest): number {
  let n = 0;
  for (const op of [...r.success, ...r.failure]) {
    if (op.request === 'request_put') n += op.request_put!.key.length + op.request_put!.value.length;
    else if (op.request === 'request_txn') n += writeBytes(op.request_txn!);
    else n += 64;
  }
  return n;
}

/** True when no branch, at this level, holds anything but ranges. */
export function isTxnReadOnly(r: TxnRequest): boolean {
  return r.success.every((op) => op.request === 'request_range') && r.failure.every((op) => op.request === 'request_range');
}

// --- duplicate keys --------------------------------------------------------
// etcd refuses a txn whose branch puts one key twice, or puts a key that a
// delete of the same branch covers, walking nested txns (then/else branches
// may put the same key: only one runs). Intervals use etcd's "affine" string
// order, where the empty string is +infinity; like etcd, a delete whose
// range_end is "\0" is taken literally and so never conflicts.

interface Interval {
  begin: string;
  end: string;
}

function affine(a: string, b: string): number {
  if (a.length === 0) return b.length === 0 ? 0 : 1;
  if (b.length === 0) return -1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function point(k: string): Interval {
  return { begin: k, end: k + '\0' };
}

function overlaps(p: Interval, iv: Interval): boolean {
  if (affine(p.begin, iv.begin) < 0 && affine(p.end, iv.begin) <= 0) return false;
  return affine(p.begin, iv.end) < 0;
}

function intersects(dels: Interval[], k: string): boolean {
  const p = point(k);
  return dels.some((iv) => overlaps(p, iv));
}

export function checkDuplicates(ops: RequestOp[]): void {
  collectIntervals(ops);
}

function collectIntervals(ops: RequestOp[]): { puts: Set<string>; dels: Interval[] } {
  const dels: Interval[] = [];
  for (const op of ops) {
    if (op.request !== 'request_delete_range' || !op.request_delete_range) continue;
    const d = op.request_delete_range;
    const k = d.key.toString('latin1');
    dels.push(d.range_end.length !== 0 ? { begin: k, end: d.range_end.toString('latin1') } : point(k));
  }

  const puts = new Set<string>();
  for (const op of ops) {
    if (op.request !== 'request_txn' || !op.request_txn) continue;
    const then = collectIntervals(op.request_txn.success);
    const otherwise = collectIntervals(op.request_txn.failure);
    for (const k of then.puts) {
      if (puts.has(k) || intersects(dels, k)) throw ErrDuplicateKey;
      puts.add(k);
    }
    for (const k of otherwise.puts) {
      if (puts.has(k) && !then.puts.has(k)) throw ErrDuplicateKey;
      if (intersects(dels, k)) throw ErrDuplicateKey;
      puts.add(k);
    }
    dels.push(...then.dels, ...otherwise.dels);
  }

  for (const op of ops) {
    if (op.request !== 'request_put' || !op.request_put) continue;
    const k = op.request_put.key.toString('latin1');
    if (puts.has(k) || intersects(dels, k)) throw ErrDuplicateKey;
    puts.add(k);
  }
  return { puts, dels };
}
