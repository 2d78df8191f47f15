// Group commit. Writes that arrive while a batch is being committed wait and
// then go together in the next one: one driver transaction, many requests,
// each with its own revision and its own answer. An idle store starts a batch
// at once, so a lone write pays no extra latency.
//
// A busy store gathers. A batch's requests are taken once the driver has
// opened its transaction (on SQL, once the revision lock is held), and when
// the last batch ended less than a batch's time ago, its writers are expected
// back: the batch waits until as many are queued as were writing lately, for
// at most as long as a batch takes. Without that, writers that write again as
// soon as they are answered split into a large batch and a batch of one or
// two that costs as much to commit (PostgreSQL, 16 writers: 45% of batches
// held one request); gathered, they share one commit. A write after a pause,
// and a lone writer, never wait.
//
// A request that fails its own checks is rolled out of the batch alone; a
// storage failure fails the whole batch (nothing of it was committed).
import { EtcdError, StorageTimeoutError, StorageUnavailableError } from '../errors';
import type { Driver } from './driver';
import { WriteView } from './write-view';

/** One request's work inside a batch. It may read and stage writes on the view. */
export interface WriteOp<R> {
  /** Keys it will certainly read, fetched for the whole batch in one query. */
  keys?: Buffer[];
  /** Roughly how many bytes it writes, to keep batches within database limits. */
  bytes?: number;
  run(view: WriteView): Promise<R>;
}

interface Pending {
  op: WriteOp<unknown>;
  /** performance.now() by which it must be answered (Infinity: no limit). */
  deadline: number;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

export interface BatchOptions {
  /** Most requests in one batch (bounds transaction size). */
  maxRequests: number;
  /** Most bytes of writes in one batch (MySQL packets, TiDB's transaction limit); one request may exceed it alone. */
  maxBytes: number;
  /**
   * How long a request may wait, queued and committing, before it answers
   * `request timed out` (0: no limit). A batch must be done by the earliest
   * deadline among its requests; requests queue behind earlier ones, whose
   * deadlines are earlier, so no request waits longer than this.
   */
  timeoutMs?: number;
  /** Told of each batch: how many requests it committed, or how many a storage fault failed. */
  observer?: BatchObserver;
  /** The clock gathering goes by, in ms (tests stop it); deadlines stay on performance.now(), as the drivers' do. */
  clock?: () => number;
}

export interface BatchObserver {
  committed(requests: number): void;
  failed(requests: number): void;
}

/** The longest a batch waits for the writers it expects, whatever a batch takes. */
const MAX_GATHER_MS = 5;
/** Shorter than this, a batch's cost is not worth a timer's wait (timers count whole milliseconds). */
const MIN_GATHER_MS = 1;
/** How fast the remembered number of writers fades once fewer write (half-life). */
const WRITERS_HALF_LIFE_MS = 50;

/** The most writers seen at once lately (queued and committing), fading as fewer come. */
class RecentWriters {
  private peak = 0;
  private at = 0;

  see(inside: number, now: number): void {
    this.peak = Math.max(inside, this.value(now));
    this.at = now;
  }

  value(now: number): number {
    return this.peak * 0.5 ** ((now - this.at) / WRITERS_HALF_LIFE_MS);
  }
}

export class WriteBatcher {
  private queue: Pending[] = [];
  private running = false;
  /** Requests in the batch being committed. */
  private committing = 0;
  private readonly writers = new RecentWriters();
  /** How long the last batch took, from opening its transaction to its answers, without its wait; and when it ended. */
  private lastBatchMs = 0;
  private lastEnd = -Infinity;
  private readonly clock: () => number;
  /** While a batch gathers: how many queued requests end its wait, and how it is ended. */
  private gathering: { want: number; done(): void } | null = null;

  constructor(
    private readonly driver: Driver,
    private readonly opts: BatchOptions,
    /** Called after each commit with the new revision. */
    private readonly onCommit: (revision: number) => void,
  ) {
    this.clock = opts.clock ?? (() => performance.now());
  }

