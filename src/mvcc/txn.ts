// Txn, as etcd applies it:
//   1. decide: evaluate the compares of the txn and of every nested txn on the
//      chosen path, all against the state before the txn;
//   2. check: the pre-checks of the chosen ops (ignore_* needs the key, a
//      lease must exist, a range revision must be readable); one failure
//      fails the whole txn before anything is applied;
//   3. apply the chosen ops in order; later ops see earlier writes.
import { ErrCompacted, ErrFutureRev, ErrKeyNotFound, ErrLeaseNotFound } from '../errors';
import type { ReadView } from './driver';
import { keyRange } from './key-range';
import type { KeyValue } from './kv';
import { executeRange } from './range';
import {
  big,
  CompareResult,
  CompareTarget,
  leaseId,
  num,
  type Compare,
  type DeleteRangeRequest,
  type PutRequest,
  type RangeRequest,
  type RequestOp,
  type TxnRequest,
  type TxnResponse,
  type ResponseOp,
  type PutResponse,
  type DeleteRangeResponse,
} from './requests';
import type { WriteView } from './write-view';

export interface Decision {
  succeeded: boolean;
  ops: RequestOp[];
  /** One decision per nested txn among ops, in order. */
  nested: Decision[];
}

export async function decide(view: ReadView, r: TxnRequest): Promise<Decision> {
  let succeeded = true;
  for (const c of r.compare) {
    if (!(await evalCompare(view, c))) {
      succeeded = false;
      break;
    }
  }
  const ops = succeeded ? r.success : r.failure;
  const nested: Decision[] = [];
  for (const op of ops) {
    if (op.request === 'request_txn' && op.request_txn) nested.push(await decide(view, op.request_txn));
  }
  return { succeeded, ops, nested };
}

/** A compare over a range holds when it holds for every key; an absent key compares as a zero kv. */
async function evalCompare(view: ReadView, c: Compare): Promise<boolean> {
  const { kvs } = await view.range({ ...keyRange(c.key, c.range_end), revision: view.revision, limit: 0, countOnly: false, keysOnly: false });
  if (kvs.length === 0) {
    // A missing value cannot be told from an empty one, so VALUE fails.
    if (c.target === CompareTarget.VALUE) return false;
    return compareKv(c, ZERO_KV);
  }
  return kvs.every((kv) => compareKv(c, kv));
}

const ZERO_KV: KeyValue = { key: Buffer.alloc(0), create_revision: 0, mod_revision: 0, version: 0, value: Buffer.alloc(0), lease: '0' };

function compareKv(c: Compare, kv: KeyValue): boolean {
  let result: number;
  // The operand counts only when the oneof holds the field matching the target.
  const operand = (field: NonNullable<Compare['target_union']>) => (c.target_union === field ? c[field] : undefined);
  switch (c.target) {
    case CompareTarget.VALUE:
      result = Buffer.compare(kv.value, (operand('value') as Buffer | undefined) ?? EMPTY);
      break;
    case CompareTarget.CREATE:
      result = Math.sign(kv.create_revision - num(operand('create_revision') as string | undefined));
      break;
    case CompareTarget.MOD:
      result = Math.sign(kv.mod_revision - num(operand('mod_revision') as string | undefined));
      break;
    case CompareTarget.VERSION:
      result = Math.sign(kv.version - num(operand('version') as string | undefined));
      break;
    case CompareTarget.LEASE: {
      const a = big(kv.lease);
      const b = big(operand('lease') as string | undefined);
      result = a < b ? -1 : a > b ? 1 : 0;
      break;
    }
    default:
      result = 0;
  }
  switch (c.result) {
    case CompareResult.EQUAL:
      return result === 0;
    case CompareResult.NOT_EQUAL:
      return result !== 0;
    case CompareResult.GREATER:
      return result > 0;
    case CompareResult.LESS:
      return result < 0;
    default:
      return true;
  }
}

const EMPTY = Buffer.alloc(0);

/** Visit the non-txn ops on the decided path. */
async function forEachOp(d: Decision, f: (op: RequestOp) => Promise<void>): Promise<void> {
  let n = 0;
  for (const op of d.ops) {
    if (op.request === 'request_txn') await forEachOp(d.nested[n++], f);
    else await f(op);
  }
}

/** Pre-checks of a read-only txn: every range revision readable. */
export async function checkReads(view: ReadView, d: Decision): Promise<void> {
  await forEachOp(d, async (op) => {
    if (op.request === 'request_range') checkRangeRevision(view, op.request_range!);
  });
}

/** Pre-checks of a writing txn, against the state before it. */
export async function checkWrites(view: WriteView, d: Decision): Promise<void> {
  await forEachOp(d, async (op) => {
    if (op.request === 'request_put') await checkPutPreconditions(view, op.request_put!);
  });
  await checkReads(view, d);
}

function checkRangeRevision(view: ReadView, r: RangeRequest): void {
  const rev = num(r.revision);
  if (rev === 0) return;
  if (rev > view.revision) throw ErrFutureRev;
  if (rev < view.compactRevision) throw ErrCompacted;
}

export async function checkPutPreconditions(view: WriteView, p: PutRequest): Promise<void> {
  if ((p.ignore_value || p.ignore_lease) && !(await view.get(p.key))) throw ErrKeyNotFound;
  const lease = leaseId(p.lease);
  if (lease !== '0' && !(await view.leaseExists(lease))) throw ErrLeaseNotFound;
}

/** Apply the decided path. A read-only txn may run on any view. */
export async function applyTxn(view: ReadView | WriteView, d: Decision): Promise<TxnResponse> {
  const responses: ResponseOp[] = [];
  let n = 0;
  for (const op of d.ops) {
    switch (op.request) {
      case 'request_range':
        responses.push({ response_range: await executeRange(view, op.request_range!) });
        break;
      case 'request_put':
        responses.push({ response_put: await applyPut(view as WriteView, op.request_put!) });
        break;
      case 'request_delete_range':
        responses.push({ response_delete_range: await applyDelete(view as WriteView, op.request_delete_range!) });
        break;
      case 'request_txn': {
        // etcd leaves a nested txn's header revision unset.
        const inner = await applyTxn(view, d.nested[n++]);
        responses.push({ response_txn: { ...inner, header: { revision: 0 } } });
        break;
      }
      default:
        responses.push({});
    }
  }
  return { header: { revision: view.revision }, succeeded: d.succeeded, responses };
}

/** Put on a write view; the caller has run the pre-checks. */
export async function applyPut(view: WriteView, p: PutRequest): Promise<PutResponse> {
  const prev = await view.get(p.key);
  if ((p.ignore_value || p.ignore_lease) && !prev) throw ErrKeyNotFound;
  const rev = view.writeRevision;
  const kv: KeyValue = {
    key: p.key,
    value: p.ignore_value ? prev!.value : p.value,
    create_revision: prev ? prev.create_revision : rev,
    mod_revision: rev,
    version: prev ? prev.version + 1 : 1,
    lease: p.ignore_lease ? prev!.lease : leaseId(p.lease),
  };
  view.put(kv, prev);
  return { header: { revision: rev }, prev_kv: p.prev_kv ? prev : null };
}

export async function applyDelete(view: WriteView, d: DeleteRangeRequest): Promise<DeleteRangeResponse> {
  const { kvs } = await view.range({ ...keyRange(d.key, d.range_end), revision: view.revision, limit: 0, countOnly: false, keysOnly: false });
  for (const kv of kvs) view.delete(kv);
  return { header: { revision: view.revision }, deleted: kvs.length, prev_kvs: d.prev_kv ? kvs : [] };
}
