// The newest stretch of the revision log, in memory: what the read cache
// applied last, kept so that the watch hub's tail and watchers catching up
// from a recent revision are answered without a query. It always covers a
// contiguous run of whole revisions (from, through]; older revisions fall off
// the front once it holds more than `maxEntries` entries.
import { rangeContains, type KeyRange } from '../../src/mvcc/key-range';
import type { LogEntry } from '../../src/mvcc/kv';

export class RecentLog {
  private entries: LogEntry[] = [];
  /** The log is complete in (from, through]. */
  private from = 0;
  private through = 0;

  constructor(private readonly maxEntries: number) {}

  /** Forget everything; the next stretch starts after `revision`. */
  reset(revision: number): void {
    this.entries = [];
    this.from = revision;
    this.through = revision;
  }

  /** Appends the entries of revisions (this.through, through]; the caller passes only those. */
  append(entries: LogEntry[], through: number): void {
    for (const e of entries) this.entries.push(e);
    this.through = through;
    if (this.entries.length > this.maxEntries) this.trim();
  }

  /** Drops whole revisions from the front until at most maxEntries are left. */
  private trim(): void {
    let cut = this.entries.length - this.maxEntries;
    const rev = this.entries[cut - 1].kv.mod_revision;
    while (cut < this.entries.length && this.entries[cut].kv.mod_revision === rev) cut++;
    this.entries = this.entries.slice(cut);
    this.from = rev;
  }

  /**
   * Entries of at most `maxRevisions` whole revisions after `after` (inside
   * `range` when given), or null when the stretch does not start by then or
   * has nothing after it.
   */
  read(after: number, maxRevisions: number, range?: KeyRange): { entries: LogEntry[]; through: number } | null {
    if (after < this.from || after >= this.through) return null;
    const through = Math.min(this.through, after + maxRevisions);
    const out: LogEntry[] = [];
    for (let i = this.firstAfter(after); i < this.entries.length; i++) {
      const e = this.entries[i];
      if (e.kv.mod_revision > through) break;
      if (!range || rangeContains(range, e.kv.key)) out.push(e);
    }
    return { entries: out, through };
  }

  /** Index of the first entry with a revision above `after`. */
  private firstAfter(after: number): number {
    let lo = 0;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.entries[mid].kv.mod_revision <= after) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
