// The in-memory driver: B-trees keyed by the key's latin-1 string (which
// sorts exactly like the key bytes).
//
//   current  key -> live kv                 reads at the latest revision
//   history  key -> versions, oldest first  reads at older revisions, prev_kv
//   log      revision -> entries            the watch tail and history replay
//
// Every LogEntry object is shared by `history` and `log`; kvs are never
// mutated after they are stored. All work happens synchronously inside one
// call, so a reader never sees half of a commit.
import type BTree from 'sorted-btree';
import type { Driver, DriverStats, KvRef, LeaseRecord, LogRead, MemberRecord, RangeQuery, RangeResult, ReadView, SharedDoc, TokenRecord, TokenStore, WriteSet, WriteTxn } from '../../src/mvcc/driver';
import type { KeyValue, LogEntry } from '../../src/mvcc/kv';
import { ErrCompacted } from '../../src/errors';
import { keyString, rangeContains, type KeyRange } from '../../src/mvcc/key-range';
import { newTree, rangeLive, scan } from './btree-range';
import { compactHistory, latestAt } from './history';

/** Rough per-version overhead, for dbSize. */
const ENTRY_OVERHEAD = 96;
/** Rough heap of the empty store (its maps and trees), per lease and per member row, for dbSize. */
const EMPTY_STORE_BYTES = 2048;
const LEASE_BYTES = 160;
const MEMBER_BYTES = 256;
/** Log entries per batch of a snapshot. */
const SNAPSHOT_BATCH = 1000;
/** Keys compacted per slice before yielding to requests. */
const COMPACT_SLICE = 2000;

/** Tokens in a map, by hash; the clock is this process's. */
class MemoryTokens implements TokenStore {
  private readonly rows = new Map<string, Omit<TokenRecord, 'idleMs'> & { usedAt: number }>();

  async put(hash: Buffer, t: Omit<TokenRecord, 'idleMs'>): Promise<void> {
    this.rows.set(hash.toString('hex'), { ...t, usedAt: Date.now() });
  }
  async get(hash: Buffer): Promise<TokenRecord | null> {
    const r = this.rows.get(hash.toString('hex'));
    return r ? { user: r.user, generation: r.generation, epoch: r.epoch, idleMs: Date.now() - r.usedAt } : null;
  }
  async touch(hashes: Buffer[]): Promise<void> {
    const now = Date.now();
    for (const h of hashes) {
      const r = this.rows.get(h.toString('hex'));
      if (r) r.usedAt = now;
    }
  }
  async dropIdle(idleMs: number): Promise<void> {
    const cut = Date.now() - idleMs;
    for (const [h, r] of this.rows) if (r.usedAt < cut) this.rows.delete(h);
  }
}

export class MemoryDriver implements Driver {
  readonly kind = 'memory';
  readonly tokens: TokenStore = new MemoryTokens();
  private readonly current: BTree<string, KeyValue> = newTree();
  private readonly history: BTree<string, LogEntry[]> = newTree();
  /** log[i] holds the entries of revision logStart + i. */
  private log: LogEntry[][] = [];
  private logStart = 2;
  /** Keys with more than one version or a deletion: the only ones compaction touches. */
  private readonly compactable = new Set<string>();
  private revision = 1;
  private compactRevision = -1;
  private readonly leases = new Map<string, LeaseRecord>();
  /** lease id -> keys attached to it (latin-1 strings) */
  private readonly leaseKeys = new Map<string, Set<string>>();
  private readonly docs = new Map<string, SharedDoc>();
  private readonly memberRows = new Map<string, MemberRecord>();
  private bytes = 0;
  /** Serialises write transactions (the batcher and compaction both write). */
  private writeTail: Promise<unknown> = Promise.resolve();

  async open(): Promise<void> {}
  async close(): Promise<void> {}

  read<T>(fn: (view: ReadView) => Promise<T>): Promise<T> {
    return fn(this.view());
  }

  /** In memory a write never waits on anything but earlier writes: no deadline to keep. */
  write<T>(fn: (tx: WriteTxn) => Promise<T>): Promise<T> {
    const run = this.writeTail.then(() => this.runWrite(fn));
    this.writeTail = run.catch(() => undefined);
    return run;
  }

