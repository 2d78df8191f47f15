// Helpers over one key's versions (oldest first, ordered by revision then sub).
import type { LogEntry } from '../../src/mvcc/kv';

/** The key's last version at or below `revision`, or undefined. */
export function latestAt(versions: LogEntry[], revision: number): LogEntry | undefined {
  let lo = 0;
  let hi = versions.length;
  // first index whose revision is above `revision`
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (versions[mid].kv.mod_revision <= revision) lo = mid + 1;
    else hi = mid;
  }
  return lo > 0 ? versions[lo - 1] : undefined;
}

/**
 * Splits versions into those a read at or above `revision` may still need
 * and those it never will: everything before the last version at or below
 * `revision`, and that version too when it is a deletion.
 */
export function compactHistory(versions: LogEntry[], revision: number): { kept: LogEntry[]; removed: LogEntry[] } {
  const last = versions.indexOf(latestAt(versions, revision) as LogEntry);
  if (last < 0) return { kept: versions, removed: [] };
  const cut = versions[last].deleted ? last + 1 : last;
  return { kept: versions.slice(cut), removed: versions.slice(0, cut) };
}
