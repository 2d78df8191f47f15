// MySQL and MariaDB, and TiDB through the same protocol. The revision lock is
// `SELECT ... FOR UPDATE` on the meta row (TiDB: in a pessimistic transaction).
// Keys are VARBINARY(2048): an index entry (key, revision, sub) must stay under
// InnoDB's and TiDB's 3072-byte limit.
import { WRITE_LOCK_SELECT, type Dialect } from '../sql/dialect';

const ddl = (engine: string): string[] => [
  `CREATE TABLE IF NOT EXISTS etcd_meta (
    id INT NOT NULL PRIMARY KEY,
    revision BIGINT NOT NULL,
    compact_revision BIGINT NOT NULL,
    cluster_id VARCHAR(24) NOT NULL,
    schema_version INT NOT NULL)${engine}`,
  `CREATE TABLE IF NOT EXISTS etcd_log (
    revision BIGINT NOT NULL,
    sub INT NOT NULL,
    k VARBINARY(2048) NOT NULL,
    v LONGBLOB NOT NULL,
    create_revision BIGINT NOT NULL,
    version BIGINT NOT NULL,
    lease BIGINT NOT NULL,
    deleted TINYINT NOT NULL,
    prev_revision BIGINT NOT NULL,
    PRIMARY KEY (revision, sub),
    KEY etcd_log_k (k, revision, sub))${engine}`,
  `CREATE TABLE IF NOT EXISTS etcd_kv (
    k VARBINARY(2048) NOT NULL PRIMARY KEY,
    v LONGBLOB NOT NULL,
    create_revision BIGINT NOT NULL,
    mod_revision BIGINT NOT NULL,
    version BIGINT NOT NULL,
    lease BIGINT NOT NULL,
    KEY etcd_kv_lease (lease))${engine}`,
  `CREATE TABLE IF NOT EXISTS etcd_compaction (id INT NOT NULL PRIMARY KEY, compacted_to BIGINT NOT NULL)${engine}`,
  'INSERT IGNORE INTO etcd_compaction (id, compacted_to) VALUES (1, 0)',
];

const leasesAndShared = (engine: string): string[] => [
  `CREATE TABLE IF NOT EXISTS etcd_leases (id BIGINT NOT NULL PRIMARY KEY, ttl BIGINT NOT NULL, expires_at BIGINT NOT NULL)${engine}`,
  `CREATE TABLE IF NOT EXISTS etcd_docs (name VARCHAR(64) NOT NULL PRIMARY KEY, version BIGINT NOT NULL, value LONGBLOB NOT NULL)${engine}`,
  `CREATE TABLE IF NOT EXISTS etcd_members (id VARCHAR(24) NOT NULL PRIMARY KEY, name VARCHAR(255) NOT NULL, client_urls TEXT NOT NULL, heartbeat_at BIGINT NOT NULL)${engine}`,
];

// The read lease (drivers/sql/read-lease.ts): one row, read by every writer under the revision lock.
const readLease = (engine: string): string[] => [
  `CREATE TABLE IF NOT EXISTS etcd_read_lease (id INT NOT NULL PRIMARY KEY, holder VARCHAR(24) NULL, seq BIGINT NOT NULL, ms INT NOT NULL, revoked TINYINT NOT NULL)${engine}`,
  'INSERT IGNORE INTO etcd_read_lease (id, holder, seq, ms, revoked) VALUES (1, NULL, 0, 0, 0)',
];

// Auth tokens (drivers/sql/sql-tokens.ts): by the SHA-256 of the token.
const tokens = (engine: string): string[] => [
  `CREATE TABLE IF NOT EXISTS etcd_tokens (hash BINARY(32) NOT NULL PRIMARY KEY, name TEXT NOT NULL, generation VARCHAR(64) NOT NULL, epoch VARCHAR(64) NOT NULL, used_at BIGINT NOT NULL, KEY etcd_tokens_used (used_at))${engine}`,
];

function dialect(name: 'mysql' | 'tidb'): Dialect {
  const engine = name === 'tidb' ? '' : ' ENGINE=InnoDB';
  return {
    name,
    maxKeyBytes: 2048,
    maxParams: 60_000,
    // Set from max_allowed_packet when the driver opens.
    maxStatementBytes: 4 << 20,
    description: 'VARBINARY(2048) keys, LONGBLOB values, BIGINT revisions',
    // Each statement of a writer reads the latest commits; the FOR UPDATE lock keeps other writers out.
    // TiDB: pessimistic, so that FOR UPDATE locks (and READ COMMITTED is allowed).
    startWrite: `SET TRANSACTION ISOLATION LEVEL READ COMMITTED; ${name === 'tidb' ? 'BEGIN PESSIMISTIC' : 'START TRANSACTION'}`,
    // TiDB takes one characteristic here, and its START TRANSACTION always takes the snapshot at once.
    startSnapshot: name === 'tidb' ? 'START TRANSACTION WITH CONSISTENT SNAPSHOT' : 'START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY',
    beginWrite: `${WRITE_LOCK_SELECT} FOR UPDATE`,
    beginRead: 'SELECT revision, compact_revision FROM etcd_meta WHERE id = 1',
    least: (a, b) => `LEAST(${a}, ${b})`,
    emptyBytes: "x''",
    insertMeta: 'INSERT IGNORE INTO etcd_meta (id, revision, compact_revision, cluster_id, schema_version) VALUES (1, 1, -1, ?, 1)',
    beginCompaction: 'SELECT compacted_to, compacted_sub FROM etcd_compaction WHERE id = 1 FOR UPDATE',
    statsQuery: `SELECT COALESCE(SUM(data_length + index_length + data_free), 0) AS size, COALESCE(SUM(data_free), 0) AS free
      FROM information_schema.TABLES WHERE table_schema = DATABASE() AND table_name LIKE 'etcd\\_%'`,
    reclaim: [],
    defragment: name === 'tidb' ? [] : ['OPTIMIZE TABLE etcd_log, etcd_kv'],
    upsert: (table, columns, key, values) =>
      `INSERT INTO ${table} (${columns.join(', ')}) VALUES ${values}
       ON DUPLICATE KEY UPDATE ${columns.filter((c) => c !== key).map((c) => `${c} = VALUES(${c})`).join(', ')}`,
    nowMs: 'CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)',
    migrations: [
      ddl(engine),
      leasesAndShared(engine),
      readLease(engine),
      tokens(engine),
      // Compaction progress to the row: (compacted_to, compacted_sub) is the last log row done.
      ['ALTER TABLE etcd_compaction ADD COLUMN compacted_sub BIGINT NOT NULL DEFAULT 2147483647'],
      // Peer URLs of the member list (a JSON array, as client_urls); VARCHAR: a TEXT column takes no default before MySQL 8.0.13
      ["ALTER TABLE etcd_members ADD COLUMN peer_urls VARCHAR(4096) NOT NULL DEFAULT '[]'"],
    ],
  };
}

export const mysqlDialect = dialect('mysql');
export const tidbDialect = dialect('tidb');
