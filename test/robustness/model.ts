// A model of etcd's KV store for the linearizability checker: the revision,
// each key's value/version/create and mod revisions and lease, and which keys
// each lease holds. `step` applies one request to a state and says whether the
// recorded response could have come from it; it also yields the watch events
// the request produced, which become the reference every watch is checked
// against. States are immutable (a step copies what it changes).
import type { Compare, KeyValue, Request, Response, TxnOp, TxnResult, WatchEvent } from './history';
import { inRange } from './history';

export interface LeaseEntry {
  readonly keys: ReadonlySet<string>;
  /** The earliest time it may expire: its grant's call time plus its TTL. */
  readonly ttlEnd: number;
}

export interface ModelState {
  readonly rev: number;
  readonly kvs: ReadonlyMap<string, KeyValue>;
  /** Granted leases and the keys attached to each. */
  readonly leases: ReadonlyMap<string, LeaseEntry>;
}

/** When a request was called and when it returned (Infinity: unknown). */
export interface Span {
  call: number;
  ret: number;
}

export type StepResult = { state: ModelState; events: WatchEvent[] } | { reject: string };

export const initialState: ModelState = { rev: 1, kvs: new Map(), leases: new Map() };

const hashes = new WeakMap<ModelState, string>();

/** A string that is equal for equal states (the checker's memo key). */
export function stateHash(s: ModelState): string {
  let h = hashes.get(s);
  if (h === undefined) {
    const kvs = [...s.kvs.values()].sort((a, b) => (a.key < b.key ? -1 : 1)).map((kv) => `${kv.key}=${kv.value}/${kv.create}/${kv.mod}/${kv.version}/${kv.lease}`);
    const leases = [...s.leases.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([id, l]) => `${id}:${[...l.keys].sort().join(',')}`);
    h = `${s.rev}|${kvs.join(';')}|${leases.join(';')}`;
    hashes.set(s, h);
  }
  return h;
}

