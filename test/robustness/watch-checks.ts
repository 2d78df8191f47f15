// Watch guarantees, after etcd's API guarantees document, checked for every
// recorded watch stream against the events the linearized KV history produced
// (so every watcher on every instance is held to the same events):
//   ordered       events come in revision order, and a revision's in the order it made them
//   unique        no event twice
//   atomic        a revision's events arrive in one response (unless fragmented)
//   reliable      no gap: from its start up to the last revision it is known to have reached,
//                 a watch delivers every event of its range (after its filters), nothing else
//   resumable     a watch opened at revision r starts exactly at r (the same check, per stream)
//   bookmarkable  a progress notification never runs ahead of the events delivered
//   prev_kv       the previous key-value, when asked for, is the key's state before the event
//   creates       a create is a PUT with version 1 and create = mod revision (compared whole)
//   compaction    a watch canceled as compacted started below a compaction that was asked for
// One allowance, as etcd 3.4 behaves (seen with etcdctl): at exactly a compaction's
// revision C, a watch that reads C back from history gets no DELETE of C (the
// tombstone went with the compaction) and no prev_kv for C's events (the
// previous versions are below C). So at a revision that a compaction requested
// before the watch's last response names, DELETEs may be absent and prev_kv too.
import type { Operation, WatchEvent, WatchRecord } from './history';
import { inRange } from './history';
import { sameKv, showKv } from './model';

export interface Violation {
  check: string;
  message: string;
}

export interface ReferenceEvent extends WatchEvent {
  /** Position within its revision. */
  index: number;
}

/** The events of the linearized history, by revision. */
export type EventLog = Map<number, ReferenceEvent[]>;

export function eventLog(order: { events: WatchEvent[]; state: { rev: number } }[]): EventLog {
  const log: EventLog = new Map();
  for (const step of order) {
    if (!step.events.length) continue;
    const list = log.get(step.state.rev) ?? [];
    for (const e of step.events) list.push({ ...e, index: list.length });
    log.set(step.state.rev, list);
  }
  return log;
}

function showEvent(e: WatchEvent): string {
  return `${e.type} ${showKv(e.kv)}`;
}

function sameEvent(a: WatchEvent, b: WatchEvent, prevKv: boolean): boolean {
  if (a.type !== b.type || !sameKv(a.kv, b.kv)) return false;
  return prevKv ? sameKv(a.prev, b.prev) : a.prev === undefined;
}