  submit<R>(op: WriteOp<R>): Promise<R> {
    const timeout = this.opts.timeoutMs ?? 0;
    const deadline = timeout > 0 ? performance.now() + timeout : Infinity;
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ op, deadline, resolve: resolve as (v: unknown) => void, reject });
      this.writers.see(this.queue.length + this.committing, this.clock());
      if (this.gathering && this.queue.length >= this.gathering.want) this.gathering.done();
      if (!this.running) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0) {
        this.expire();
        if (this.queue.length > 0) await this.commit();
      }
    } finally {
      this.running = false;
    }
  }

  /** Requests waiting for a batch. */
  get pending(): number {
    return this.queue.length;
  }

  /** Requests whose time ran out while they waited for earlier batches: answered, not started. */
  private expire(): void {
    const now = performance.now();
    if (this.queue.length === 0 || this.queue[0].deadline > now) return;
    const late = this.queue.filter((p) => p.deadline <= now);
    this.queue = this.queue.filter((p) => p.deadline > now);
    this.opts.observer?.failed(late.length);
    for (const p of late) p.reject(new StorageTimeoutError('a write waiting for earlier ones'));
  }

  /** How many queued requests fit the next batch. */
  private batchLength(): number {
    let bytes = 0;
    let n = 0;
    while (n < this.queue.length && n < this.opts.maxRequests) {
      bytes += this.queue[n].op.bytes ?? 0;
      if (n > 0 && bytes > this.opts.maxBytes) break;
      n++;
    }
    return n;
  }

  /** How many writers the store expects: as many as were writing at once lately. */
  private wanted(): number {
    return Math.min(this.opts.maxRequests, Math.ceil(this.writers.value(this.clock())));
  }

  /**
   * How long a batch starting now may wait for them: while the last batch ended less than a
   * batch's time ago (its writers may be on their way back), at most as long as a batch takes;
   * 0 when not worth a timer.
   */
  private gatherMs(): number {
    if (this.clock() - this.lastEnd > this.lastBatchMs) return 0;
    const ms = Math.min(this.lastBatchMs, MAX_GATHER_MS);
    return ms >= MIN_GATHER_MS ? ms : 0;
  }

  /**
   * The next batch, taken when its transaction is open, after waiting up to `gatherMs` (and never
   * past the deadline, which the wait for the transaction has brought nearer) for as many
   * requests as the store expects.
   */
  private async take(gatherMs: number, deadline: number): Promise<Pending[]> {
    const want = this.wanted();
    const waitMs = Math.min(gatherMs, deadline - performance.now());
    if (waitMs > 0 && this.queue.length < want) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => done(), waitMs);
        const done = () => {
          clearTimeout(timer);
          this.gathering = null;
          resolve();
        };
        this.gathering = { want, done };
      });
    }
    const batch = this.queue.splice(0, this.batchLength());
    this.committing = batch.length;
    return batch;
  }

  private async commit(): Promise<void> {
    let outcomes: { ok: boolean; value: unknown }[] = [];
    let revision = 0;
    let changed = false;
    // taken inside the transaction (a closure TypeScript does not follow: hence the declared type)
    let batch = null as Pending[] | null;
    // the queue's first request has the earliest deadline: one timeout for all, taken in arrival order
    const deadline = this.queue[0].deadline;
    const started = this.clock();
    const gatherMs = this.gatherMs();
    let waited = 0;
    try {
      await this.driver.write(async (tx) => {
        if (!batch) {
          const before = this.clock();
          batch = await this.take(gatherMs, deadline);
          waited = this.clock() - before;
        }
        // Runs again from scratch if the driver retries after a conflict (with the same batch).
        const view = new WriteView(tx);
        outcomes = [];
        const keys = batch.flatMap((p) => p.op.keys ?? []);
        if (keys.length > 0) await view.prefetch(keys);
        for (const p of batch) {
          view.beginRequest();
          try {
            const value = await p.op.run(view);
            view.endRequest();
            outcomes.push({ ok: true, value });
          } catch (err) {
            view.abortRequest();
            if (!(err instanceof EtcdError) || err instanceof StorageUnavailableError) throw err;
            outcomes.push({ ok: false, value: err });
          }
        }
        if (view.hasChanges) await tx.apply(view.writeSet());
        revision = view.revision;
        changed = revision > tx.revision;
      }, Number.isFinite(deadline) ? { deadline } : undefined);
    } catch (err) {
      // Nothing of the batch was committed; drivers report faults as StorageUnavailableError.
      // Failed before taking it (the transaction did not open): the requests it would have taken.
      const failed = batch ?? this.queue.splice(0, this.batchLength());
      this.committing = 0;
      this.opts.observer?.failed(failed.length);
      for (const p of failed) p.reject(err);
      return;
    }
    this.committing = 0;
    // a write that succeeded ran the batch, so it was taken
    const done = batch ?? [];
    this.lastEnd = this.clock();
    this.lastBatchMs = this.lastEnd - started - waited;
    this.opts.observer?.committed(done.length);
    if (changed) this.onCommit(revision);
    done.forEach((p, i) => (outcomes[i].ok ? p.resolve(outcomes[i].value) : p.reject(outcomes[i].value)));
  }
}