  private async runWrite<T>(fn: (tx: WriteTxn) => Promise<T>): Promise<T> {
    const staged: WriteSet[] = [];
    let compactTo: number | null = null;
    const view = this.view();
    const tx: WriteTxn = {
      revision: view.revision,
      compactRevision: view.compactRevision,
      range: (q) => view.range(q),
      getMany: async (keys) => keys.map((k) => this.current.get(keyString(k)) ?? null),
      now: async () => Date.now(),
      getLease: async (id) => this.leases.get(id) ?? null,
      keysWithLease: async (id) => this.attached(id),
      getDoc: async (name) => this.docs.get(name) ?? null,
      apply: async (ws) => {
        staged.push(ws);
      },
      setCompactRevision: async (rev) => {
        compactTo = rev;
      },
    };
    const result = await fn(tx);
    // Commit: synchronous, so readers see all of it or none of it.
    for (const ws of staged) this.commit(ws);
    if (compactTo !== null) this.compactRevision = compactTo;
    return result;
  }

  private commit(ws: WriteSet): void {
    for (const e of ws.entries) {
      const rev = e.kv.mod_revision;
      const idx = rev - this.logStart;
      while (this.log.length <= idx) this.log.push([]);
      this.log[idx].push(e);
      const ks = keyString(e.kv.key);
      const versions = this.history.get(ks);
      if (versions) {
        versions.push(e);
        this.compactable.add(ks);
      } else {
        this.history.set(ks, [e]);
        if (e.deleted) this.compactable.add(ks);
      }
      this.bytes += e.kv.key.length + e.kv.value.length + ENTRY_OVERHEAD;
    }
    for (const kv of ws.puts) {
      const ks = keyString(kv.key);
      this.detach(ks);
      this.current.set(ks, kv);
      if (kv.lease !== '0') {
        let keys = this.leaseKeys.get(kv.lease);
        if (!keys) this.leaseKeys.set(kv.lease, (keys = new Set()));
        keys.add(ks);
      }
    }
    for (const k of ws.deletes) {
      const ks = keyString(k);
      this.detach(ks);
      this.current.delete(ks);
    }
    for (const l of ws.leasePuts) this.leases.set(l.id, l);
    for (const id of ws.leaseDeletes) this.leases.delete(id);
    for (const d of ws.docs) this.docs.set(d.name, d.doc);
    this.revision = Math.max(this.revision, ws.revision);
  }

  /** Forget which lease a key was attached to (before it changes). */
  private detach(ks: string): void {
    const old = this.current.get(ks);
    if (!old || old.lease === '0') return;
    const keys = this.leaseKeys.get(old.lease);
    keys?.delete(ks);
    if (keys?.size === 0) this.leaseKeys.delete(old.lease);
  }

  private attached(id: string): KeyValue[] {
    return [...(this.leaseKeys.get(id) ?? [])].sort().map((ks) => this.current.get(ks)!);
  }

  /** A snapshot pinned at the current revision; later commits make it read history. */
  private view(): ReadView {
    const revision = this.revision;
    const compactRevision = this.compactRevision;
    return {
      revision,
      compactRevision,
      range: async (q) => this.range(q),
    };
  }

  private range(q: RangeQuery): RangeResult {
    if (q.revision < this.compactRevision) throw ErrCompacted;
    return q.revision >= this.revision ? rangeLive(this.current, q) : this.rangeHistory(q);
  }

  private rangeHistory(q: RangeQuery): RangeResult {
    const kvs: KeyValue[] = [];
    const want = q.countOnly ? 0 : q.limit > 0 ? q.limit : Infinity;
    let count = 0;
    const visit = (versions: LogEntry[]): boolean => {
      const e = latestAt(versions, q.revision);
      if (!e || e.deleted) return false;
      count++;
      if (kvs.length < want) kvs.push(e.kv);
      return true;
    };
    if (q.end === null) {
      const versions = this.history.get(keyString(q.key));
      if (versions) visit(versions);
    } else {
      scan(this.history, q, visit);
    }
    return { kvs, count };
  }

  async readLog(after: number, maxRevisions: number, range?: KeyRange): Promise<LogRead> {
    const through = Math.min(this.revision, after + maxRevisions);
    const entries: LogEntry[] = [];
    for (let rev = Math.max(after + 1, this.logStart); rev <= through; rev++) {
      for (const e of this.log[rev - this.logStart] ?? []) {
        if (!range || rangeContains(range, e.kv.key)) entries.push(e);
      }
    }
    return { entries, through: Math.max(through, after), revision: this.revision, compactRevision: this.compactRevision };
  }

