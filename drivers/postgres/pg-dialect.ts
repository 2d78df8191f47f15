// PostgreSQL. The revision lock is `SELECT ... FOR UPDATE` on the meta row in
// a READ COMMITTED transaction (each later statement sees every commit made
// before the lock was granted); reads run in REPEATABLE READ READ ONLY
// snapshots. Keys are BYTEA: bytes compare as bytes (etcd's order), no
// collation, and every range, prefix and count is a scan of the primary key
// or of etcd_log_k (test/postgres.test.ts shows the plans). Revisions never
// come from a sequence: the meta row hands them out in commit order, so the
// log has no gaps for a reader to wait on (Kine's BIGSERIAL gaps).
//
// CockroachDB and YugabyteDB speak this protocol: postgresVariant() below
// holds what would differ for each, from their documentation. Neither runs
// here and neither is registered as a backend (see the README).
import { WRITE_LOCK_SELECT, type Dialect } from '../sql/dialect';
import { IDLE_TRANSACTION_TIMEOUT_MS } from '../sql/sql-client';

const tables = [
  `CREATE TABLE IF NOT EXISTS etcd_meta (
    id INT NOT NULL PRIMARY KEY,
    revision BIGINT NOT NULL,
    compact_revision BIGINT NOT NULL,
    cluster_id VARCHAR(24) NOT NULL,
    schema_version INT NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS etcd_log (
    revision BIGINT NOT NULL,
    sub INT NOT NULL,
    k BYTEA NOT NULL,
    v BYTEA NOT NULL,
    create_revision BIGINT NOT NULL,
    version BIGINT NOT NULL,
    lease BIGINT NOT NULL,
    deleted SMALLINT NOT NULL,
    prev_revision BIGINT NOT NULL,
    PRIMARY KEY (revision, sub))`,
  'CREATE INDEX IF NOT EXISTS etcd_log_k ON etcd_log (k, revision, sub)',
  `CREATE TABLE IF NOT EXISTS etcd_kv (
    k BYTEA NOT NULL PRIMARY KEY,
    v BYTEA NOT NULL,
    create_revision BIGINT NOT NULL,
    mod_revision BIGINT NOT NULL,
    version BIGINT NOT NULL,
    lease BIGINT NOT NULL)`,
  'CREATE INDEX IF NOT EXISTS etcd_kv_lease ON etcd_kv (lease)',
  'CREATE TABLE IF NOT EXISTS etcd_compaction (id INT NOT NULL PRIMARY KEY, compacted_to BIGINT NOT NULL, compacted_sub BIGINT NOT NULL DEFAULT 2147483647)',
  'INSERT INTO etcd_compaction (id, compacted_to) VALUES (1, 0) ON CONFLICT DO NOTHING',
  'CREATE TABLE IF NOT EXISTS etcd_leases (id BIGINT NOT NULL PRIMARY KEY, ttl BIGINT NOT NULL, expires_at BIGINT NOT NULL)',
  'CREATE TABLE IF NOT EXISTS etcd_docs (name VARCHAR(64) NOT NULL PRIMARY KEY, version BIGINT NOT NULL, value BYTEA NOT NULL)',
  "CREATE TABLE IF NOT EXISTS etcd_members (id VARCHAR(24) NOT NULL PRIMARY KEY, name VARCHAR(255) NOT NULL, client_urls TEXT NOT NULL, peer_urls TEXT NOT NULL DEFAULT '[]', heartbeat_at BIGINT NOT NULL)",
  'CREATE TABLE IF NOT EXISTS etcd_read_lease (id INT NOT NULL PRIMARY KEY, holder VARCHAR(24) NULL, seq BIGINT NOT NULL, ms INT NOT NULL, revoked SMALLINT NOT NULL)',
  'INSERT INTO etcd_read_lease (id, holder, seq, ms, revoked) VALUES (1, NULL, 0, 0, 0) ON CONFLICT DO NOTHING',
  'CREATE TABLE IF NOT EXISTS etcd_tokens (hash BYTEA NOT NULL PRIMARY KEY, name TEXT NOT NULL, generation VARCHAR(64) NOT NULL, epoch VARCHAR(64) NOT NULL, used_at BIGINT NOT NULL)',
  'CREATE INDEX IF NOT EXISTS etcd_tokens_used ON etcd_tokens (used_at)',
];

/**
 * Every transaction ends itself if left idle (a stopped instance holding the revision lock; see
 * IDLE_TRANSACTION_TIMEOUT_MS). Set per transaction, not per session: a connection pooler
 * (PgBouncer) refuses the `options` startup parameter, and in its transaction mode a session
 * setting would land on whichever server connection ran it.
 */
