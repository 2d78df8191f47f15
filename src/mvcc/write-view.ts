// The state a write batch builds on top of a driver write transaction.
//
// A batch applies many client requests in one database transaction (group
// commit); each request that changes something gets its own revision. Changes
// stay here, in memory, until the batch ends and the driver persists them in
// one go, so a SQL driver spends a few round trips per batch rather than
// several per request. Reads merge the overlay with the driver, so a later op
// (or a later request of the batch) sees what earlier ones wrote, exactly as
// if each had been committed.
import type { LeaseRecord, RangeQuery, RangeResult, ReadView, SharedDoc, WriteSet, WriteTxn } from './driver';
import { keyString, rangeContains } from './key-range';
import { tombstone, type KeyValue, type LogEntry } from './kv';

interface Version {
  revision: number;
  kv: KeyValue | null;
}

interface Touched {
  key: Buffer;
  /** The key's live kv before the batch (in the driver). */
  base: KeyValue | null;
  /** What the batch did to it, oldest first. */
  versions: Version[];
}

const byKey = (a: KeyValue, b: KeyValue): number => Buffer.compare(a.key, b.key);

export class WriteView implements ReadView {
  private readonly touched = new Map<string, Touched>();
  private readonly bases = new Map<string, KeyValue | null>();
  private readonly entries: LogEntry[] = [];
  /** Leases and shared documents as the batch left them (null: deleted). */
  private readonly leases = new Map<string, LeaseRecord | null>();
  private readonly docs = new Map<string, SharedDoc>();
  private clock: number | null = null;
  /** How to take back what the open request did, newest last. */
  private undo: (() => void)[] = [];
  private entriesMark = 0;
  /** The revision before the open request. */
  private beginRevision: number;
  private changed = false;
  private sub = 0;

  constructor(private readonly tx: WriteTxn) {
    this.beginRevision = tx.revision;
  }

  /** The store's revision as the open request sees it (its own changes included). */
  get revision(): number {
    return this.changed ? this.beginRevision + 1 : this.beginRevision;
  }

  get compactRevision(): number {
    return this.tx.compactRevision;
  }

  /** The revision the open request's changes get. */
  get writeRevision(): number {
    return this.beginRevision + 1;
  }

  /** The revision before the open request: what its compares and checks see. */
  get requestBase(): number {
    return this.beginRevision;
  }

  beginRequest(): void {
    this.changed = false;
    this.sub = 0;
    this.undo = [];
    this.entriesMark = this.entries.length;
  }

  endRequest(): void {
    if (this.changed) this.beginRevision++;
    this.changed = false;
  }

  /** Forget everything the open request wrote. */
  abortRequest(): void {
    for (let i = this.undo.length - 1; i >= 0; i--) this.undo[i]();
    this.undo = [];
    this.entries.length = this.entriesMark;
    this.changed = false;
  }

  /** Load the driver's values of keys the batch is about to need, in one read. */
  async prefetch(keys: Buffer[]): Promise<void> {
    const missing = keys.filter((k) => !this.bases.has(keyString(k)));
    if (missing.length === 0) return;
    const kvs = await this.tx.getMany(missing);
    missing.forEach((k, i) => this.bases.set(keyString(k), kvs[i]));
  }

  /** The key's live kv now (the batch's writes included), or null. */
  async get(key: Buffer): Promise<KeyValue | null> {
    const ks = keyString(key);
    const t = this.touched.get(ks);
    if (t) return t.versions.length > 0 ? t.versions[t.versions.length - 1].kv : t.base;
    if (this.bases.has(ks)) return this.bases.get(ks)!;
    const [kv] = await this.tx.getMany([key]);
    this.bases.set(ks, kv);
    return kv;
  }

  /** Stage a put of kv (built by the caller at writeRevision); prev is the key's live kv. */
  put(kv: KeyValue, prev: KeyValue | null): void {
    this.record(kv.key, kv, prev, false);
  }

  /** Stage the deletion of a live key. */
  delete(prev: KeyValue): void {
    this.record(prev.key, tombstone(prev.key, this.writeRevision), prev, true);
  }

  private record(key: Buffer, kv: KeyValue, prev: KeyValue | null, deleted: boolean): void {
    const ks = keyString(key);
    let t = this.touched.get(ks);
    const created = !t;
    if (!t) {
      t = { key, base: prev, versions: [] };
      this.touched.set(ks, t);
    }
    t.versions.push({ revision: this.writeRevision, kv: deleted ? null : kv });
    const versions = t.versions;
    this.undo.push(created ? () => this.touched.delete(ks) : () => versions.pop());
    this.entries.push({ kv, sub: this.sub++, deleted, prev_revision: prev ? prev.mod_revision : 0 });
    this.changed = true;
  }

