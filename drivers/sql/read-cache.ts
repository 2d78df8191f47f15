// A read cache around a SQL driver: the current view of every key, in memory,
// kept up to date from the revision log. Reads at the latest revision are
// answered from it without a query per request; everything else (writes,
// history, the log itself) goes to the database.
//
// Freshness (linearizable reads, as etcd's ReadIndex): a read first learns
// the database's revision with one query that is shared by every read arriving
// until it starts (a read only joins a query that starts after it arrived),
// then waits until the cache has applied that revision, then reads. While
// this instance holds the read lease (read-lease.ts: no other instance can
// commit), the revision the lease was granted at stands in for the query.
// Serializable reads skip both and may be as old as the last poll, as with etcd.
//
// The cache applies whatever contiguous stretch of the log anyone reads
// through this driver (the watch hub's tail, normally), the changes of every
// write committed through it, and pulls the log itself when a read finds it
// behind. So a local write is in the cache as soon as it commits, and the
// newest stretch of the log (RecentLog) answers the watch hub's tail and
// recent catch-ups without a query: a local commit reaches local watchers
// with no database round trip. Other instances' commits arrive by the poll.
// Above its memory budget the cache turns itself off and every read (and log
// read) goes to the database.
import type BTree from 'sorted-btree';
import { MEMBER_ALIVE_MS, type AnnouncedCommit, type Driver, type DriverStats, type KvRef, type LeaseRecord, type LogRead, type MemberRecord, type ReadView, type SharedDoc, type TokenStore, type WriteOptions, type WriteSet, type WriteTxn } from '../../src/mvcc/driver';
import { keyString, type KeyRange } from '../../src/mvcc/key-range';
import { EMPTY, type KeyValue, type LogEntry } from '../../src/mvcc/kv';
import { ErrCompacted, EtcdError, StorageUnavailableError } from '../../src/errors';
import { newTree, rangeLive } from '../memory/btree-range';
import { RecentLog } from './recent-log';
import { silentLogger, type Logger } from '../../src/logger';
import { ReadLease, type ReadLeaseStore } from './read-lease';

const KV_OVERHEAD = 120;
const PULL_REVISIONS = 1000;
/** Log entries kept in memory for the watch hub (whole revisions; older ones fall off). */
const RECENT_ENTRIES = 10_000;
/** ReadIndex queries running at once (each on its own pooled connection). */
const INDEX_QUERIES = 4;

export interface ReadCacheOptions {
  /** Memory budget; above it the cache turns itself off. */
  maxBytes: number;
  /** The read lease (read-lease.ts): its length in ms, 0 for none, and the store that keeps it. */
  readLeaseMs?: number;
  leaseStore?: ReadLeaseStore;
  logger?: Logger;
  /** Told of each range at the latest revision: answered by the cache (true) or the database. */
  onRead?(hit: boolean): void;
}

interface Revisions {
  revision: number;
  compactRevision: number;
}

export class ReadCachedDriver implements Driver {
  private tree: BTree<string, KeyValue> = newTree();
  /** The cache holds the current view as of this revision (0: not loaded). */
  private revision = 0;
  /** The newest compact revision this process has seen (the database may be ahead by one poll). */
  private compactRevision = -1;
  private readonly recent = new RecentLog(RECENT_ENTRIES);
  private bytes = 0;
  private enabled = false;
  /** The next ReadIndex query (not started: reads may still join it), how many run, who waits to start. */
  private indexNext: Promise<Revisions> | null = null;
  private indexRunning = 0;
  private readonly indexSlots: (() => void)[] = [];
  private pulling: Promise<void> | null = null;
  private readonly maxBytes: number;
  private readonly logger: Logger;
  private readonly onRead?: (hit: boolean) => void;
  private readonly lease: ReadLease | null = null;
  /** This instance's member id, from its first heartbeat (the lease needs it to tell others apart). */
  private memberId: string | null = null;
  /** Writes of ours in progress: one may be committed and not yet in the cache. */
  private readonly writes = new Set<Promise<unknown>>();
  /** The newest revision a write of ours committed. */
  private ownThrough = 0;

