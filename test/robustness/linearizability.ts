// Linearizability of a recorded KV history against the model, by the search of
// Wing & Gong as improved by Lowe (the algorithm porcupine uses): walk the
// calls and returns in time order; at a call, try to take that operation
// next; at a return of an operation not yet taken, undo the last choice.
// Memoising (set of operations taken, model state) cuts repeated work, and the
// model's revision checks leave few choices: a write must answer the next
// revision, a read the current one. An operation with an unknown outcome has
// no return, so it may be taken at any point after its call, or at the end,
// which is the same as never. The search is bounded: past `maxSteps` it
// answers "inconclusive" instead of running on.
import type { Operation, WatchEvent } from './history';
import { initialState, sameKv, showKv, step, stateHash, type ModelState } from './model';

interface Entry {
  op: number;
  isCall: boolean;
  time: number;
  match?: Entry;
  prev?: Entry;
  next?: Entry;
}

export interface Linearized {
  ok: true;
  /** Operations in the order found, with the state after each and the events each produced. */
  order: { op: Operation; state: ModelState; events: WatchEvent[] }[];
  steps: number;
}

export interface NotLinearizable {
  ok: false;
  steps: number;
  /** The operation that could not be placed before it returned. */
  failing: Operation;
  /** The longest prefix that could be linearized, and the state after it. */
  prefix: Operation[];
  state: ModelState;
  /** Why each candidate at that point was refused. */
  refusals: { op: Operation; reason: string }[];
}

export interface Inconclusive {
  ok: 'inconclusive';
  steps: number;
}

export type Verdict = Linearized | NotLinearizable | Inconclusive;

/** Two 32-bit random words per operation, xored into the memo key as operations are taken (Zobrist hashing). */
function zobrist(n: number): Uint32Array {
  const z = new Uint32Array(n * 2);
  let s = 0x9e3779b9;
  for (let i = 0; i < z.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    z[i] = s >>> 0;
  }
  return z;
}

/**
 * Events that watches saw, by revision. When given, a step that makes revision r
 * must make exactly these events: the watches then decide between orders the KV
 * answers alone leave open (two writes with unknown outcomes, two lease
 * expiries), as etcd's robustness suite uses them to patch its histories.
 */
export type Observed = ReadonlyMap<number, readonly WatchEvent[]>;

function observedMismatch(observed: Observed | undefined, rev: number, events: WatchEvent[]): string | null {
  const seen = observed?.get(rev);
  if (!seen || !events.length) return null;
  if (seen.length !== events.length || seen.some((e, i) => e.type !== events[i].type || !sameKv(e.kv, events[i].kv))) {
    return `the watches saw ${seen.map((e) => `${e.type} ${showKv(e.kv)}`).join(', ')} at revision ${rev}, this would make ${events.map((e) => `${e.type} ${showKv(e.kv)}`).join(', ')}`;
  }
  return null;
}

/** step, held to what the watches saw, and to no revision beyond `maxRevision`. */
function observedStep(observed: Observed | undefined, state: ModelState, op: Operation, maxRevision = Infinity): ReturnType<typeof step> {
  const r = step(state, op.input, op.output, op);
  if ('reject' in r) return r;
  if (r.state.rev > maxRevision) return { reject: `would make revision ${r.state.rev}, beyond any revision anyone saw (${maxRevision})` };
  const m = observedMismatch(observed, r.state.rev, r.events);
  return m ? { reject: m } : r;
}

/**
 * The highest revision anyone saw: in an answer or in a watch. A write whose
 * outcome is unknown cannot be placed to make a revision above it: nothing
 * could come after it (revisions only go up), so "it never took effect"
 * explains the history as well, and trying it everywhere would explode.
 */
export function highestSeen(ops: Operation[], observed?: Observed): number {
  let max = 0;
  for (const o of ops) {
    const r = (o.output as { revision?: number } | undefined)?.revision;
    if (typeof r === 'number' && r > max) max = r;
  }
  for (const rev of observed?.keys() ?? []) if (rev > max) max = rev;
  return max;
}

