// The key-value store: etcd's KV semantics over any driver. Reads run on a
// consistent snapshot; writes go through the group-commit batcher; every
// commit is announced to listeners (the watch hub) with its revision.
import { EventEmitter } from 'node:events';
import { ErrCompacted, ErrFutureRev } from '../errors';
import type { Logger } from '../logger';
import type { Driver } from './driver';
import { executeRange } from './range';
import {
  num,
  type CompactionRequest,
  type DeleteRangeRequest,
  type Header,
  type PutRequest,
  type PutResponse,
  type RangeRequest,
  type RangeResponse,
  type DeleteRangeResponse,
  type TxnRequest,
  type TxnResponse,
} from './requests';
import { applyDelete, applyPut, applyTxn, checkPutPreconditions, checkReads, checkWrites, decide } from './txn';
import { checkDelete, checkDuplicates, checkKeyLength, checkPut, checkRange, checkTxn, checkTxnKeyLengths, isTxnReadOnly, writeBytes } from './validate';
import { WriteBatcher, type BatchObserver, type WriteOp } from './write-batcher';

export interface StoreOptions {
  /** etcd's --max-txn-ops (default 128). */
  maxTxnOps: number;
  /** Most client writes committed in one database transaction. */
  maxBatch?: number;
  /** How long a write may wait before it answers `request timed out` (0: no limit). */
  requestTimeoutMs?: number;
  logger?: Logger;
  /** Told of write batches (metrics). */
  batches?: BatchObserver;
  /** Told of each physical compaction: how long it took and how many versions it removed. */
  onCompacted?(ms: number, removed: number): void;
}

export interface StoreEvents {
  /** A write batch committed; revision is the store's new revision. */
  commit: [revision: number];
}

export class MvccStore extends EventEmitter<StoreEvents> {
  private readonly batcher: WriteBatcher;
  /** Physical compactions run one at a time, in order. */
  private compacting: Promise<void> = Promise.resolve();
  /** The newest revision this process has committed or been told of. */
  private latest = 1;

  constructor(
    readonly driver: Driver,
    private readonly opts: StoreOptions,
  ) {
    super();
    this.batcher = new WriteBatcher(driver, { maxRequests: opts.maxBatch ?? 256, maxBytes: 2 << 20, timeoutMs: opts.requestTimeoutMs ?? 0, observer: opts.batches }, (rev) => {
      this.latest = Math.max(this.latest, rev);
      this.emit('commit', rev);
    });
  }

  /** Learn the store's revision at start-up; finish a physical compaction a shutdown interrupted. */
  async open(): Promise<void> {
    const { revision, compactRevision } = await this.revisions();
    this.latest = revision;
    if (compactRevision > 0) this.physicalCompaction(compactRevision);
  }

  /** Queue the physical part of a compaction (they run one at a time, in order). */
  private physicalCompaction(rev: number): Promise<void> {
    this.compacting = this.compacting
      .then(async () => {
        const started = performance.now();
        const removed = await this.driver.compact(rev);
        this.opts.onCompacted?.(performance.now() - started, removed);
      })
      .catch((err) => {
        this.opts.logger?.warn('compaction failed', { 'compact-revision': rev, error: err instanceof Error ? err.message : String(err) });
      });
    return this.compacting;
  }

  /** Writes waiting for a batch. */
  get pendingWrites(): number {
    return this.batcher.pending;
  }

  /** The newest revision known to this process without asking the driver. */
  get knownRevision(): number {
    return this.latest;
  }

  /** Another path (the watch hub's tail) saw a newer revision. */
  observe(revision: number): void {
    if (revision > this.latest) this.latest = revision;
  }

  /** Run a write of the caller's own (leases, auth) through the same batches. */
  write<R>(op: WriteOp<R>): Promise<R> {
    return this.batcher.submit(op);
  }

  async range(r: RangeRequest): Promise<RangeResponse> {
    checkRange(r);
    return this.driver.read((view) => executeRange(view, r), { serializable: r.serializable });
  }

  private get maxKeyBytes(): number {
    return this.driver.maxKeyBytes ?? Infinity;
  }

  async put(r: PutRequest): Promise<PutResponse> {
    checkPut(r);
    checkKeyLength(r.key, this.maxKeyBytes);
    return this.batcher.submit({
      keys: [r.key],
      bytes: r.key.length + r.value.length,
      run: async (view) => {
        await checkPutPreconditions(view, r);
        return applyPut(view, r);
      },
    });
  }

  async deleteRange(r: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    checkDelete(r);
    return this.batcher.submit({
      keys: r.range_end.length === 0 ? [r.key] : undefined,
      run: (view) => applyDelete(view, r),
    });
  }

  async txn(r: TxnRequest): Promise<TxnResponse> {
    checkTxn(r, this.opts.maxTxnOps);
    checkDuplicates(r.success);
    checkDuplicates(r.failure);
    checkTxnKeyLengths(r, this.maxKeyBytes);
    if (isTxnReadOnly(r)) {
      return this.driver.read(async (view) => {
        const d = await decide(view, r);
        await checkReads(view, d);
        return applyTxn(view, d);
      });
    }
    return this.batcher.submit({
      keys: r.compare.filter((c) => c.range_end.length === 0).map((c) => c.key),
      bytes: writeBytes(r),
      run: async (view) => {
        const d = await decide(view, r);
        await checkWrites(view, d);
        return applyTxn(view, d);
      },
    });
  }

  /** Compact: record the new compact revision at once; remove history now (physical) or in the background. */
  async compact(r: CompactionRequest): Promise<{ header: Header }> {
    const rev = num(r.revision);
    const current = await this.driver.write(async (tx) => {
      if (rev <= tx.compactRevision) throw ErrCompacted;
      if (rev > tx.revision) throw ErrFutureRev;
      await tx.setCompactRevision(rev);
      return tx.revision;
    });
    const done = this.physicalCompaction(rev);
    if (r.physical) await done;
    return { header: { revision: current } };
  }

  /** The store's current and compact revision. */
  async revisions(): Promise<{ revision: number; compactRevision: number }> {
    return this.driver.read(async (view) => ({ revision: view.revision, compactRevision: view.compactRevision }));
  }
}
