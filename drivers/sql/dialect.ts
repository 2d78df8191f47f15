// What differs between the SQL databases, as data: DDL, the upsert form, how
// a writer takes the revision lock, limits. The generic driver builds every
// other statement the same way for all of them.
import type { Statement } from './sql-client';

export interface Dialect {
  /** "sqlite", "mysql", "tidb" or "postgres": for logs and status. */
  readonly name: string;
  /** The longest key the schema stores (an index limit); longer keys are refused. */
  readonly maxKeyBytes: number;
  /** Bound parameters per statement, to size multi-row statements. */
  readonly maxParams: number;
  /** Bytes of parameters per statement (a packet limit), to size multi-row statements. */
  readonly maxStatementBytes: number;
  /** Schema migrations, in order; each entry is the statements of one version. */
  readonly migrations: string[][];
  /** Starts a write transaction (before beginWrite); empty where the client starts it itself. */
  readonly startWrite: string;
  /** Starts a read snapshot (before beginRead); empty where the client starts it itself. */
  readonly startSnapshot: string;
  /** Opens a write transaction and returns the locked meta row. */
  readonly beginWrite: string;
  /** Opens a read snapshot and returns the meta row (empty for SQLite, which pins a revision instead). */
  readonly beginRead: string;
  /** An INSERT of `values` into `table` that replaces rows whose primary key (`key`) exists. */
  upsert(table: string, columns: string[], key: string, values: string): string;
  /** The database's clock, ms since the epoch, as an expression. */
  readonly nowMs: string;
  /** Column type names in CREATE TABLE (documentation only). */
  readonly description: string;
  /** Creates the meta row unless it exists: the store starts at revision 1, never compacted. */
  insertMeta: string;
  /** Opens a compaction step: locks the compaction progress row (not the meta row: writers go on). */
  readonly beginCompaction: string;
  /** Returns `size` and `free` bytes of the store. */
  readonly statsQuery: string;
  /** Gives freed space back after a compaction (may be empty). */
  readonly reclaim: string[];
  /** Rewrites the tables compactly (Defragment). */
  readonly defragment: string[];
  /** An empty byte string as an SQL expression (a value column of keys-only and count reads). */
  readonly emptyBytes: string;
  /**
   * A statement that, committed with a write, tells other instances the announcement `payload`
   * (drivers/sql/commit-notice.ts: who wrote it, the new revision, and the entries when they fit in
   * `maxNoticeBytes`): PostgreSQL's NOTIFY.
   */
  commitNotice?(payload: string): Statement;
  /** The longest announcement payload the database delivers. */
  readonly maxNoticeBytes?: number;
  /**
   * The history read (each key's last version at or below a revision, when not a deletion) where the
   * generic NOT EXISTS form plans badly: `value` is the value column expression, `where` filters
   * l.k; one parameter (the revision) follows where's. Columns: k, v, create_revision, mod_revision,
   * version, lease, n (the count of all rows).
   */
  historyRange?(value: string, where: string, limit: string): string;
  /** The smaller of two integer expressions. */
  least(a: string, b: string): string;
}

/**
 * The meta row (the revision lock) joined with the read lease row (drivers/sql/read-lease.ts):
 * what every writer reads first, under its lock. Dialects add their locking clause.
 */
export const WRITE_LOCK_SELECT =
  'SELECT m.revision, m.compact_revision, l.holder AS lease_holder, l.seq AS lease_seq, l.ms AS lease_ms, l.revoked AS lease_revoked FROM etcd_meta m, etcd_read_lease l WHERE m.id = 1 AND l.id = 1';

/** Columns of etcd_log in the order the driver writes them. */
export const LOG_COLUMNS = 'revision, sub, k, v, create_revision, version, lease, deleted, prev_revision';

export function placeholders(columns: number, rows: number): string {
  const one = `(${Array(columns).fill('?').join(', ')})`;
  return Array(rows).fill(one).join(', ');
}
