// The watch hub: one reader per process tails the store's log and fans every
// revision out to every matching watcher.
//
// Watchers are in one of three states:
//   synced    at the hub's position; they get each new revision as it is read.
//             Indexed by key (exact-key watchers) and by interval (range
//             watchers with the same interval share a group), so matching an
//             event costs one map lookup plus one check per distinct interval,
//             not one check per watcher.
//   catching  behind the hub (a start revision in the past, or a consumer that
//   up        fell behind); replayed from the log in bounded batches of whole
//             revisions, then moved to synced once level with the hub.
//   paused    their consumer is full; they keep their position and resume
//             catching up when the consumer drains. Nothing is dropped.
//   waiting   a start revision in the future; synced once the hub reaches it.
//
// Each watcher receives every event in its range once, in revision order:
// `nextRevision` is the only position, and every path advances it exactly
// past what was delivered.
import type { Driver, LogRead } from './driver';
import { keyString, rangeContains, type KeyRange } from './key-range';
import { EventType, type Event, type KeyValue, type LogEntry } from './kv';
import { tracer } from '../trace';

const trace = tracer('watch');

/** Events of one or more whole revisions for one watcher, shared by watchers that would get the same list. */
export interface EventBatch {
  /** The header revision etcd reports: the revision for live events, the store's revision for replays. */
  revision: number;
  events: Event[];
  /** Encodings cached by the transports, so a thousand watchers cost one encoding. */
  cache?: Map<string, unknown>;
}

export interface WatchTarget {
  readonly range: KeyRange;
  readonly prevKv: boolean;
  readonly noPut: boolean;
  readonly noDelete: boolean;
  /** The next revision this watcher needs. Owned by the hub once added. */
  nextRevision: number;
  /** Whether the consumer can take a message now. */
  writable(): boolean;
  /** Send a batch; returns whether the consumer can take more. */
  deliver(batch: EventBatch): boolean;
  /** The revisions it needs were compacted; the watcher is removed. */
  compacted(compactRevision: number): void;
  /** Called whenever the watcher becomes synced (for progress answers). */
  synced?(): void;
}

export interface HubOptions {
  /** Revisions per log read (live tail and catch-up). */
  batchRevisions: number;
  /** Poll the log this often for other instances' commits; 0 = only on local commits. */
  pollIntervalMs: number;
  /** Replays running at once. */
  catchUpConcurrency: number;
  /**
   * Told of each log read once it is fanned out (the hub's revision is then
   * `log.through`); `after` is where the read started.
   */
  onLog?(log: LogRead, after: number): void;
}

interface Group {
  range: KeyRange;
  watchers: Set<WatchTarget>;
}

type State = 'synced' | 'catching' | 'paused' | 'waiting';

export class WatchHub {
  /** The last revision fanned out to synced watchers. */
  private position = 0;
  private readonly exact = new Map<string, Group>();
  private readonly ranges = new Map<string, Group>();
  private readonly state = new Map<WatchTarget, State>();
  private readonly catchUpQueue: WatchTarget[] = [];
  private readonly waiting = new Set<WatchTarget>();
  private catchUpRunning = 0;
  private pumping = false;
  private pumpAgain = false;
  private pollTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private lastError: unknown = null;
  /** The store's revision at the last tail read. */
  private head = 0;
  /** Callers of reached(), by the revision they wait for. */
  private reachers: { revision: number; resolve(ok: boolean): void }[] = [];

  constructor(
    private readonly driver: Driver,
    private readonly opts: HubOptions,
    /** Told of every revision the tail reaches (so the store knows other instances' commits). */
    private readonly onRevision: (revision: number) => void = () => undefined,
  ) {}

  /** Resolves true once the tail has fanned out `revision`, or false after `timeoutMs`. */
  reached(revision: number, timeoutMs: number): Promise<boolean> {
    if (this.position >= revision) return Promise.resolve(true);
    return new Promise((resolve) => {
      const entry = { revision, resolve };
      const timer = setTimeout(() => {
        this.reachers = this.reachers.filter((r) => r !== entry);
        resolve(false);
      }, timeoutMs);
      entry.resolve = (ok) => {
        clearTimeout(timer);
        resolve(ok);
      };
      this.reachers.push(entry);
      this.wake();
    });
  }

  /** Start at the store's current revision. */
  async start(): Promise<void> {
    this.position = await this.driver.read(async (v) => v.revision);
    if (this.opts.pollIntervalMs > 0) {
      this.pollTimer = setInterval(() => this.wake(), this.opts.pollIntervalMs);
      this.pollTimer.unref();
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.pollTimer) clearInterval(this.pollTimer);
  }

  /** The revision every synced watcher has been given. */
  get revision(): number {
    return this.position;
  }

  get watcherCount(): number {
    return this.state.size;
  }

  /** Watchers behind the hub: replaying history, or paused until their consumer drains (etcd's unsynced). */
  get slowWatcherCount(): number {
    let n = 0;
    for (const s of this.state.values()) if (s === 'catching' || s === 'paused') n++;
    return n;
  }