export function checkLinearizable(ops: Operation[], opts: { maxSteps?: number; initial?: ModelState; observed?: Observed } = {}): Verdict {
  const maxSteps = opts.maxSteps ?? 5_000_000;
  const observed = opts.observed;
  const maxRevision = Math.max(highestSeen(ops, observed), opts.initial?.rev ?? initialState.rev);
  const entries: Entry[] = [];
  const callOf: Entry[] = [];
  ops.forEach((op, i) => {
    const call: Entry = { op: i, isCall: true, time: op.call };
    const ret: Entry = { op: i, isCall: false, time: op.ret };
    call.match = ret;
    entries.push(call, ret);
    callOf.push(call);
  });
  // Calls before returns at the same instant: touching operations count as concurrent.
  entries.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? a.op - b.op : a.isCall ? -1 : 1));
  const head: Entry = { op: -1, isCall: false, time: -Infinity };
  let last = head;
  for (const e of entries) {
    last.next = e;
    e.prev = last;
    last = e;
  }
  const lift = (e: Entry) => {
    e.prev!.next = e.next;
    if (e.next) e.next.prev = e.prev;
    const m = e.match!;
    m.prev!.next = m.next;
    if (m.next) m.next.prev = m.prev;
  };
  const unlift = (e: Entry) => {
    const m = e.match!;
    m.prev!.next = m;
    if (m.next) m.next.prev = m;
    e.prev!.next = e;
    if (e.next) e.next.prev = e;
  };

  const z = zobrist(ops.length);
  let z1 = 0;
  let z2 = 0;
  const seen = new Set<string>();
  type Frame = { entry: Entry; state: ModelState; events: WatchEvent[]; skipped?: boolean };
  const stack: Frame[] = [];
  let state = opts.initial ?? initialState;
  let entry = head.next;
  let steps = 0;
  let deepest = -1;
  let deepestAt: { prefix: number[]; state: ModelState; failing: number } | null = null;

  // Steps count the choices made and undone; tries (a candidate refused) are cheaper and bounded apart.
  let tries = 0;
  while (head.next) {
    if (steps > maxSteps || tries > maxSteps * 20) return { ok: 'inconclusive', steps };
    if (!entry) break; // unreachable: a return entry always ends the list
    if (entry.isCall) {
      const op = ops[entry.op];
      const r = observedStep(observed, state, op, maxRevision);
      // An unknown outcome is taken only where it changes something: taking it where it changes
      // nothing is the same as never taking it, which its end (below) allows. Without this, each
      // such operation doubles the states to search.
      const idle = op.ret === Infinity && 'state' in r && r.state === state;
      tries++;
      if ('state' in r && !idle) {
        const n1 = (z1 ^ z[entry.op * 2]) >>> 0;
        const n2 = (z2 ^ z[entry.op * 2 + 1]) >>> 0;
        const key = `${n1}:${n2}:${stateHash(r.state)}`;
        if (!seen.has(key)) {
          seen.add(key);
          steps++;
          stack.push({ entry, state, events: r.events });
          state = r.state;
          z1 = n1;
          z2 = n2;
          lift(entry);
          entry = head.next;
          continue;
        }
      }
      entry = entry.next;
    } else if (ops[entry.op].ret === Infinity) {
      // the end of an operation whose outcome is unknown, not taken: it never took effect
      const call = callOf[entry.op];
      stack.push({ entry: call, state, events: [], skipped: true });
      lift(call);
      z1 = (z1 ^ z[entry.op * 2]) >>> 0;
      z2 = (z2 ^ z[entry.op * 2 + 1]) >>> 0;
      entry = head.next;
    } else {
      if (stack.length > deepest) {
        deepest = stack.length;
        deepestAt = { prefix: stack.filter((f) => !f.skipped).map((f) => f.entry.op), state, failing: entry.op };
      }
      // undo the last choice (and every "never took effect" above it: that was no choice)
      let top: Frame | undefined;
      steps++;
      do {
        top = stack.pop();
        if (!top) break;
        state = top.state;
        z1 = (z1 ^ z[top.entry.op * 2]) >>> 0;
        z2 = (z2 ^ z[top.entry.op * 2 + 1]) >>> 0;
        unlift(top.entry);
      } while (top.skipped);
      if (!top) break;
      entry = top.entry.next;
    }
  }

  if (!head.next) {
    const order: Linearized['order'] = [];
    let s = opts.initial ?? initialState;
    for (const frame of stack) {
      if (frame.skipped) continue;
      const r = observedStep(observed, s, ops[frame.entry.op]) as { state: ModelState; events: WatchEvent[] };
      order.push({ op: ops[frame.entry.op], state: r.state, events: r.events });
      s = r.state;
    }
    return { ok: true, order, steps };
  }
  const at = deepestAt!;
  const taken = new Set(at.prefix);
  const failing = ops[at.failing];
  // The candidates at the deepest point: every operation not taken that was called before the failing one returned.
  const refusals = ops
    .filter((op, i) => !taken.has(i) && op.call <= failing.ret)
    .map((op) => {
      const r = observedStep(observed, at.state, op, maxRevision);
      return { op, reason: 'reject' in r ? r.reject : 'fits here, but nothing that must follow it does' };
    });
  return { ok: false, steps, failing, prefix: at.prefix.map((i) => ops[i]), state: at.state, refusals };
}

/** A readable account of a violation, for the report. */
export function describeViolation(v: NotLinearizable, show: (op: Operation) => string): string {
  const lines = [
    `Not linearizable: ${show(v.failing)} cannot be placed before it returned.`,
    `The longest linearizable prefix has ${v.prefix.length} operations and ends at revision ${v.state.rev}; its last ones:`,
    ...v.prefix.slice(-8).map((op) => `  ${show(op)}`),
    'The state there:',
    ...[...v.state.kvs.values()].map((kv) => `  ${showKv(kv)}`),
    'Each operation that could come next, and why it cannot:',
    ...v.refusals.map((r) => `  ${show(r.op)}: ${r.reason}`),
  ];
  return lines.join('\n');
}
