// The Watch service: one WatchSession per stream, whatever the transport
// (gRPC bidi stream or the gateway's HTTP stream). It keeps etcd's per-stream
// rules - watch ids, the created/canceled answers, progress, fragments - and
// leaves event delivery to the hub.
import type { CallMeta } from './context';
import { header, type Identity } from './identity';
import { keyRange, type KeyRange } from '../mvcc/key-range';
import type { Event } from '../mvcc/kv';
import { big, num, type Int64 } from '../mvcc/requests';
import type { EventBatch, WatchHub, WatchTarget } from '../mvcc/watch-hub';

export interface WatchCreateRequest {
  key: Buffer;
  range_end: Buffer;
  start_revision: Int64;
  progress_notify: boolean;
  filters: number[];
  prev_kv: boolean;
  watch_id: Int64;
  fragment: boolean;
}

export interface WatchRequest {
  request_union?: 'create_request' | 'cancel_request' | 'progress_request';
  create_request?: WatchCreateRequest | null;
  cancel_request?: { watch_id: Int64 } | null;
  progress_request?: object | null;
}

export interface WatchResponse {
  header: ReturnType<typeof header>;
  watch_id?: string;
  created?: boolean;
  canceled?: boolean;
  compact_revision?: number;
  cancel_reason?: string;
  fragment?: boolean;
  events?: Event[];
  /** Set when events come from a batch shared with other watchers: the transport may reuse its encoding. */
  batch?: EventBatch;
}

export interface WatchSink {
  /** Send one response; returns whether the transport can take more now. */
  send(res: WatchResponse): boolean;
  writable(): boolean;
}

export interface WatchContext {
  hub: WatchHub;
  identity: Identity;
  /** The store's current revision as this instance knows it. */
  currentRevision(): number;
  /** Responses larger than this are split when the watcher asked for fragments (etcd: --max-request-bytes + 512 KiB). */
  fragmentBytes: number;
  /** How often watchers with progress_notify get an empty response (etcd: 10 minutes). */
  progressIntervalMs: number;
  /** Asked before a watch is created; returns a cancel reason to refuse it (auth). A promise when it must ask the store. */
  permit?(range: KeyRange, meta: CallMeta): string | null | Promise<string | null>;
  /** Told how many events went to a watcher (etcd's events_total). */
  onEvents?(count: number): void;
  /** Measures a response for fragmenting. */
  sizeOf(res: WatchResponse): number;
}

const FILTER_NOPUT = 0;
const FILTER_NODELETE = 1;
export const ErrWatcherDuplicateID = 'mvcc: duplicate watch ID provided on the WatchStream';
export const ErrEmptyWatcherRange = 'mvcc: watcher range is empty';

class SessionWatcher implements WatchTarget {
  nextRevision = 0;
  constructor(
    readonly id: string,
    readonly range: KeyRange,
    readonly prevKv: boolean,
    readonly noPut: boolean,
    readonly noDelete: boolean,
    readonly progressNotify: boolean,
    readonly fragment: boolean,
    private readonly session: WatchSession,
  ) {}
  writable(): boolean {
    return this.session.writable();
  }
  deliver(batch: EventBatch): boolean {
    return this.session.sendEvents(this, batch);
  }
  compacted(compactRevision: number): void {
    this.session.sendCompacted(this, compactRevision);
  }
  synced(): void {
    this.session.checkProgress();
  }
}