  constructor(
    private readonly inner: Driver,
    opts: ReadCacheOptions,
  ) {
    this.maxBytes = opts.maxBytes;
    this.logger = opts.logger ?? silentLogger;
    this.onRead = opts.onRead;
    if (opts.leaseStore && (opts.readLeaseMs ?? 0) > 0) {
      this.lease = new ReadLease(opts.leaseStore, {
        ms: opts.readLeaseMs!,
        othersAlive: async () => (await this.inner.members(MEMBER_ALIVE_MS)).some((m) => m.id !== this.memberId),
        wanted: () => this.enabled && this.memberId !== null,
        logger: this.logger,
      });
    }
  }

  get kind(): string {
    return this.inner.kind;
  }
  get clusterId(): string | undefined {
    return this.inner.clusterId;
  }
  get tokens(): TokenStore {
    return this.inner.tokens;
  }

  failing(): string | null {
    return this.inner.failing?.() ?? null;
  }

  get maxKeyBytes(): number | undefined {
    return this.inner.maxKeyBytes;
  }
  /** Whether linearizable reads are being answered under the read lease, without a query. */
  get leaseHeld(): boolean {
    return this.lease?.current() != null;
  }
  /** Whether reads are being answered from memory. */
  get active(): boolean {
    return this.enabled;
  }

  async open(): Promise<void> {
    await this.inner.open();
    if (this.maxBytes > 0) await this.load();
  }

  async close(): Promise<void> {
    await this.lease?.stop();
    this.enabled = false;
    return this.inner.close();
  }

  /** Loads the whole current view from one snapshot. */
  private async load(): Promise<void> {
    const tree: BTree<string, KeyValue> = newTree();
    let bytes = 0;
    let compactRevision = -1;
    const revision = await this.inner.read(async (view) => {
      compactRevision = view.compactRevision;
      const { kvs } = await view.range({ key: Buffer.from([0]), end: EMPTY, revision: view.revision, limit: 0, countOnly: false, keysOnly: false });
      for (const kv of kvs) {
        tree.set(keyString(kv.key), kv);
        bytes += kv.key.length + kv.value.length + KV_OVERHEAD;
      }
      return view.revision;
    });
    if (bytes > this.maxBytes) {
      this.disable(`the current view (${bytes} bytes) is over the read cache budget (${this.maxBytes})`);
      return;
    }
    this.tree = tree;
    this.bytes = bytes;
    this.revision = revision;
    this.compactRevision = Math.max(this.compactRevision, compactRevision);
    this.recent.reset(revision);
    this.enabled = true;
  }

  private disable(why: string): void {
    if (this.enabled) this.logger.warn('read cache off: reads go to the database', { reason: why });
    this.enabled = false;
    this.tree = newTree();
    this.bytes = 0;
  }

  /**
   * The database's revisions, from a query that starts after this call. The
   * query starts on the next turn of the event loop: every read that arrives
   * until then shares it. Up to INDEX_QUERIES run at once, so that a read waits
   * for one round trip, not for the one in flight and then its own.
   */
  private readIndex(): Promise<Revisions> {
    this.indexNext ??= (async () => {
      await new Promise<void>((resolve) => setImmediate(resolve));
      while (this.indexRunning >= INDEX_QUERIES) await new Promise<void>((resolve) => this.indexSlots.push(resolve));
      this.indexNext = null; // from here on, reads wait for the next query
      this.indexRunning++;
      try {
        return await (this.inner.revisions ? this.inner.revisions() : this.inner.read(async (v) => ({ revision: v.revision, compactRevision: v.compactRevision })));
      } finally {
        this.indexRunning--;
        this.indexSlots.shift()?.();
      }
    })();
    return this.indexNext;
  }

  /**
   * What the read lease vouches for, in place of a ReadIndex query: the
   * revision it was granted at and every commit of ours. Null when this
   * instance does not hold it (then reads ask the database).
   */
  private async leased(): Promise<Revisions | null> {
    if (!this.lease?.forRead()) return null;
    // A write of ours may be committed, and visible to other instances, yet not in the cache: let it land.
    if (this.writes.size > 0) await Promise.allSettled(this.writes);
    // Null if it ran out meanwhile, or one of those writes failed with its outcome unknown.
    const grant = this.lease.current();
    return grant && { revision: Math.max(grant.revision, this.ownThrough), compactRevision: Math.max(this.compactRevision, grant.compactRevision) };
  }

