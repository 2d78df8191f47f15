// SQLite: the embedded default. BEGIN IMMEDIATE is the revision lock.
import { WRITE_LOCK_SELECT, type Dialect } from '../sql/dialect';

export const sqliteDialect: Dialect = {
  name: 'sqlite',
  maxKeyBytes: 1 << 20,
  maxParams: 32_000,
  maxStatementBytes: 64 << 20,
  description: 'BLOB keys and values, INTEGER revisions',
  // The SQLite client opens transactions itself (BEGIN IMMEDIATE for writes, BEGIN on a read connection).
  startWrite: '',
  startSnapshot: '',
  // BEGIN IMMEDIATE already holds the write lock.
  beginWrite: WRITE_LOCK_SELECT,
  beginRead: 'SELECT revision, compact_revision FROM etcd_meta WHERE id = 1',
  least: (a, b) => `MIN(${a}, ${b})`,
  emptyBytes: "x''",
  insertMeta: 'INSERT OR IGNORE INTO etcd_meta (id, revision, compact_revision, cluster_id, schema_version) VALUES (1, 1, -1, ?, 1)',
  beginCompaction: 'SELECT compacted_to, compacted_sub FROM etcd_compaction WHERE id = 1',
  statsQuery: `SELECT (SELECT page_count FROM pragma_page_count()) * (SELECT page_size FROM pragma_page_size()) AS size,
    (SELECT freelist_count FROM pragma_freelist_count()) * (SELECT page_size FROM pragma_page_size()) AS free`,
  reclaim: ['PRAGMA incremental_vacuum', 'PRAGMA wal_checkpoint(TRUNCATE)'],
  defragment: ['VACUUM', 'PRAGMA wal_checkpoint(TRUNCATE)'],
  upsert: (table, columns, key, values) =>
    `INSERT INTO ${table} (${columns.join(', ')}) VALUES ${values}
     ON CONFLICT(${key}) DO UPDATE SET ${columns.filter((c) => c !== key).map((c) => `${c} = excluded.${c}`).join(', ')}`,
  nowMs: "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
  migrations: [
    [
      `CREATE TABLE IF NOT EXISTS etcd_meta (
        id INTEGER PRIMARY KEY,
        revision INTEGER NOT NULL,
        compact_revision INTEGER NOT NULL,
        cluster_id TEXT NOT NULL,
        schema_version INTEGER NOT NULL)`,
      `CREATE TABLE IF NOT EXISTS etcd_log (
        revision INTEGER NOT NULL,
        sub INTEGER NOT NULL,
        k BLOB NOT NULL,
        v BLOB NOT NULL,
        create_revision INTEGER NOT NULL,
        version INTEGER NOT NULL,
        lease INTEGER NOT NULL,
        deleted INTEGER NOT NULL,
        prev_revision INTEGER NOT NULL,
        PRIMARY KEY (revision, sub)) WITHOUT ROWID`,
      'CREATE INDEX IF NOT EXISTS etcd_log_k ON etcd_log (k, revision, sub)',
      `CREATE TABLE IF NOT EXISTS etcd_kv (
        k BLOB NOT NULL PRIMARY KEY,
        v BLOB NOT NULL,
        create_revision INTEGER NOT NULL,
        mod_revision INTEGER NOT NULL,
        version INTEGER NOT NULL,
        lease INTEGER NOT NULL) WITHOUT ROWID`,
      'CREATE INDEX IF NOT EXISTS etcd_kv_lease ON etcd_kv (lease)',
      'CREATE TABLE IF NOT EXISTS etcd_compaction (id INTEGER PRIMARY KEY, compacted_to INTEGER NOT NULL)',
      'INSERT OR IGNORE INTO etcd_compaction (id, compacted_to) VALUES (1, 0)',
    ],
    [
      'CREATE TABLE IF NOT EXISTS etcd_leases (id INTEGER PRIMARY KEY, ttl INTEGER NOT NULL, expires_at INTEGER NOT NULL)',
      'CREATE TABLE IF NOT EXISTS etcd_docs (name TEXT PRIMARY KEY, version INTEGER NOT NULL, value BLOB NOT NULL)',
      'CREATE TABLE IF NOT EXISTS etcd_members (id TEXT PRIMARY KEY, name TEXT NOT NULL, client_urls TEXT NOT NULL, heartbeat_at INTEGER NOT NULL)',
    ],
    [
      'CREATE TABLE IF NOT EXISTS etcd_read_lease (id INTEGER PRIMARY KEY, holder TEXT, seq INTEGER NOT NULL, ms INTEGER NOT NULL, revoked INTEGER NOT NULL)',
      'INSERT OR IGNORE INTO etcd_read_lease (id, holder, seq, ms, revoked) VALUES (1, NULL, 0, 0, 0)',
    ],
    [
      'CREATE TABLE IF NOT EXISTS etcd_tokens (hash BLOB NOT NULL PRIMARY KEY, name TEXT NOT NULL, generation TEXT NOT NULL, epoch TEXT NOT NULL, used_at INTEGER NOT NULL) WITHOUT ROWID',
      'CREATE INDEX IF NOT EXISTS etcd_tokens_used ON etcd_tokens (used_at)',
    ],
    // Compaction progress to the row: (compacted_to, compacted_sub) is the last log row done.
    ['ALTER TABLE etcd_compaction ADD COLUMN compacted_sub INTEGER NOT NULL DEFAULT 2147483647'],
    // Peer URLs of the member list (a JSON array, as client_urls)
    ["ALTER TABLE etcd_members ADD COLUMN peer_urls TEXT NOT NULL DEFAULT '[]'"],
  ],
};