  /** Collected in one synchronous pass (one consistent moment), then handed out in batches. */
  async *snapshotLog(revision: number, compactRevision: number): AsyncGenerator<LogEntry[]> {
    const kept: LogEntry[] = [];
    for (const versions of this.history.values()) {
      const base = latestAt(versions, compactRevision);
      for (const e of versions) {
        const rev = e.kv.mod_revision;
        if (rev > revision) break;
        if (rev > compactRevision || (e === base && !e.deleted)) kept.push(e);
      }
    }
    kept.sort((a, b) => a.kv.mod_revision - b.kv.mod_revision || a.sub - b.sub);
    for (let i = 0; i < kept.length; i += SNAPSHOT_BATCH) yield kept.slice(i, i + SNAPSHOT_BATCH);
  }

  async getVersions(refs: KvRef[]): Promise<(KeyValue | null)[]> {
    return refs.map((r) => {
      const versions = this.history.get(keyString(r.key));
      const e = versions?.find((v) => v.kv.mod_revision === r.revision && !v.deleted);
      return e ? e.kv : null;
    });
  }

  async compact(revision: number): Promise<number> {
    let removed = 0;
    // The log before `revision` is no longer needed by any watcher.
    const drop = Math.min(revision, this.revision + 1) - this.logStart;
    if (drop > 0) {
      this.log = this.log.slice(drop);
      this.logStart += drop;
    }
    // History: slices of keys, yielding between them so writes keep flowing.
    const keys = [...this.compactable];
    for (let i = 0; i < keys.length; i += COMPACT_SLICE) {
      for (const ks of keys.slice(i, i + COMPACT_SLICE)) removed += this.compactKey(ks, revision);
      await new Promise((resolve) => setImmediate(resolve));
    }
    // Entries at exactly `revision` that compaction removed from history leave the log too.
    const atRev = this.log[revision - this.logStart];
    if (atRev) this.log[revision - this.logStart] = atRev.filter((e) => this.history.get(keyString(e.kv.key))?.includes(e));
    return removed;
  }

  /** Returns how many versions it removed. */
  private compactKey(ks: string, revision: number): number {
    const versions = this.history.get(ks);
    if (!versions) {
      this.compactable.delete(ks);
      return 0;
    }
    const { kept, removed } = compactHistory(versions, revision);
    for (const e of removed) this.bytes -= e.kv.key.length + e.kv.value.length + ENTRY_OVERHEAD;
    if (kept.length === 0) {
      this.history.delete(ks);
      this.compactable.delete(ks);
      return removed.length;
    }
    this.history.set(ks, kept);
    if (kept.length === 1 && !kept[0].deleted) this.compactable.delete(ks);
    return removed.length;
  }

  /**
   * What the store holds, estimated: every version kept, leases, shared
   * documents (auth, alarms) and members, over the empty store's own heap. As
   * etcd's, never 0 (a 0 would vanish from Status's JSON).
   */
  async stats(): Promise<DriverStats> {
    let docs = 0;
    for (const [name, doc] of this.docs) docs += name.length + JSON.stringify(doc.value).length;
    const size = EMPTY_STORE_BYTES + this.bytes + docs + this.leases.size * LEASE_BYTES + this.memberRows.size * MEMBER_BYTES;
    return { dbSize: size, dbSizeInUse: size };
  }

  async now(): Promise<number> {
    return Date.now();
  }
  async listLeases(): Promise<LeaseRecord[]> {
    return [...this.leases.values()];
  }
  async getLease(id: string): Promise<LeaseRecord | null> {
    return this.leases.get(id) ?? null;
  }
  async keysWithLease(id: string): Promise<Buffer[]> {
    return this.attached(id).map((kv) => kv.key);
  }
  async getDoc(name: string): Promise<SharedDoc | null> {
    return this.docs.get(name) ?? null;
  }
  async heartbeat(member: Omit<MemberRecord, 'heartbeatAt'>): Promise<void> {
    this.memberRows.set(member.id, { ...member, heartbeatAt: Date.now() });
  }
  async members(withinMs: number): Promise<MemberRecord[]> {
    const now = Date.now();
    return [...this.memberRows.values()].filter((m) => now - m.heartbeatAt <= withinMs);
  }
}