  /** Resolves once the cache has applied `revision` (or has been turned off); rejects if the log cannot be read. */
  private async caughtUp(revision: number): Promise<void> {
    while (this.enabled && this.revision < revision) await this.pull();
  }

  /** One read of the log from where the cache is, shared by every read waiting; readLog applies it. */
  private pull(): Promise<void> {
    this.pulling ??= this.readLog(this.revision, PULL_REVISIONS).then(
      () => {
        this.pulling = null;
      },
      (err) => {
        this.pulling = null;
        throw err;
      },
    );
    return this.pulling;
  }

  /** Memory the cache holds now (0 when off). */
  get bytesHeld(): number {
    return this.enabled ? this.bytes : 0;
  }

  async read<T>(fn: (view: ReadView) => Promise<T>, opts?: { serializable?: boolean }): Promise<T> {
    if (!this.enabled) {
      this.onRead?.(false);
      return this.inner.read(fn);
    }
    let compactRevision: number;
    if (opts?.serializable) {
      compactRevision = -1;
    } else {
      const known = (await this.leased()) ?? (await this.readIndex());
      await this.caughtUp(known.revision);
      compactRevision = known.compactRevision;
    }
    if (!this.enabled) return this.inner.read(fn);
    const revision = this.revision;
    const view: ReadView = {
      revision,
      compactRevision,
      range: async (q) => {
        if (q.revision >= revision && this.revision === revision && this.enabled) {
          this.onRead?.(true);
          return rangeLive(this.tree, q);
        }
        if (q.revision >= revision) this.onRead?.(false);
        // History (or the cache moved on): the database, which checks compaction itself.
        return this.inner.read(async (v) => {
          if (q.revision < v.compactRevision) throw ErrCompacted;
          return v.range(q);
        });
      },
    };
    return fn(view);
  }

  /**
   * Writes go to the database; once one commits, its changes go into the
   * cache as well. While a write holds the lock, its reads of the current
   * view come from the cache when the cache is at the locked revision.
   */
  async write<T>(fn: (tx: WriteTxn) => Promise<T>, opts?: WriteOptions): Promise<T> {
    const write = this.recordedWrite(fn, opts);
    this.writes.add(write);
    try {
      return await write;
    } catch (err) {
      // Perhaps committed (the connection died at COMMIT) yet not in the cache: the lease cannot vouch for it.
      if (!(err instanceof EtcdError) || err instanceof StorageUnavailableError) this.lease?.suspend();
      throw err;
    } finally {
      this.writes.delete(write);
    }
  }

  private async recordedWrite<T>(fn: (tx: WriteTxn) => Promise<T>, opts?: WriteOptions): Promise<T> {
    let base = 0;
    let staged: WriteSet[] = [];
    let compactTo: number | null = null;
    const value = await this.inner.write((tx) => {
      // Runs again from scratch when the driver retries: start the record over.
      base = tx.revision;
      staged = [];
      compactTo = null;
      // Holding the store's lock at the revision the cache is at, the cache is the current view:
      // the transaction's reads of it need no query.
      const current = () => this.enabled && this.revision === tx.revision;
      const recorded: WriteTxn = {
        revision: tx.revision,
        compactRevision: tx.compactRevision,
        range: async (q) => (q.revision >= tx.revision && current() ? rangeLive(this.tree, q) : tx.range(q)),
        getMany: async (keys) => (current() ? keys.map((k) => this.tree.get(keyString(k)) ?? null) : tx.getMany(keys)),
        now: () => tx.now(),
        getLease: (id) => tx.getLease(id),
        keysWithLease: (id) => tx.keysWithLease(id),
        getDoc: (name) => tx.getDoc(name),
        apply: (ws) => {
          staged.push(ws);
          return tx.apply(ws);
        },
        setCompactRevision: (rev) => {
          compactTo = rev;
          return tx.setCompactRevision(rev);
        },
      };
      return fn(recorded);
    }, opts);
    if (compactTo !== null) this.compactRevision = Math.max(this.compactRevision, compactTo);
    const through = staged.reduce((r, ws) => Math.max(r, ws.revision), base);
    // Committed: the log after `base` is exactly these entries (the write held the store's lock).
    if (through > this.ownThrough) this.ownThrough = through;
    if (this.enabled && through > base) this.applyEntries(base, staged.flatMap((ws) => ws.entries), through);
    return value;
  }

