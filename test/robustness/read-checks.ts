// What the linearizability search leaves out, checked against the history it
// linearized: reads at a past revision (the state at that revision, or
// "compacted" only below a compaction that was asked for), serializable reads
// (a state the store really had, never ahead of the store), compactions, and
// that nothing acknowledged was lost.
import type { Operation } from './history';
import { diffRange, rangeOf, type ModelState } from './model';
import type { Violation } from './watch-checks';

const OUT_OF_RANGE = 11;

export function show(op: Operation): string {
  const i = op.input as any;
  const args = Object.entries(i)
    .filter(([k]) => k !== 'type')
    .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`)
    .join(' ');
  const o = op.output as any;
  const res = !o ? `unknown (${op.unknown ?? 'no answer'})` : o.error ? `error ${o.error.code} "${o.error.message}"` : `rev ${o.revision}${o.succeeded !== undefined ? (o.succeeded ? ' succeeded' : ' failed') : ''}${o.kvs ? ` ${o.kvs.length} kvs` : ''}${o.deleted !== undefined ? ` deleted ${o.deleted}` : ''}${o.id ? ` id ${o.id}` : ''}`;
  return `#${op.id} client ${op.client} (instance ${op.instance}, ${op.transport}) ${i.type} ${args} -> ${res} [${op.call.toFixed(1)}, ${op.ret === Infinity ? '?' : op.ret.toFixed(1)}] ms`;
}

/** The state after each revision of a linearized history. */
export function statesByRevision(initial: ModelState, order: { state: ModelState }[]): Map<number, ModelState> {
  const m = new Map<number, ModelState>([[initial.rev, initial]]);
  for (const s of order) m.set(s.state.rev, s.state);
  return m;
}

export function checkReads(ops: Operation[], states: Map<number, ModelState>, finalRevision: number): Violation[] {
  const out: Violation[] = [];
  const fail = (check: string, op: Operation, message: string) => out.push({ check, message: `${show(op)}: ${message}` });
  const compactions = ops.filter((o) => o.input.type === 'compact');
  const acked = ops.filter((o) => o.output && !('error' in o.output));
  // The highest revision acknowledged to anyone before time t.
  const ackedBefore = (t: number) => acked.reduce((m, o) => (o.ret < t ? Math.max(m, (o.output as { revision: number }).revision) : m), 0);
  for (const op of [...ops].sort((a, b) => a.ret - b.ret)) {
    const i = op.input;
    const o = op.output as any;
    if (o && !o.error && typeof o.revision === 'number') {
      if (o.revision > finalRevision) fail('future', op, `answered revision ${o.revision}, beyond the store's final revision ${finalRevision}`);
    }
    if (i.type !== 'range' || !o || (!i.revision && !i.serializable)) continue;
    if (i.revision) {
      const compactedBefore = compactions.some((c) => c.input.type === 'compact' && c.input.revision > i.revision! && c.output && !('error' in c.output) && c.ret < op.call);
      const compactedMaybe = compactions.some((c) => c.input.type === 'compact' && c.input.revision > i.revision! && c.call < op.ret);
      if (o.error) {
        if (o.error.code === OUT_OF_RANGE && /compacted/.test(o.error.message) && !compactedMaybe) fail('compaction', op, 'compacted, but no compaction above that revision had been asked for');
        if (o.error.code === OUT_OF_RANGE && /future/.test(o.error.message) && i.revision <= ackedBefore(op.call)) fail('stale', op, `a future revision, although revision ${ackedBefore(op.call)} had been acknowledged before the read`);
        continue;
      }
      if (compactedBefore) fail('compaction', op, 'served a revision that a finished compaction had removed');
      const at = states.get(i.revision);
      if (!at) continue; // a revision the linearization did not reach (the search was cut short)
      const diff = diffRange(rangeOf(at.kvs, i.key, i.end), o, i.limit);
      if (diff) fail('historical read', op, `at revision ${i.revision}: ${diff}`);
      continue;
    }
    // serializable
    if (o.error) continue;
    const at = states.get(o.revision);
    if (at) {
      const diff = diffRange(rangeOf(at.kvs, i.key, i.end), o, i.limit);
      if (diff) fail('serializable read', op, `the store at revision ${o.revision} held something else: ${diff}`);
    }
  }
  // per-client monotonicity of everything but serializable reads (a client never sees the store go back)
  const lastSeen = new Map<number, number>();
  for (const op of [...ops].sort((a, b) => a.call - b.call)) {
    const o = op.output as any;
    if (!o || o.error || typeof o.revision !== 'number' || op.input.type === 'compact') continue;
    const before = lastSeen.get(op.client) ?? 0;
    if (o.revision < before && !(op.input.type === 'range' && op.input.serializable)) fail('monotonic', op, `revision ${o.revision} after this client saw ${before}`);
    lastSeen.set(op.client, Math.max(before, o.revision));
  }
  return out;
}

/** Nothing acknowledged is lost: the final reads (after faults healed) show every acknowledged write's revision or later. */
export function checkDurable(ops: Operation[], finals: Operation[]): Violation[] {
  const out: Violation[] = [];
  const top = ops.reduce<Operation | null>((m, o) => {
    const r = (o.output as any)?.revision;
    return typeof r === 'number' && !(o.output as any).error && (!m || r > (m.output as any).revision) ? o : m;
  }, null);
  for (const f of finals) {
    const r = (f.output as any)?.revision;
    if (top && typeof r === 'number' && r < (top.output as any).revision) out.push({ check: 'durable', message: `${show(f)}: the store is at revision ${r} after the run, but ${show(top)} was acknowledged` });
  }
  return out;
}