export const ENDS_IF_IDLE = `SET LOCAL idle_in_transaction_session_timeout = ${IDLE_TRANSACTION_TIMEOUT_MS}`;

/** The channel commits are announced on (LISTEN/NOTIFY). */
export const COMMIT_CHANNEL = 'etcd_adapter_commit';

const basePostgres: Dialect = {
  name: 'postgres',
  // A B-tree entry holds at most about a third of a page (2704 bytes with 8 kB pages): (k, revision, sub) fits
  maxKeyBytes: 2048,
  maxParams: 65_535,
  maxStatementBytes: 8 << 20,
  description: 'BYTEA keys and values (byte order, no collation), BIGINT revisions',
  startWrite: `BEGIN ISOLATION LEVEL READ COMMITTED; ${ENDS_IF_IDLE}`,
  startSnapshot: `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; ${ENDS_IF_IDLE}`,
  beginWrite: `${WRITE_LOCK_SELECT} FOR UPDATE`,
  beginRead: 'SELECT revision, compact_revision FROM etcd_meta WHERE id = 1',
  least: (a, b) => `LEAST(${a}, ${b})`,
  // PostgreSQL turns NOT EXISTS into a hash anti-join over the whole log for large ranges:
  // DISTINCT ON over one index range scan instead (the key's newest row at or below the revision)
  historyRange: (value, where, limit) =>
    `SELECT k, v, create_revision, mod_revision, version, lease, COUNT(*) OVER () AS n FROM (
       SELECT DISTINCT ON (l.k) l.k, ${value.startsWith('l.') ? `${value} AS v` : value}, l.create_revision, l.revision AS mod_revision, l.version, l.lease, l.deleted
       FROM etcd_log l WHERE ${where} AND l.revision <= ?
       ORDER BY l.k, l.revision DESC, l.sub DESC) latest
     WHERE deleted = 0 ORDER BY k${limit}`,
  emptyBytes: "''::bytea",
  insertMeta: 'INSERT INTO etcd_meta (id, revision, compact_revision, cluster_id, schema_version) VALUES (1, 1, -1, ?, 1) ON CONFLICT DO NOTHING',
  beginCompaction: 'SELECT compacted_to, compacted_sub FROM etcd_compaction WHERE id = 1 FOR UPDATE',
  statsQuery: `SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) AS size, 0 AS free
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname LIKE 'etcd\\_%'`,
  // Plain VACUUM after a compaction: the deleted log rows' space is reused by later writes (the file stays bounded)
  reclaim: ['VACUUM etcd_log', 'VACUUM etcd_kv'],
  defragment: ['VACUUM FULL etcd_log', 'VACUUM FULL etcd_kv'],
  upsert: (table, columns, key, values) =>
    `INSERT INTO ${table} (${columns.join(', ')}) VALUES ${values}
     ON CONFLICT (${key}) DO UPDATE SET ${columns.filter((c) => c !== key).map((c) => `${c} = EXCLUDED.${c}`).join(', ')}`,
  nowMs: '(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT',
  commitNotice: (payload) => ({ sql: `SELECT pg_notify('${COMMIT_CHANNEL}', ?)`, params: [payload] }),
  // PostgreSQL's limit is 8000 bytes
  maxNoticeBytes: 7900,
  migrations: [tables],
};

export const postgresDialect: Dialect = basePostgres;

/**
 * PostgreSQL-protocol databases that are not PostgreSQL, by their documented
 * differences. Not used by any backend scheme yet: nothing here was run
 * against them.
 * - CockroachDB: SERIALIZABLE by default, so writers may get 40001 (retried
 *   as any RetryableError); no LISTEN/NOTIFY (polling only); no VACUUM
 *   (garbage collection is its own); no pg_total_relation_size; advisory
 *   locks are no-ops (the client runs migrations without one when refused).
 * - YugabyteDB (YSQL): no LISTEN/NOTIFY; VACUUM is a no-op; READ COMMITTED only
 *   with yb_enable_read_committed_isolation, else snapshot isolation with
 *   40001 retries. We use no sequences, so its sequence caching does not apply.
 * Both: transactions are kept small by the same budgets as TiDB's (group
 * commit about 2 MB, compaction 500 log rows per transaction).
 */
export function postgresVariant(name: 'cockroachdb' | 'yugabytedb'): Dialect {
  return {
    ...basePostgres,
    name,
    startWrite: 'BEGIN',
    commitNotice: undefined,
    reclaim: [],
    defragment: [],
    statsQuery:
      name === 'cockroachdb'
        ? "SELECT COALESCE(SUM(range_size), 0) AS size, 0 AS free FROM [SHOW RANGES FROM DATABASE current_database() WITH DETAILS] WHERE table_name LIKE 'etcd\\_%'"
        : basePostgres.statsQuery,
  };
}