export class WatchSession {
  private readonly watchers = new Map<string, SessionWatcher>();
  private nextId = 0n;
  private progressWanted = false;
  private progressTimer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private readonly ctx: WatchContext,
    private readonly sink: WatchSink,
    /** The stream's metadata (its auth token). */
    private readonly meta: CallMeta = {},
  ) {}

  writable(): boolean {
    return !this.closed && this.sink.writable();
  }

  /** Requests wait here while an earlier one waits for the store (a permit): they are handled in order. */
  private queue: Promise<void> | null = null;
  private queued = 0;

  handle(req: WatchRequest): void {
    if (this.closed) return;
    if (this.queue) {
      this.enqueue(this.queue.then(() => this.dispatch(req)));
      return;
    }
    const pending = this.dispatch(req);
    if (pending) this.enqueue(pending);
  }

  private enqueue(p: Promise<void>): void {
    this.queued++;
    const next: Promise<void> = p
      .catch(() => undefined)
      .finally(() => {
        if (--this.queued === 0 && this.queue === next) this.queue = null;
      });
    this.queue = next;
  }

  /** Handles one request; a promise when it has to wait (then later ones wait for it). */
  private dispatch(req: WatchRequest): Promise<void> | undefined {
    if (this.closed) return undefined;
    switch (req.request_union) {
      case 'create_request':
        return req.create_request ? this.create(req.create_request) : undefined;
      case 'cancel_request':
        if (req.cancel_request) this.cancel(String(big(req.cancel_request.watch_id)));
        return undefined;
      case 'progress_request':
        if (req.progress_request) {
          this.progressWanted = true;
          this.checkProgress();
        }
        return undefined;
      default:
        return undefined; // an empty request: ignored, as etcd does
    }
  }

  private create(c: WatchCreateRequest): Promise<void> | undefined {
    // An empty key means the smallest key; "\0" as range_end means every key above.
    const key = c.key.length === 0 ? Buffer.from([0]) : c.key;
    const range = keyRange(key, c.range_end);
    const denied = this.ctx.permit?.(range, this.meta) ?? null;
    if (denied instanceof Promise) return denied.then((d) => this.createPermitted(c, range, d));
    this.createPermitted(c, range, denied);
    return undefined;
  }

  private createPermitted(c: WatchCreateRequest, range: KeyRange, denied: string | null): void {
    if (this.closed) return;
    const current = this.ctx.currentRevision();
    const refuse = (reason: string) =>
      this.sink.send({ header: header(this.ctx.identity, current), watch_id: '-1', created: true, canceled: true, cancel_reason: reason });

    if (denied) return void refuse(denied);
    if (range.end !== null && range.end.length > 0 && Buffer.compare(range.key, range.end) >= 0) return void refuse(ErrEmptyWatcherRange);

    let id: string;
    const requested = big(c.watch_id);
    if (requested === 0n) {
      while (this.watchers.has(String(this.nextId))) this.nextId++;
      id = String(this.nextId++);
    } else {
      id = String(requested);
      if (this.watchers.has(id)) return void refuse(ErrWatcherDuplicateID);
    }

    const filters = c.filters ?? [];
    const w = new SessionWatcher(
      id,
      range,
      c.prev_kv,
      filters.includes(FILTER_NOPUT),
      filters.includes(FILTER_NODELETE),
      c.progress_notify,
      c.fragment,
      this,
    );
    const start = num(c.start_revision);
    w.nextRevision = start > 0 ? start : current + 1;
    this.watchers.set(id, w);
    // The created answer goes out before any event of this watcher.
    this.sink.send({ header: header(this.ctx.identity, current), watch_id: id, created: true });
    this.ctx.hub.add(w);
    if (w.progressNotify) this.startProgressTimer();
  }

  private cancel(id: string): void {
    const w = this.watchers.get(id);
    if (!w) return; // unknown ids get no answer, as in etcd
    this.ctx.hub.remove(w);
    this.watchers.delete(id);
    this.sink.send({ header: header(this.ctx.identity, this.ctx.currentRevision()), watch_id: id, canceled: true });
    this.checkProgress();
  }

  /**
   * A progress request is answered once every watcher of the stream has been
   * given everything up to the hub's revision, so the revision it reports is
   * a true "nothing older is still coming" mark (etcd 3.5).
   */
  checkProgress(): void {
    if (!this.progressWanted || this.closed) return;
    for (const w of this.watchers.values()) if (!this.ctx.hub.isSynced(w)) return;
    this.progressWanted = false;
    this.sink.send({ header: header(this.ctx.identity, this.ctx.hub.revision), watch_id: '-1' });
  }

  private startProgressTimer(): void {
    if (this.progressTimer) return;
    this.progressTimer = setInterval(() => {
      for (const w of this.watchers.values()) {
        if (w.progressNotify && this.ctx.hub.isSynced(w) && this.writable()) {
          this.sink.send({ header: header(this.ctx.identity, this.ctx.hub.revision), watch_id: w.id });
        }
      }
    }, this.ctx.progressIntervalMs);
    this.progressTimer.unref();
  }

  sendEvents(w: SessionWatcher, batch: EventBatch): boolean {
    this.ctx.onEvents?.(batch.events.length);
    const res: WatchResponse = { header: header(this.ctx.identity, batch.revision), watch_id: w.id, events: batch.events, batch };
    if (!w.fragment || batch.events.length < 2 || this.ctx.sizeOf(res) < this.ctx.fragmentBytes) return this.sink.send(res);
    return this.sendFragments(res);
  }

  /** etcd's fragmenting: fill each response up to the size limit (at least one event), flag all but the last. */
  private sendFragments(whole: WatchResponse): boolean {
    const events = whole.events!;
    let ok = true;
    let i = 0;
    while (i < events.length) {
      const part: WatchResponse = { header: whole.header, watch_id: whole.watch_id, fragment: true, events: [] };
      while (i < events.length) {
        part.events!.push(events[i]);
        if (part.events!.length > 1 && this.ctx.sizeOf(part) >= this.ctx.fragmentBytes) {
          part.events!.pop();
          break;
        }
        i++;
      }
      if (i === events.length) part.fragment = false;
      ok = this.sink.send(part);
    }
    return ok;
  }

  sendCompacted(w: SessionWatcher, compactRevision: number): void {
    this.watchers.delete(w.id);
    this.sink.send({ header: header(this.ctx.identity, 0), watch_id: w.id, compact_revision: compactRevision, canceled: true });
    this.checkProgress();
  }

  /** The transport can take more: replay what paused watchers missed. */
  drained(): void {
    for (const w of this.watchers.values()) this.ctx.hub.resume(w);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.watchers.values()) this.ctx.hub.remove(w);
    this.watchers.clear();
    if (this.progressTimer) clearInterval(this.progressTimer);
  }
}