/** The key-values of a range, in key order. */
export function rangeOf(kvs: ReadonlyMap<string, KeyValue>, key: string, end?: string): KeyValue[] {
  return [...kvs.values()].filter((kv) => inRange(kv.key, key, end)).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

export function sameKv(a: KeyValue | undefined, b: KeyValue | undefined): boolean {
  if (!a || !b) return a === b;
  return a.key === b.key && a.value === b.value && a.create === b.create && a.mod === b.mod && a.version === b.version && a.lease === b.lease;
}

export function showKv(kv: KeyValue | undefined): string {
  return kv ? `${kv.key}=${JSON.stringify(kv.value)} (create ${kv.create}, mod ${kv.mod}, version ${kv.version}${kv.lease !== '0' ? `, lease ${kv.lease}` : ''})` : 'absent';
}

/** Compares a range answer with what the state holds; returns why they differ, or null. */
export function diffRange(expected: KeyValue[], got: { kvs: KeyValue[]; count: number; more?: boolean }, limit?: number): string | null {
  const want = limit ? expected.slice(0, limit) : expected;
  if (got.count !== expected.length) return `count ${got.count}, the state holds ${expected.length}`;
  if (got.kvs.length !== want.length) return `${got.kvs.length} keys, the state holds ${want.length}`;
  for (let i = 0; i < want.length; i++) if (!sameKv(got.kvs[i], want[i])) return `${showKv(got.kvs[i])} where the state holds ${showKv(want[i])}`;
  return null;
}

/** A copy of a state that a write can change. */
class Draft {
  kvs: Map<string, KeyValue>;
  leases: Map<string, LeaseEntry>;
  events: WatchEvent[] = [];
  private leasesTouched = false;
  constructor(readonly base: ModelState) {
    this.kvs = new Map(base.kvs);
    this.leases = new Map(base.leases);
  }
  get newRev(): number {
    return this.base.rev + 1;
  }
  private detach(kv: KeyValue | undefined): void {
    if (!kv || kv.lease === '0') return;
    const l = this.leases.get(kv.lease);
    if (l) this.leases.set(kv.lease, { ...l, keys: new Set([...l.keys].filter((k) => k !== kv.key)) });
  }
  put(key: string, value: string, lease = '0'): void {
    const prev = this.kvs.get(key);
    const kv: KeyValue = { key, value, create: prev ? prev.create : this.newRev, mod: this.newRev, version: prev ? prev.version + 1 : 1, lease };
    this.detach(prev);
    const l = this.leases.get(lease);
    if (l) this.leases.set(lease, { ...l, keys: new Set([...l.keys, key]) });
    this.kvs.set(key, kv);
    this.events.push({ type: 'PUT', kv, ...(prev ? { prev } : {}) });
  }
  del(key: string, end?: string): number {
    const doomed = rangeOf(this.kvs, key, end);
    for (const prev of doomed) {
      this.detach(prev);
      this.kvs.delete(prev.key);
      this.events.push({ type: 'DELETE', kv: { key: prev.key, value: '', create: 0, mod: this.newRev, version: 0, lease: '0' }, prev });
    }
    return doomed.length;
  }
  /** Revokes a lease: its keys are deleted in key order, as etcd's lessor does. */
  revoke(id: string): void {
    for (const key of [...(this.leases.get(id)?.keys ?? [])].sort()) this.del(key);
    this.leasesTouched = this.leases.delete(id) || this.leasesTouched;
  }
  /** The new state; the base itself when nothing changed (the search tells no-ops by identity). */
  done(): { state: ModelState; events: WatchEvent[] } {
    const changed = this.events.length > 0;
    if (!changed && !this.leasesTouched) return { state: this.base, events: [] };
    return { state: { rev: changed ? this.newRev : this.base.rev, kvs: this.kvs, leases: this.leases }, events: this.events };
  }
}

function compareHolds(kvs: ReadonlyMap<string, KeyValue>, c: Compare): boolean {
  const kv = kvs.get(c.key);
  // etcd: comparing the value of a missing key always fails; other targets compare with zero.
  if (!kv && c.target === 'VALUE') return false;
  const actual: string | number = c.target === 'VALUE' ? kv!.value : c.target === 'VERSION' ? kv?.version ?? 0 : c.target === 'MOD' ? kv?.mod ?? 0 : kv?.create ?? 0;
  const cmp = actual < c.value ? -1 : actual > c.value ? 1 : 0;
  return c.result === 'EQUAL' ? cmp === 0 : c.result === 'NOT_EQUAL' ? cmp !== 0 : c.result === 'LESS' ? cmp < 0 : cmp > 0;
}

function applyTxnOps(d: Draft, ops: TxnOp[]): TxnResult[] {
  return ops.map((op): TxnResult => {
    if ('put' in op) {
      d.put(op.put.key, op.put.value, op.put.lease);
      return { put: true };
    }
    if ('del' in op) return { deleted: d.del(op.del.key, op.del.end) };
    const kvs = rangeOf(d.kvs, op.range.key, op.range.end);
    return { kvs, count: kvs.length };
  });
}

function isError(r: Response | undefined): r is { error: { code: number; message: string } } {
  return !!r && 'error' in r;
}

const NOT_FOUND = 5;

/**
 * A lease that holds no keys expires unseen: only a later "lease not found"
 * shows it. Rather than try every point where it might have expired (each a
 * different state, which makes the search explode), the model lets such a
 * lease be found gone by a request that returned after its TTL had passed.
 */
function expiredUnseen(s: ModelState, id: string, when?: Span): boolean {
  const l = s.leases.get(id);
  return !!l && l.keys.size === 0 && !!when && when.ret >= l.ttlEnd;
}

function without(s: ModelState, id: string): ModelState {
  const leases = new Map(s.leases);
  leases.delete(id);
  return { rev: s.rev, kvs: s.kvs, leases };
}

/** Applies `input` to `s`; with `output`, also checks that the recorded answer fits. `when` is the request's span. */
export function step(s: ModelState, input: Request, output?: Response, when?: Span): StepResult {
  const out = output as any;
  const checkRev = (r: { state: ModelState; events: WatchEvent[] }): StepResult =>
    !output || out.revision === r.state.rev ? r : { reject: `answered revision ${out.revision}, the state would be at ${r.state.rev}` };
  switch (input.type) {
    case 'range': {
      if (input.revision || input.serializable) return { reject: 'historical and serializable reads are checked against the linearized history, not stepped' };
      if (!output) return { state: s, events: [] };
      if (isError(output)) return { reject: `a linearizable read failed with ${output.error.message}` };
      if (out.revision !== s.rev) return { reject: `read at revision ${out.revision}, the state is at ${s.rev}` };
      const diff = diffRange(rangeOf(s.kvs, input.key, input.end), out, input.limit);
      return diff ? { reject: `read ${diff}` } : { state: s, events: [] };
    }
    case 'put': {
      const lease = input.lease ?? '0';
      if (lease !== '0' && isError(output) && output.error.code === NOT_FOUND && expiredUnseen(s, lease, when)) return { state: without(s, lease), events: [] };
      if (lease !== '0' && !s.leases.has(lease)) {
        if (!output || (isError(output) && output.error.code === NOT_FOUND)) return { state: s, events: [] };
        return { reject: `put with lease ${lease} succeeded, the lease is not granted in this state` };
      }
      if (isError(output)) return { reject: `put failed with ${output.error.message} although its lease exists` };
      const d = new Draft(s);
      d.put(input.key, input.value, lease);
      return checkRev(d.done());
    }
    case 'delete': {
      if (isError(output)) return { reject: `delete failed with ${output.error.message}` };
      const d = new Draft(s);
      const n = d.del(input.key, input.end);
      if (output && out.deleted !== n) return { reject: `deleted ${out.deleted}, the state holds ${n}` };
      return checkRev(d.done());
    }
    case 'txn': {
      if (isError(output)) return { reject: `txn failed with ${output.error.message}` };
      const succeeded = input.compare.every((c) => compareHolds(s.kvs, c));
      if (output && out.succeeded !== succeeded) return { reject: `txn ${out.succeeded ? 'succeeded' : 'failed'}, its compares ${succeeded ? 'hold' : 'do not hold'} in this state` };
      const d = new Draft(s);
      const results = applyTxnOps(d, succeeded ? input.success : input.failure);
      if (output && out.results) {
        for (let i = 0; i < results.length; i++) {
          const want = results[i] as any;
          const got = out.results[i];
          if ('deleted' in want && got?.deleted !== want.deleted) return { reject: `txn op ${i} deleted ${got?.deleted}, the state holds ${want.deleted}` };
          if ('kvs' in want) {
            const diff = diffRange(want.kvs, got ?? { kvs: [], count: -1 });
            if (diff) return { reject: `txn op ${i} read ${diff}` };
          }
        }
      }
      return checkRev(d.done());
    }
    case 'leaseGrant': {
      if (!output) return { state: s, events: [] };
      if (isError(output)) return { state: s, events: [] };
      if (s.leases.has(out.id)) return { reject: `lease ${out.id} granted twice` };
      if (out.revision !== s.rev) return { reject: `lease grant answered revision ${out.revision}, the state is at ${s.rev}` };
      const leases = new Map(s.leases);
      leases.set(out.id, { keys: new Set(), ttlEnd: (when?.call ?? 0) + input.ttl * 1000 });
      return { state: { rev: s.rev, kvs: s.kvs, leases }, events: [] };
    }
    case 'leaseRevoke':
    case 'leaseExpire': {
      // an expiry that deletes nothing changes nothing here (expiredUnseen removes such a lease when it shows)
      if (input.type === 'leaseExpire' && !s.leases.get(input.id)?.keys.size) return { state: s, events: [] };
      if (input.type === 'leaseRevoke' && isError(output) && output.error.code === NOT_FOUND && expiredUnseen(s, input.id, when)) return { state: without(s, input.id), events: [] };
      if (!s.leases.has(input.id)) {
        if (!output || (isError(output) && output.error.code === NOT_FOUND)) return { state: s, events: [] };
        return { reject: `revoke of lease ${input.id} succeeded, the lease is not granted in this state` };
      }
      if (isError(output)) return { reject: `revoke failed with ${output.error.message} although the lease exists` };
      const d = new Draft(s);
      d.revoke(input.id);
      return checkRev(d.done());
    }
    case 'compact':
      return { reject: 'compaction is checked against the linearized history, not stepped' };
  }
}

/** Whether the model steps this request (others are checked against the linearized history afterwards). */
export function isStepped(input: Request): boolean {
  if (input.type === 'compact') return false;
  if (input.type === 'range') return !input.revision && !input.serializable;
  return true;
}
