// What the watches saw, used to settle what the KV answers leave open, as
// etcd's robustness suite patches its histories: a write whose outcome is
// unknown took effect exactly where a watch saw its unique value, and not at
// all if the watches saw every revision and never its value; a lease expired
// where a watch saw its keys deleted with nobody deleting them. Each such
// operation then has a revision and a time by which it happened, instead of
// "any time, or never", which the search would otherwise have to try at every
// step (thousands of them in a long run).
import type { Operation, Response, WatchEvent, WatchRecord } from './history';

export interface Observation {
  /** Events by revision, as a watch of the whole keyspace (with prev_kv where one had it) delivered them. */
  events: Map<number, WatchEvent[]>;
  /** When a watch first delivered each revision. */
  seenAt: Map<number, number>;
  /** Whether every revision from 2 to `upTo` was seen. */
  complete: boolean;
  upTo: number;
}

export function observe(watches: WatchRecord[], compactRevisions: Set<number>, finalRevision: number): Observation {
  const events = new Map<number, WatchEvent[]>();
  const seenAt = new Map<number, number>();
  const whole = watches.filter((w) => w.create.key === '\0' && w.create.end === '\0' && !w.create.filters.length);
  // watches with prev_kv first: their events name the lease a deleted key had
  whole.sort((a, b) => Number(b.create.prevKv) - Number(a.create.prevKv));
  for (const w of whole) {
    const mine = new Map<number, { evs: WatchEvent[]; at: number }>();
    for (const r of w.responses) {
      for (const e of r.events) {
        const m = mine.get(e.kv.mod) ?? { evs: [], at: r.time };
        m.evs.push(e);
        mine.set(e.kv.mod, m);
      }
    }
    for (const [rev, { evs, at }] of mine) {
      // a watch that starts at a compaction's revision may miss that revision's DELETEs (as etcd's do)
      if (rev === w.create.startRevision && compactRevisions.has(rev)) continue;
      if (!events.has(rev) || events.get(rev)!.length < evs.length) events.set(rev, evs);
      seenAt.set(rev, Math.min(seenAt.get(rev) ?? Infinity, at));
    }
  }
  let complete = true;
  for (let r = 2; r <= finalRevision && complete; r++) complete = events.has(r);
  return { events, seenAt, complete, upTo: finalRevision };
}

/** The values an operation writes (unique in a run: each names its client and sequence number). */
function writtenValues(op: Operation): { key: string; value: string; branch?: boolean }[] {
  const i = op.input;
  if (i.type === 'put') return [{ key: i.key, value: i.value }];
  if (i.type !== 'txn') return [];
  const puts = (ops: typeof i.success, branch: boolean) => ops.flatMap((o) => ('put' in o ? [{ key: o.put.key, value: o.put.value, branch }] : []));
  return [...puts(i.success, true), ...puts(i.failure, false)];
}

/**
 * Unknown puts and txns settled by the watches; lease expiries placed where the
 * watches saw them. Returns the operations to search (the others unchanged).
 */
export function patch(ops: Operation[], expiries: Operation[], obs: Observation): Operation[] {
  const byValue = new Map<string, { rev: number }>();
  for (const [rev, evs] of obs.events) for (const e of evs) if (e.type === 'PUT') byValue.set(`${e.kv.key}\0${e.kv.value}`, { rev });
  const out: Operation[] = [];
  for (const op of ops) {
    const values = op.output === undefined ? writtenValues(op) : [];
    if (!values.length) {
      out.push(op);
      continue;
    }
    const hit = values.map((v) => ({ v, seen: byValue.get(`${v.key}\0${v.value}`) })).find((x) => x.seen);
    if (hit) {
      const rev = hit.seen!.rev;
      const output: Response = op.input.type === 'txn' ? ({ revision: rev, succeeded: hit.v.branch! } as Response) : { revision: rev };
      out.push({ ...op, output, ret: Math.max(op.call, obs.seenAt.get(rev) ?? Infinity), unknown: `${op.unknown}; the watches saw it at revision ${rev}` });
    } else if (!obs.complete) out.push(op); // it may have taken effect where no watch looked
    // else: every revision was seen and none holds its value: it never took effect
  }
  // Revisions a request certainly made: puts, deletes that deleted, txns whose branch taken puts.
  const claimed = new Set<number>();
  for (const op of out) {
    const o = op.output as { revision?: number; deleted?: number; succeeded?: boolean } | undefined;
    if (!o || o.revision === undefined || 'error' in o) continue;
    const i = op.input;
    const txnPuts = i.type === 'txn' && (o.succeeded ? i.success : i.failure).some((x) => 'put' in x);
    if (i.type === 'put' || txnPuts || (i.type === 'delete' && (o.deleted ?? 0) > 0)) claimed.add(o.revision);
  }
  const revokedAt = new Map<string, number>();
  for (const op of ops) if (op.input.type === 'leaseRevoke' && op.output && 'revision' in op.output) revokedAt.set(op.input.id, op.output.revision);
  for (const ex of expiries) {
    const id = (ex.input as { id: string }).id;
    const candidates: number[] = [];
    for (const [rev, evs] of obs.events) {
      if (claimed.has(rev) || rev === revokedAt.get(id)) continue;
      if (evs.every((e) => e.type === 'DELETE' && e.prev?.lease === id)) candidates.push(rev);
    }
    if (candidates.length === 1) {
      const rev = candidates[0];
      out.push({ ...ex, ret: Math.max(ex.call, obs.seenAt.get(rev) ?? Infinity), unknown: `the lease expired; the watches saw it at revision ${rev}` });
    } else if (candidates.length > 1 || !obs.complete) out.push(ex); // more than one place it could be (an unknown delete), or one no watch saw
    // else: no revision deletes its keys alone: it expired unseen, or not at all (the model covers both)
  }
  return out;
}
