// Range, as etcd applies it: fetch (limit + 1 to learn `more`, or everything
// when a filter or sort needs the whole range), filter by mod/create revision,
// sort, cut at the limit. `count` is the number of keys in the range at the
// revision, before the limit and before the filters.
import { ErrCompacted, ErrFutureRev } from '../errors';
import type { ReadView } from './driver';
import { keyRange } from './key-range';
import type { KeyValue } from './kv';
import { num, SortOrder, SortTarget, type RangeRequest, type RangeResponse } from './requests';

export async function executeRange(view: ReadView, r: RangeRequest): Promise<RangeResponse> {
  const requested = num(r.limit);
  const minMod = num(r.min_mod_revision);
  const maxMod = num(r.max_mod_revision);
  const minCreate = num(r.min_create_revision);
  const maxCreate = num(r.max_create_revision);

  let limit = requested;
  if (r.sort_order !== SortOrder.NONE || minMod !== 0 || maxMod !== 0 || minCreate !== 0 || maxCreate !== 0) {
    limit = 0; // fetch everything; sort and cut afterwards
  }
  if (limit > 0) limit++; // one extra tells whether there is more

  const current = view.revision;
  const asked = num(r.revision);
  if (asked > current) throw ErrFutureRev;
  const revision = asked <= 0 ? current : asked;
  if (revision < view.compactRevision) throw ErrCompacted;

  const res = await view.range({
    ...keyRange(r.key, r.range_end),
    revision,
    limit: limit > 0 ? limit : 0,
    countOnly: r.count_only,
    keysOnly: r.keys_only,
  });

  let kvs = r.count_only ? [] : res.kvs;
  if (maxMod !== 0) kvs = kvs.filter((kv) => kv.mod_revision <= maxMod);
  if (minMod !== 0) kvs = kvs.filter((kv) => kv.mod_revision >= minMod);
  if (maxCreate !== 0) kvs = kvs.filter((kv) => kv.create_revision <= maxCreate);
  if (minCreate !== 0) kvs = kvs.filter((kv) => kv.create_revision >= minCreate);

  let order = r.sort_order;
  // Results come ascending by key; another target with no order means ascending.
  if (r.sort_target !== SortTarget.KEY && order === SortOrder.NONE) order = SortOrder.ASCEND;
  if (order !== SortOrder.NONE) {
    const cmp = comparator(r.sort_target);
    // Array.prototype.sort is stable: ties keep ascending key order, as etcd's
    // insertion sort does for small results.
    kvs = [...kvs].sort(order === SortOrder.DESCEND ? (a, b) => cmp(b, a) : cmp);
  }

  let more = false;
  if (requested > 0 && kvs.length > requested) {
    kvs = kvs.slice(0, requested);
    more = true;
  }
  if (r.keys_only) kvs = kvs.map((kv) => ({ ...kv, value: EMPTY_VALUE }));
  return { header: { revision: current }, kvs, more, count: res.count };
}

const EMPTY_VALUE = Buffer.alloc(0);

function comparator(target: number): (a: KeyValue, b: KeyValue) => number {
  switch (target) {
    case SortTarget.VERSION:
      return (a, b) => a.version - b.version;
    case SortTarget.CREATE:
      return (a, b) => a.create_revision - b.create_revision;
    case SortTarget.MOD:
      return (a, b) => a.mod_revision - b.mod_revision;
    case SortTarget.VALUE:
      return (a, b) => Buffer.compare(a.value, b.value);
    default:
      return (a, b) => Buffer.compare(a.key, b.key);
  }
}
