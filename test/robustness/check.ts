// Every checker over one recorded history, and a readable report: the KV
// history must be linearizable (the shortest failing sub-history is shown when
// it is not), and the linearization found is then the reference for reads at a
// revision, serializable reads, compactions, durability and every watch.
import type { History, Operation } from './history';
import { checkLinearizable, describeViolation, highestSeen, type NotLinearizable } from './linearizability';
import { observe, patch, type Observation } from './patch';
import { initialState, isStepped, type ModelState } from './model';
import { checkDurable, checkReads, show, statesByRevision } from './read-checks';
import { checkWatches, eventLog, type Violation } from './watch-checks';

export interface Report {
  ok: boolean;
  linearizable: boolean | 'inconclusive';
  violations: Violation[];
  text: string;
}

/** A request the client never sent (no connection): it had no effect. */
export function notSent(o: Operation): boolean {
  return !!o.output && 'error' in o.output && o.output.error.message.startsWith('not sent');
}

/**
 * The operations the search steps: unknown reads and unknown lease grants say
 * nothing; each granted lease may expire at any time after its TTL; with an
 * observation, unknown writes and expiries are settled by what the watches saw.
 */
export function steppedOperations(ops: Operation[], obs?: Observation): Operation[] {
  const out = ops.filter((o) => isStepped(o.input) && !(o.output === undefined && (o.input.type === 'range' || o.input.type === 'leaseGrant')) && !notSent(o));
  const expiries: Operation[] = [];
  let next = -1;
  for (const g of ops) {
    if (g.input.type !== 'leaseGrant' || !g.output || 'error' in g.output) continue;
    const id = (g.output as { id: string }).id;
    // not before its TTL has run from the grant's call
    expiries.push({ id: next--, client: -1, instance: -1, transport: 'server', call: g.call + g.input.ttl * 1000, ret: Infinity, input: { type: 'leaseExpire', id }, unknown: 'the lease may expire' });
  }
  return obs ? patch(out, expiries, obs) : [...out, ...expiries];
}

/** Shrinks a failing history by dropping operations one at a time while it still fails (from the state where it failed). */
export function shrink(v: NotLinearizable, maxSteps = 200_000): { ops: Operation[]; initial: ModelState } | null {
  let ops = [...v.refusals.map((r) => r.op)];
  if (!ops.includes(v.failing)) ops.push(v.failing);
  const fails = (xs: Operation[]) => checkLinearizable(xs, { initial: v.state, maxSteps }).ok === false;
  if (!fails(ops)) return null;
  for (let i = ops.length - 1; i >= 0; i--) {
    const without = ops.filter((_, j) => j !== i);
    if (without.length && fails(without)) ops = without;
  }
  return { ops, initial: v.state };
}

export function checkHistory(h: History, opts: { maxSteps?: number; shrink?: boolean } = {}): Report {
  const lines: string[] = [];
  const violations: Violation[] = [];
  const ops = h.operations;
  const unknown = ops.filter((o) => !o.output).length;
  lines.push(`seed ${h.seed}, backend ${h.backend}, ${h.instances} instance(s): ${ops.length} operations (${unknown} with unknown outcome), ${h.watches.length} watches, ${h.watches.reduce((n, w) => n + w.responses.length, 0)} watch responses, ${h.faults.length} faults`);
  for (const f of h.faults) lines.push(`  fault at ${(f.time / 1000).toFixed(1)} s: ${f.what}`);

  const t0 = Date.now();
  const compactRevisions = new Set(ops.flatMap((o) => (o.input.type === 'compact' ? [o.input.revision] : [])));
  const obs = observe(h.watches, compactRevisions, highestSeen(ops));
  const stepped = steppedOperations(ops, obs);
  const observed = obs.events;
  let v = checkLinearizable(stepped, { maxSteps: opts.maxSteps, observed });
  if (v.ok === false) {
    // Linearizable without the watches' events? Then the KV answers are fine and a watch is wrong.
    const alone = checkLinearizable(steppedOperations(ops), { maxSteps: opts.maxSteps });
    if (alone.ok !== false) {
      violations.push({ check: 'watch matches KV', message: `no order of the KV history makes the events the full-keyspace watches saw: ${v.refusals.find((r) => /the watches saw/.test(r.reason))?.reason ?? describeViolation(v, show)}` });
      v = alone;
      lines.push('(the watches disagree with every order of the KV answers: the KV history was checked without them)');
    }
  }
  lines.push(`linearizability: ${v.ok === true ? 'linearizable' : v.ok === false ? 'NOT linearizable' : 'inconclusive (search bound reached)'} (${stepped.length} operations, ${v.steps} steps, ${Date.now() - t0} ms)`);

  if (v.ok === false) {
    violations.push({ check: 'linearizable', message: describeViolation(v, show) });
    lines.push(violations[violations.length - 1].message);
    const small = opts.shrink === false ? null : shrink(v);
    if (small) {
      lines.push(`Shortest failing sub-history found (${small.ops.length} operations, from the state above):`);
      for (const op of small.ops) lines.push(`  ${show(op)}`);
    }
    lines.push('Watch and read checks need a linearization; they were not run.');
    return { ok: false, linearizable: false, violations, text: lines.join('\n') };
  }
  if (v.ok === 'inconclusive') {
    lines.push('Watch and read checks need a linearization; they were not run.');
    return { ok: violations.length === 0, linearizable: 'inconclusive', violations, text: lines.join('\n') };
  }

  const finalRevision = Math.max(h.finalRevision ?? 0, v.order.length ? v.order[v.order.length - 1].state.rev : initialState.rev);
  const log = eventLog(v.order);
  const states = statesByRevision(initialState, v.order);
  const compactions = ops.filter((o) => o.input.type === 'compact');
  violations.push(...checkReads(ops, states, finalRevision));
  violations.push(...checkDurable(ops, ops.filter((o) => o.final)));
  violations.push(...checkWatches(h.watches, log, finalRevision, compactions));
  const events = [...log.values()].reduce((n, l) => n + l.length, 0);
  const delivered = h.watches.reduce((n, w) => n + w.responses.reduce((m, r) => m + r.events.length, 0), 0);
  lines.push(`reference: revisions 1..${finalRevision}, ${events} events; watches delivered ${delivered} events`);
  lines.push(violations.length ? `${violations.length} violation(s):` : 'no violations');
  for (const x of violations.slice(0, 50)) lines.push(`  [${x.check}] ${x.message}`);
  return { ok: violations.length === 0, linearizable: true, violations, text: lines.join('\n') };
}