  /** Keys of a range as of q.revision, the batch's writes merged in. */
  async range(q: RangeQuery): Promise<RangeResult> {
    const committed = this.tx.revision;
    if (q.revision < committed || this.touched.size === 0) return this.tx.range(q);

    const mine: { t: Touched; state: KeyValue | null }[] = [];
    let hidden = 0; // driver keys whose state the batch overrides
    for (const t of this.touched.values()) {
      if (!rangeContains(q, t.key)) continue;
      if (t.base) hidden++;
      mine.push({ t, state: stateAt(t, q.revision) });
    }
    if (mine.length === 0) return this.tx.range(q);

    // Fetch enough driver keys that the overridden ones cannot push real ones out.
    const res = await this.tx.range({ ...q, revision: committed, limit: q.limit > 0 ? q.limit + hidden : 0 });
    const overridden = new Set(mine.map((m) => keyString(m.t.key)));
    const kvs = q.countOnly ? [] : res.kvs.filter((kv) => !overridden.has(keyString(kv.key)));
    let live = 0;
    for (const m of mine) {
      if (!m.state) continue;
      live++;
      if (!q.countOnly) kvs.push(m.state);
    }
    kvs.sort(byKey);
    if (q.limit > 0 && kvs.length > q.limit) kvs.length = q.limit;
    return { kvs, count: res.count - hidden + live };
  }

  /** The store's clock, read once per batch. */
  async now(): Promise<number> {
    this.clock ??= await this.tx.now();
    return this.clock;
  }

  async lease(id: string): Promise<LeaseRecord | null> {
    return this.leases.has(id) ? this.leases.get(id)! : this.tx.getLease(id);
  }

  async leaseExists(id: string): Promise<boolean> {
    return (await this.lease(id)) !== null;
  }

  putLease(l: LeaseRecord): void {
    this.stage(this.leases, l.id, l);
  }

  deleteLease(id: string): void {
    this.stage(this.leases, id, null);
  }

  async doc(name: string): Promise<SharedDoc | null> {
    return this.docs.has(name) ? this.docs.get(name)! : this.tx.getDoc(name);
  }

  putDoc(name: string, doc: SharedDoc): void {
    this.stage(this.docs, name, doc);
  }

  private stage<V>(map: Map<string, V>, key: string, value: V): void {
    const had = map.has(key);
    const before = map.get(key);
    map.set(key, value);
    this.undo.push(() => (had ? map.set(key, before as V) : map.delete(key)));
  }

  /** The live kvs attached to a lease now: the driver's, as this batch changed them. */
  async keysWithLease(id: string): Promise<KeyValue[]> {
    const out = new Map<string, KeyValue>();
    for (const kv of await this.tx.keysWithLease(id)) {
      const ks = keyString(kv.key);
      if (!this.touched.has(ks)) out.set(ks, kv);
    }
    for (const [ks, t] of this.touched) {
      const last = t.versions[t.versions.length - 1].kv;
      if (last && last.lease === id) out.set(ks, last);
    }
    return [...out.values()].sort(byKey);
  }

  /** Whether the batch has anything to persist. */
  get hasChanges(): boolean {
    return this.entries.length > 0 || this.leases.size > 0 || this.docs.size > 0;
  }

  /** Everything the batch changed, for the driver. */
  writeSet(): WriteSet {
    const puts: KeyValue[] = [];
    const deletes: Buffer[] = [];
    for (const t of this.touched.values()) {
      const last = t.versions[t.versions.length - 1].kv;
      if (last) puts.push(last);
      else if (t.base) deletes.push(t.key);
    }
    const leasePuts: LeaseRecord[] = [];
    const leaseDeletes: string[] = [];
    for (const [id, l] of this.leases) {
      if (l) leasePuts.push(l);
      else leaseDeletes.push(id);
    }
    const docs = [...this.docs].map(([name, doc]) => ({ name, doc }));
    return { entries: this.entries, puts, deletes, revision: this.beginRevision, leasePuts, leaseDeletes, docs };
  }
}

function stateAt(t: Touched, revision: number): KeyValue | null {
  for (let i = t.versions.length - 1; i >= 0; i--) {
    if (t.versions[i].revision <= revision) return t.versions[i].kv;
  }
  return t.base;
}
