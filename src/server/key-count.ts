// etcd_debugging_mvcc_keys_total without counting the store at every scrape:
// counted once at a revision the log tail has reached, then kept by the tail's
// entries (a creation adds one, a deletion takes one), as etcd keeps it in its
// index. Counting a store of a million keys on MySQL every 15 s would be work
// for the database that no client asked for.
import type { LogRead } from '../mvcc/driver';

export class LiveKeyCount {
  /** The revision the count was taken at; null until the first read, or after a gap. */
  private base: number | null = null;
  private count = 0;
  private counting: Promise<number> | null = null;

  constructor(
    /** The revision the log tail has fanned out (entries after it reach onLog later). */
    private readonly tailRevision: () => number,
    /** Live keys at a revision. */
    private readonly countAt: (revision: number) => Promise<number>,
  ) {}

  /** The log tail's entries, in order, once fanned out. */
  onLog(log: LogRead, after: number): void {
    if (this.base === null) return;
    // A read that skipped revisions (the tail fell behind a compaction) cannot be counted: count again.
    if (log.compactRevision > after + 1 && log.compactRevision > this.base + 1) return void (this.base = null);
    for (const e of log.entries) {
      if (e.kv.mod_revision <= this.base) continue;
      if (e.deleted) this.count--;
      else if (e.prev_revision === 0) this.count++;
    }
  }

  async get(): Promise<number> {
    if (this.base !== null && !this.counting) return this.count;
    this.counting ??= this.recount().finally(() => (this.counting = null));
    return this.counting;
  }

  private async recount(): Promise<number> {
    // Taken synchronously with the tail's position: every entry after it comes through onLog.
    const at = this.tailRevision();
    this.base = at;
    this.count = 0;
    try {
      const n = await this.countAt(at);
      if (this.base === at) this.count += n;
      return this.count;
    } catch (err) {
      if (this.base === at) this.base = null;
      throw err;
    }
  }
}