  async readLog(after: number, maxRevisions: number, range?: KeyRange): Promise<LogRead> {
    // Only above the compact revision: compaction prunes entries at that revision (a final deletion,
    // superseded versions), and the copy here is not pruned. Another instance's compaction is
    // known here from the next poll on.
    const recent = this.enabled && after >= this.compactRevision ? this.recent.read(after, maxRevisions, range) : null;
    if (recent) return { ...recent, revision: this.revision, compactRevision: this.compactRevision };
    const log = await this.inner.readLog(after, maxRevisions, range);
    if (log.compactRevision > this.compactRevision) this.compactRevision = log.compactRevision;
    if (!range && this.enabled) this.apply(after, log);
    return log;
  }

  /** Applies a stretch of the log that starts at or before the cache's revision. */
  private apply(after: number, log: LogRead): void {
    if (after > this.revision || log.through <= this.revision) return;
    if (this.revision < log.compactRevision) {
      // Revisions the cache never saw were compacted away: start again from a snapshot.
      this.enabled = false;
      void this.load().catch((err) => this.disable(`reload failed: ${(err as Error).message}`));
      return;
    }
    this.applyEntries(after, log.entries, log.through);
  }

  /** Applies the log's entries in (after, through] when the cache is at `after` or inside that stretch. */
  private applyEntries(after: number, entries: LogEntry[], through: number): void {
    if (after > this.revision || through <= this.revision) return;
    const fresh = entries.filter((e) => e.kv.mod_revision > this.revision);
    this.recent.append(fresh, through);
    for (const e of fresh) {
      const ks = keyString(e.kv.key);
      const old = this.tree.get(ks);
      if (old) this.bytes -= old.key.length + old.value.length + KV_OVERHEAD;
      if (e.deleted) this.tree.delete(ks);
      else {
        this.tree.set(ks, e.kv);
        this.bytes += e.kv.key.length + e.kv.value.length + KV_OVERHEAD;
      }
    }
    this.revision = through;
    if (this.bytes > this.maxBytes) this.disable(`the current view grew over the read cache budget (${this.maxBytes} bytes)`);
  }

  snapshotLog(revision: number, compactRevision: number): AsyncIterable<LogEntry[]> {
    return this.inner.snapshotLog(revision, compactRevision);
  }

  getVersions(refs: KvRef[]): Promise<(KeyValue | null)[]> {
    return this.inner.getVersions(refs);
  }
  compact(revision: number): Promise<number> {
    return this.inner.compact(revision);
  }
  onCommitElsewhere(listener: (commit?: AnnouncedCommit) => void): void {
    this.inner.onCommitElsewhere?.((commit) => {
      // the entries another instance's announcement carried: in here (and in the recent log the
      // watch hub reads) with no query, when they follow on from what the cache holds
      if (commit && this.enabled && commit.base === this.revision) this.applyEntries(commit.base, commit.entries, commit.through);
      listener(commit);
    });
  }
  othersServing(yes: boolean): void {
    this.inner.othersServing?.(yes);
  }
  announcesCommits(): boolean {
    return this.inner.announcesCommits?.() ?? false;
  }

  stopping(): void {
    this.inner.stopping?.();
  }
  stats(): Promise<DriverStats> {
    return this.inner.stats();
  }
  async defragment(): Promise<void> {
    await this.inner.defragment?.();
  }
  now(): Promise<number> {
    return this.inner.now();
  }
  listLeases(): Promise<LeaseRecord[]> {
    return this.inner.listLeases();
  }
  getLease(id: string): Promise<LeaseRecord | null> {
    return this.inner.getLease(id);
  }
  keysWithLease(id: string): Promise<Buffer[]> {
    return this.inner.keysWithLease(id);
  }
  getDoc(name: string): Promise<SharedDoc | null> {
    return this.inner.getDoc(name);
  }
  async heartbeat(m: Omit<MemberRecord, 'heartbeatAt'>): Promise<void> {
    this.memberId = m.id;
    try {
      await this.inner.heartbeat(m);
    } finally {
      this.lease?.start();
    }
  }
  members(withinMs: number): Promise<MemberRecord[]> {
    return this.inner.members(withinMs);
  }
}