  /** Revisions committed (by any instance) that the tail had not read at its last read. */
  get lag(): number {
    return Math.max(0, this.head - this.position);
  }

  /** A storage error from the last tail read, if the tail is failing. */
  get error(): unknown {
    return this.lastError;
  }

  /** Begin delivering to w from w.nextRevision. */
  add(w: WatchTarget): void {
    if (w.nextRevision <= this.position) this.toCatchUp(w);
    else if (w.nextRevision === this.position + 1) this.toSynced(w);
    else {
      this.state.set(w, 'waiting');
      this.waiting.add(w);
    }
  }

  remove(w: WatchTarget): void {
    const s = this.state.get(w);
    if (s === 'synced') this.unindex(w);
    else if (s === 'waiting') this.waiting.delete(w);
    this.state.delete(w);
  }

  isSynced(w: WatchTarget): boolean {
    return this.state.get(w) === 'synced';
  }

  /** The consumer of a paused watcher drained: replay what it missed. */
  resume(w: WatchTarget): void {
    if (this.state.get(w) !== 'paused') return;
    trace?.(`consumer drained: watcher catching up from revision ${w.nextRevision}`);
    this.toCatchUp(w);
  }

  /** Something may have been committed: read the log and fan it out. */
  wake(): void {
    if (this.stopped) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    void this.pump();
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        for (;;) {
          const log = await this.driver.readLog(this.position, this.opts.batchRevisions);
          this.lastError = null;
          this.head = log.revision;
          this.onRevision(log.revision);
          if (log.through <= this.position) break;
          if (log.compactRevision > this.position + 1) this.compactSynced(log.compactRevision);
          await this.fanOut(log);
          if (log.through >= log.revision) break;
        }
      } while (this.pumpAgain && !this.stopped);
    } catch (err) {
      // The store is unreachable: keep every watcher where it is and try
      // again on the next commit or poll.
      this.lastError = err;
    } finally {
      this.pumping = false;
    }
  }

  /** The hub fell behind a compaction (another instance compacted while this one could not read). */
  private compactSynced(compactRevision: number): void {
    for (const [w, s] of [...this.state]) {
      if (s === 'synced' && this.position + 1 < compactRevision) {
        this.remove(w);
        w.compacted(compactRevision);
      }
    }
  }

  private async fanOut(log: LogRead): Promise<void> {
    const byRevision = splitByRevision(log.entries);
    const prev = await this.prevKvsFor(log.entries, () => this.anySyncedWantsPrevKv());
    const after = this.position;
    for (let rev = this.position + 1; rev <= log.through; rev++) {
      const entries = byRevision.get(rev);
      if (entries) this.deliverRevision(rev, entries, prev);
      this.position = rev;
      this.promoteWaiting();
    }
    this.opts.onLog?.(log, after);
    if (this.reachers.length > 0) {
      const [done, rest] = partition(this.reachers, (r) => r.revision <= this.position);
      this.reachers = rest;
      for (const r of done) r.resolve(true);
    }
    if (this.catchUpQueue.length > 0) this.runCatchUp();
  }

  private deliverRevision(rev: number, entries: LogEntry[], prev: Map<LogEntry, KeyValue | null>): void {
    // Collect per group the entries it matches; then hand each watcher its batch.
    const matched = new Map<Group, LogEntry[]>();
    for (const e of entries) {
      const g = this.exact.get(keyString(e.kv.key));
      if (g) push(matched, g, e);
    }
    if (this.ranges.size > 0) {
      for (const g of this.ranges.values()) {
        for (const e of entries) if (rangeContains(g.range, e.kv.key)) push(matched, g, e);
      }
    }
    for (const [g, es] of matched) {
      const variants = new Map<string, EventBatch | null>();
      for (const w of [...g.watchers]) {
        const variant = `${w.noPut ? 1 : 0}${w.noDelete ? 1 : 0}${w.prevKv ? 1 : 0}`;
        let batch = variants.get(variant);
        if (batch === undefined) {
          const events = toEvents(es, w, prev);
          batch = events.length > 0 ? { revision: rev, events } : null;
          variants.set(variant, batch);
        }
        if (!batch) continue;
        if (!w.writable()) {
          this.pause(w, rev); // not sent: it resumes at this revision
          continue;
        }
        if (!w.deliver(batch)) this.pause(w, rev + 1); // sent; the consumer is full now
      }
    }
  }

  private anySyncedWantsPrevKv(): boolean {
    for (const [w, s] of this.state) if (s === 'synced' && w.prevKv) return true;
    return false;
  }

  private async prevKvsFor(entries: LogEntry[], wanted: () => boolean): Promise<Map<LogEntry, KeyValue | null>> {
    const out = new Map<LogEntry, KeyValue | null>();
    const need = entries.filter((e) => e.prev_revision > 0);
    if (need.length === 0 || !wanted()) return out;
    const kvs = await this.driver.getVersions(need.map((e) => ({ key: e.kv.key, revision: e.prev_revision })));
    need.forEach((e, i) => out.set(e, kvs[i]));
    return out;
  }

  private promoteWaiting(): void {
    if (this.waiting.size === 0) return;
    for (const w of this.waiting) {
      if (w.nextRevision === this.position + 1) {
        this.waiting.delete(w);
        this.toSynced(w);
      }
    }
  }

  private pause(w: WatchTarget, nextRevision: number): void {
    trace?.(`consumer full: watcher paused at revision ${nextRevision}`);
    this.unindex(w);
    w.nextRevision = nextRevision;
    this.state.set(w, 'paused');
  }

  private toSynced(w: WatchTarget): void {
    w.nextRevision = this.position + 1;
    this.state.set(w, 'synced');
    const ks = w.range.end === null ? keyString(w.range.key) : `${keyString(w.range.key)}\u0000${keyString(w.range.end)}\u0000${w.range.end.length}`;
    const index = w.range.end === null ? this.exact : this.ranges;
    let g = index.get(ks);
    if (!g) {
      g = { range: w.range, watchers: new Set() };
      index.set(ks, g);
    }
    g.watchers.add(w);
    w.synced?.();
  }

  private unindex(w: WatchTarget): void {
    const ks = w.range.end === null ? keyString(w.range.key) : `${keyString(w.range.key)}\u0000${keyString(w.range.end)}\u0000${w.range.end.length}`;
    const index = w.range.end === null ? this.exact : this.ranges;
    const g = index.get(ks);
    if (!g) return;
    g.watchers.delete(w);
    if (g.watchers.size === 0) index.delete(ks);
  }

  private toCatchUp(w: WatchTarget): void {
    this.state.set(w, 'catching');
    this.catchUpQueue.push(w);
    this.runCatchUp();
  }

  private runCatchUp(): void {
    while (this.catchUpRunning < this.opts.catchUpConcurrency && this.catchUpQueue.length > 0) {
      const w = this.catchUpQueue.shift()!;
      if (this.state.get(w) !== 'catching') continue;
      this.catchUpRunning++;
      void this.catchUpStep(w).finally(() => {
        this.catchUpRunning--;
        this.runCatchUp();
      });
    }
  }

  /** One bounded replay step: read, deliver, then requeue, pause or sync. */
  private async catchUpStep(w: WatchTarget): Promise<void> {
    // Never read past the hub: a watcher level with it joins the synced set.
    const upTo = this.position;
    if (w.nextRevision > upTo) {
      if (this.state.get(w) === 'catching') this.toSynced(w);
      return;
    }
    let log: LogRead;
    let prev: Map<LogEntry, KeyValue | null>;
    try {
      log = await this.driver.readLog(w.nextRevision - 1, Math.min(this.opts.batchRevisions, upTo - w.nextRevision + 1), w.range);
      prev = await this.prevKvsFor(log.entries, () => w.prevKv);
    } catch (err) {
      // Storage unreachable: retry this watcher after a pause, from the same place.
      this.lastError = err;
      await new Promise((r) => setTimeout(r, 200).unref());
      if (this.state.get(w) === 'catching') this.catchUpQueue.push(w);
      return;
    }
    if (this.state.get(w) !== 'catching') return; // cancelled meanwhile
    if (w.nextRevision < log.compactRevision) {
      this.state.delete(w);
      w.compacted(log.compactRevision);
      return;
    }
    const events = toEvents(log.entries, w, prev);
    const through = Math.min(log.through, upTo);
    if (events.length > 0) {
      if (!w.writable()) {
        trace?.(`consumer full during catch-up: paused at revision ${w.nextRevision}`);
        this.state.set(w, 'paused');
        return;
      }
      const more = w.deliver({ revision: log.revision, events });
      w.nextRevision = through + 1;
      if (!more) {
        trace?.(`consumer full during catch-up: paused at revision ${w.nextRevision}`);
        this.state.set(w, 'paused');
        return;
      }
    } else {
      w.nextRevision = through + 1;
    }
    if (w.nextRevision === this.position + 1) this.toSynced(w);
    else this.catchUpQueue.push(w);
  }
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const list = m.get(k);
  if (list) list.push(v);
  else m.set(k, [v]);
}

function partition<T>(xs: T[], pred: (x: T) => boolean): [T[], T[]] {
  const yes: T[] = [];
  const no: T[] = [];
  for (const x of xs) (pred(x) ? yes : no).push(x);
  return [yes, no];
}

function splitByRevision(entries: LogEntry[]): Map<number, LogEntry[]> {
  const out = new Map<number, LogEntry[]>();
  for (const e of entries) push(out, e.kv.mod_revision, e);
  return out;
}

function toEvents(entries: LogEntry[], w: WatchTarget, prev: Map<LogEntry, KeyValue | null>): Event[] {
  const out: Event[] = [];
  for (const e of entries) {
    if (e.deleted ? w.noDelete : w.noPut) continue;
    const ev: Event = { type: e.deleted ? EventType.DELETE : EventType.PUT, kv: e.kv };
    if (w.prevKv) ev.prev_kv = prev.get(e) ?? null;
    out.push(ev);
  }
  return out;
}
