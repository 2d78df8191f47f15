// Group commit. Writes that arrive while a batch is being committed wait and
// then go together in the next one: one driver transaction, many requests,
// each with its own revision and its own answer. An idle store starts a batch
// at once, so a lone write pays no extra latency.
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
}

export interface BatchObserver {
  committed(requests: number): void;
  failed(requests: number): void;
}

export class WriteBatcher {
  private queue: Pending[] = [];
  private running = false;

  constructor(
    private readonly driver: Driver,
    private readonly opts: BatchOptions,
    /** Called after each commit with the new revision. */
    private readonly onCommit: (revision: number) => void,
  ) {}

  submit<R>(op: WriteOp<R>): Promise<R> {
    const timeout = this.opts.timeoutMs ?? 0;
    const deadline = timeout > 0 ? performance.now() + timeout : Infinity;
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ op, deadline, resolve: resolve as (v: unknown) => void, reject });
      if (!this.running) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0) {
        this.expire();
        if (this.queue.length > 0) await this.commit(this.queue.splice(0, this.batchLength()));
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

  private async commit(batch: Pending[]): Promise<void> {
    let outcomes: { ok: boolean; value: unknown }[] = [];
    let revision = 0;
    let changed = false;
    const deadline = Math.min(...batch.map((p) => p.deadline));
    try {
      await this.driver.write(async (tx) => {
        // Runs again from scratch if the driver retries after a conflict.
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
      this.opts.observer?.failed(batch.length);
      for (const p of batch) p.reject(err);
      return;
    }
    this.opts.observer?.committed(batch.length);
    if (changed) this.onCommit(revision);
    batch.forEach((p, i) => (outcomes[i].ok ? p.resolve(outcomes[i].value) : p.reject(outcomes[i].value)));
  }
}
