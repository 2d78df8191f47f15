// What a commit announcement (PostgreSQL's NOTIFY) says. Always who wrote it
// and the new revision; and, when they fit in the payload, the log entries of
// the revisions it made, so that every other instance's watchers get them
// with no read of the log (with many instances on one database, each commit
// would otherwise cost one query per instance).
//
//   <origin>:<revision>                          the revision only
//   <origin>|<base>|<entries as JSON>:<revision>  entries of revisions (base, revision]
//
// The revision stays after the last ':' in both forms (JSON arrays of numbers,
// decimal strings and base64 hold no ':'), as an older instance reads it.
import type { AnnouncedCommit } from '../../src/mvcc/driver';
import type { LogEntry } from '../../src/mvcc/kv';

export interface CommitNotice {
  origin: string;
  revision: number;
  /** The entries, when the announcement carried them. */
  commit?: AnnouncedCommit;
}

type Row = [revision: number, sub: number, key: string, value: string, createRevision: number, version: number, lease: string, deleted: 0 | 1, prevRevision: number];

function wellFormed(row: unknown): row is Row {
  if (!Array.isArray(row) || row.length !== 9) return false;
  const [rev, sub, key, value, createRevision, version, lease, deleted, prevRevision] = row as unknown[];
  const ints = [rev, sub, createRevision, version, prevRevision];
  return ints.every((n) => Number.isSafeInteger(n)) && typeof key === 'string' && typeof value === 'string' && typeof lease === 'string' && (deleted === 0 || deleted === 1);
}

/** The payload for a commit of `entries` from `base` to `through`; the short form when the entries would not fit in `maxBytes`. */
export function encodeNotice(origin: string, base: number, through: number, entries: LogEntry[], maxBytes: number): string {
  const short = `${origin}:${through}`;
  // base64 is 4/3 of the bytes: most entries that cannot fit are known before encoding them
  let estimate = short.length;
  for (const e of entries) estimate += ((e.kv.key.length + e.kv.value.length) * 4) / 3 + 40;
  if (estimate > maxBytes) return short;
  const rows: Row[] = entries.map((e) => [e.kv.mod_revision, e.sub, e.kv.key.toString('base64'), e.kv.value.toString('base64'), e.kv.create_revision, e.kv.version, e.kv.lease, e.deleted ? 1 : 0, e.prev_revision]);
  const full = `${origin}|${base}|${JSON.stringify(rows)}:${through}`;
  return Buffer.byteLength(full) <= maxBytes ? full : short;
}

/** The announcement in a payload, or null when it is not one; the entries are left unread when it comes from `skipEntriesOf`. */
export function decodeNotice(payload: string, skipEntriesOf?: string): CommitNotice | null {
  const at = payload.lastIndexOf(':');
  const revision = Number(payload.slice(at + 1));
  if (at <= 0 || !Number.isSafeInteger(revision)) return null;
  const head = payload.slice(0, at);
  const bar = head.indexOf('|');
  if (bar < 0) return { origin: head, revision };
  const origin = head.slice(0, bar);
  if (origin === skipEntriesOf) return { origin, revision };
  const second = head.indexOf('|', bar + 1);
  const base = Number(head.slice(bar + 1, second));
  let rows: Row[];
  try {
    rows = JSON.parse(head.slice(second + 1)) as Row[];
  } catch {
    rows = [];
  }
  // anyone who may use the database may announce: what is not rows as written here carries nothing
  if (second < 0 || !Number.isSafeInteger(base) || !Array.isArray(rows) || rows.length === 0 || !rows.every(wellFormed)) return { origin, revision };
  const entries: LogEntry[] = rows.map(([rev, sub, key, value, createRevision, version, lease, deleted, prevRevision]) => ({
    kv: { key: Buffer.from(key, 'base64'), value: Buffer.from(value, 'base64'), create_revision: createRevision, mod_revision: rev, version, lease: String(lease) },
    sub,
    deleted: deleted === 1,
    prev_revision: prevRevision,
  }));
  return { origin, revision, commit: { base, through: revision, entries } };
}