/** Checks one watch stream; `compactions` are the compaction requests of the run. */
export function checkWatch(w: WatchRecord, log: EventLog, finalRevision: number, compactions: Operation[]): Violation[] {
  const out: Violation[] = [];
  const name = `watch ${w.id} (instance ${w.instance}, ${w.transport}, [${w.create.key}, ${w.create.end ?? ''}) from ${w.create.startRevision}${w.create.prevKv ? ', prev_kv' : ''}${w.create.filters.length ? `, ${w.create.filters.join('+')}` : ''})`;
  const fail = (check: string, message: string) => out.push({ check, message: `${name}: ${message}` });
  const created = w.responses.find((r) => r.created);
  if (!created) return out; // never opened: nothing was promised
  if (created.canceled) return out; // refused at creation (e.g. compacted): checked below
  const start = w.create.startRevision || created.revision + 1;

  const lastTime = w.responses[w.responses.length - 1].time;
  const boundaries = new Set(compactions.filter((c) => c.input.type === 'compact' && c.call <= lastTime).map((c) => (c.input as { revision: number }).revision));
  const wanted = (e: WatchEvent) =>
    !(e.type === 'DELETE' && boundaries.has(e.kv.mod)) &&
    inRange(e.kv.key, w.create.key, w.create.end) && !(e.type === 'PUT' && w.create.filters.includes('NOPUT')) && !(e.type === 'DELETE' && w.create.filters.includes('NODELETE'));
  // Every event the watch should see up to the final revision, in order; a prefix of it up to any revision.
  const expectedAll: { rev: number; e: ReferenceEvent }[] = [];
  for (let r = start; r <= finalRevision; r++) for (const e of log.get(r) ?? []) if (wanted(e)) expectedAll.push({ rev: r, e });
  const countUpTo = (rev: number): number => {
    let lo = 0;
    let hi = expectedAll.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (expectedAll[mid].rev <= rev) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const expectedUpTo = (rev: number) => expectedAll.slice(0, countUpTo(rev));

  // Every event delivered, with the response it came in.
  const delivered: { rev: number; e: WatchEvent; response: number }[] = [];
  let reached = start - 1; // the revision the stream is known to have delivered everything up to
  let compactedAt: number | undefined;
  // nothing after a cancel belongs to this watch (a stream-wide progress answer may follow it)
  const end = w.responses.findIndex((r) => r.canceled);
  const responses = end >= 0 ? w.responses.slice(0, end + 1) : w.responses;
  responses.forEach((r, i) => {
    if (r.compactRevision) compactedAt = r.compactRevision;
    for (const e of r.events) if (!(e.type === 'DELETE' && boundaries.has(e.kv.mod))) delivered.push({ rev: e.kv.mod, e, response: i });
    const isProgress = !r.created && !r.canceled && !r.compactRevision && r.events.length === 0;
    if (isProgress) {
      // bookmarkable: everything up to the notified revision has been delivered, nothing at or below it follows
      const have = delivered.length;
      const want = countUpTo(r.revision);
      if (have < want) fail('bookmarkable', `progress notification at revision ${r.revision} after ${have} events; ${want} events of its range are at or below that revision`);
      reached = Math.max(reached, r.revision);
    }
  });
  if (w.syncedTo !== undefined) reached = Math.max(reached, w.syncedTo);
  if (delivered.length) reached = Math.max(reached, delivered[delivered.length - 1].rev);
  if (compactedAt !== undefined) {
    const asked = compactions.some((c) => c.input.type === 'compact' && c.input.revision >= compactedAt! && c.call <= responses[responses.length - 1].time);
    if (!asked) fail('compaction', `canceled as compacted at ${compactedAt}, but no compaction to that revision had been asked for`);
  }
  reached = Math.min(reached, finalRevision);

  // ordered and unique
  for (let i = 1; i < delivered.length; i++) {
    const [a, b] = [delivered[i - 1], delivered[i]];
    if (b.rev < a.rev) fail('ordered', `revision ${b.rev} (${showEvent(b.e)}) after revision ${a.rev}`);
    if (b.rev === a.rev && b.e.kv.key === a.e.kv.key) fail('unique', `${showEvent(b.e)} delivered twice`);
  }

  // reliable (and resumable, and prev_kv, and creates): the delivered events are exactly the expected ones
  const expected = expectedUpTo(reached);
  const n = Math.max(expected.length, delivered.length);
  for (let i = 0; i < n; i++) {
    const want = expected[i];
    const got = delivered[i];
    if (!want) {
      fail('reliable', `delivered ${showEvent(got.e)} at revision ${got.rev}, which the history does not hold for this watch (it holds ${expected.length} events up to revision ${reached})`);
      break;
    }
    if (!got) {
      fail('reliable', `never delivered ${showEvent(want.e)} at revision ${want.rev} (delivered ${delivered.length} events; the stream reached revision ${reached})`);
      break;
    }
    const prevKv = w.create.prevKv && !(boundaries.has(got.rev) && got.e.prev === undefined);
    if (got.rev !== want.rev || !sameEvent(got.e, want.e, prevKv)) {
      const what = got.rev !== want.rev || got.e.kv.key !== want.e.kv.key ? 'reliable' : w.create.prevKv && !sameKv(got.e.prev, want.e.prev) ? 'prev_kv' : 'event';
      fail(what, `event ${i}: delivered ${showEvent(got.e)}${got.e.prev ? ` (prev ${showKv(got.e.prev)})` : ''} where the history holds ${showEvent(want.e)}${w.create.prevKv ? ` (prev ${showKv(want.e.prev)})` : ''}`);
      break;
    }
    if (want.e.type === 'DELETE' && got.e.kv.version !== 0) fail('event', `a delete event with version ${got.e.kv.version}`);
  }

  // atomic: a revision's events are never split across responses (unless fragmented)
  for (let i = 1; i < delivered.length; i++) {
    const [a, b] = [delivered[i - 1], delivered[i]];
    if (a.rev === b.rev && a.response !== b.response && !responses[a.response].fragment) {
      fail('atomic', `the events of revision ${a.rev} came in two responses`);
      break;
    }
  }
  return out;
}

/** Checks every watch of a run against the same events: whichever instance served it, it must agree. */
export function checkWatches(watches: WatchRecord[], log: EventLog, finalRevision: number, compactions: Operation[]): Violation[] {
  return watches.flatMap((w) => checkWatch(w, log, finalRevision, compactions));
}
