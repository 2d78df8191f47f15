// mysql2's pool behind the async SqlClient interface, for MySQL, MariaDB and
// TiDB.
//
// Transactions start with the dialect's statements (READ COMMITTED writers;
// on TiDB pessimistic ones, so that FOR UPDATE locks). The final statements
// go with COMMIT in one multi-statement round trip when they fit a packet.
// A lost or refused connection is UNAVAILABLE; the pool reconnects by itself.
import mysql from 'mysql2/promise';
import { READ_ONLY, StorageTimeoutError, StorageUnavailableError } from '../../src/errors';
import { byDeadline, earliest, IDLE_TRANSACTION_TIMEOUT_MS, RetryableError, type DatabaseTarget, SqlMonitor, STATEMENT_TIMEOUT_MS, type SqlObserver, type RunOptions, type Row, type SqlClient, type SqlExecutor, type Statement, type WriteOutcome, readTlsFiles, type TlsFileParams } from '../sql/sql-client';

export interface MysqlTarget extends DatabaseTarget {
  tidb: boolean;
}

/** Errors after which the same transaction may succeed if run again. */
const RETRYABLE = new Set([
  1205, // ER_LOCK_WAIT_TIMEOUT
  1213, // ER_LOCK_DEADLOCK
  1020, // ER_CHECKREAD: MariaDB 11.8+ innodb_snapshot_isolation
  8002, // TiDB: SELECT FOR UPDATE write conflict
  8022, // TiDB: transaction retry
  9007, // TiDB: write conflict
  8028, // TiDB: information schema changed
]);

/** Errors that mean the database cannot be reached right now. */
const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND', 'PROTOCOL_CONNECTION_LOST', 'PROTOCOL_SEQUENCE_TIMEOUT', 'ER_SERVER_SHUTDOWN', 'ER_CON_COUNT_ERROR', 'POOL_CLOSED']);
const UNAVAILABLE_ERRNOS = new Set([1053, 1040, 2002, 2003, 2006, 2013, 1927, 1184]);

/**
 * A read-only server: --read-only (1290, whose text names the option), a read-only transaction
 * (1792), read-only mode (1836). A replica, or a primary being demoted (Aurora's old writer after
 * a failover): unavailable, so that the connection is dropped and the next one, through the
 * failover address, reaches the new primary.
 */
function readOnly(e: { errno?: number; message?: string }): boolean {
  return e.errno === 1792 || e.errno === 1836 || (e.errno === 1290 && /read[- ]only/i.test(e.message ?? ''));
}

export function classify(err: unknown): unknown {
  const e = err as { code?: string; errno?: number; fatal?: boolean; message?: string };
  if (e && typeof e === 'object') {
    if (e.errno !== undefined && RETRYABLE.has(e.errno)) return new RetryableError(String(e.code ?? e.errno));
    if (readOnly(e)) return new StorageUnavailableError(new Error(READ_ONLY));
    if ((e.code && UNAVAILABLE_CODES.has(e.code)) || (e.errno !== undefined && UNAVAILABLE_ERRNOS.has(e.errno)) || e.fatal) {
      return new StorageUnavailableError(err);
    }
  }
  return err;
}

async function guarded<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw classify(err);
  }
}

export interface TransactionStarts {
  /** Statements that start a write transaction. */
  startWrite: string;
  /** Statements that start a read snapshot. */
  startSnapshot: string;
}

/** The TLS files, as the mysql client names its options. */
export const MYSQL_TLS_FILES: TlsFileParams = ['ssl-ca', 'ssl-cert', 'ssl-key'];

/** ssl-mode values, as the mysql client's --ssl-mode names them (PREFERRED, which falls back to plain text, is not offered). */
export const SSL_MODES = ['DISABLED', 'REQUIRED', 'VERIFY_CA', 'VERIFY_IDENTITY'] as const;

/**
 * TLS from the URL: ssl-mode (REQUIRED: encrypted, the server not checked; VERIFY_CA: its
 * certificate chain checked against ssl-ca, or the system's CAs; VERIFY_IDENTITY: and its name),
 * ssl-cert and ssl-key for a client certificate (a user created with REQUIRE X509). `ssl=true`
 * is VERIFY_CA.
 */
function sslOptions(params: Record<string, string>): mysql.PoolOptions['ssl'] {
  const mode = params['ssl-mode']?.toUpperCase() ?? (params.ssl === 'true' ? 'VERIFY_CA' : 'DISABLED');
  if (mode === 'DISABLED') return undefined;
  return { ...readTlsFiles(params, MYSQL_TLS_FILES), rejectUnauthorized: mode !== 'REQUIRED', verifyIdentity: mode === 'VERIFY_IDENTITY' };
}

export class MysqlClient implements SqlClient {
  readonly pool: mysql.Pool;
  private readonly health: SqlMonitor;

  constructor(
    readonly target: MysqlTarget,
    private readonly starts: TransactionStarts,
    poolSize = 16,
    /** How long a statement, or a whole transaction, may take (0: no limit). */
    private readonly timeoutMs = STATEMENT_TIMEOUT_MS,
    observer?: SqlObserver,
  ) {
    this.health = new SqlMonitor(observer);
    this.pool = mysql.createPool({
      host: target.host,
      port: target.port,
      // a Unix socket (?socket=/run/mysqld/mysqld.sock), in place of host and port
      socketPath: target.params.socket,
      user: target.user,
      password: target.password,
      database: target.database,
      connectionLimit: poolSize,
      maxIdle: poolSize,
      multipleStatements: true,
      supportBigNumbers: true,
      bigNumberStrings: false,
      enableKeepAlive: true,
      connectTimeout: Number(target.params.connectTimeout ?? 5000),
      ssl: sslOptions(target.params),
      charset: 'utf8mb4',
      // no stack capture per query (an Error per call): errors are classified, not traced
      trace: false,
    });
    // A transaction left idle by a stopped instance is ended by the database (IDLE_TRANSACTION_TIMEOUT_MS):
    // MariaDB's name, then TiDB's; MySQL knows neither and refuses both, harmlessly.
    const seconds = Math.ceil(IDLE_TRANSACTION_TIMEOUT_MS / 1000);
    this.pool.on('connection', (c: unknown) => {
      const conn = c as { query(sql: string, cb: (err: unknown) => void): void };
      conn.query(`SET SESSION idle_transaction_timeout = ${seconds}`, () => undefined);
      conn.query(`SET SESSION tidb_idle_transaction_timeout = ${seconds}`, () => undefined);
    });
  }

  all(sql: string, params: unknown[] = [], opts?: RunOptions): Promise<Row[]> {
    return this.health.track('statement', this.single(sql, params, opts) as Promise<Row[]>, sql);
  }

  async run(sql: string, params: unknown[] = [], opts?: RunOptions): Promise<void> {
    await this.health.track('statement', this.single(sql, params, opts), sql);
  }

  /** The moment by which work started now must be done (null: no limit). */
  private deadline(opts?: RunOptions): number | null {
    const ms = opts?.timeoutMs ?? this.timeoutMs;
    return ms > 0 ? performance.now() + ms : null;
  }

  /** One statement on a pooled connection, within the deadline. */
  private async single(sql: string, params: unknown[], opts?: RunOptions): Promise<unknown> {
    const deadline = this.deadline(opts);
    const conn = await this.acquire(deadline);
    try {
      const result = await this.query(conn, sql, params, deadline);
      conn.release();
      return result;
    } catch (err) {
      if (!(err instanceof StorageTimeoutError)) conn.release();
      throw err;
    }
  }

  /**
   * A pooled connection, or `request timed out` once the deadline passes (all
   * of them busy with a database that does not answer). A connection that
   * comes after that goes back to the pool.
   */
  private async acquire(deadline: number | null): Promise<mysql.PoolConnection> {
    const pending = guarded(() => this.pool.getConnection());
    try {
      return await byDeadline(pending, deadline, 'waiting for a database connection');
    } catch (err) {
      if (err instanceof StorageTimeoutError) pending.then((c) => c.release(), () => undefined);
      throw err;
    }
  }

  /**
   * A statement within the deadline. A statement still unanswered then leaves
   * its connection unusable (mysql2 keeps waiting on it): it is destroyed, and
   * the database rolls back what the connection had open when it notices.
   */
  private async query(conn: mysql.PoolConnection, sql: string, params: unknown[], deadline: number | null): Promise<unknown> {
    const timeout = deadline === null ? undefined : Math.ceil(deadline - performance.now());
    if (timeout !== undefined && timeout <= 0) {
      conn.destroy();
      throw new StorageTimeoutError('a database statement');
    }
    try {
      return (await conn.query({ sql, timeout }, params))[0];
    } catch (err) {
      if ((err as { code?: string }).code === 'PROTOCOL_SEQUENCE_TIMEOUT') {
        conn.destroy();
        throw new StorageTimeoutError('a database statement');
      }
      throw classify(err);
    }
  }

  private executor(conn: mysql.PoolConnection, deadline: number | null): SqlExecutor {
    return {
      all: async (sql, params = []) => (await this.query(conn, sql, params, deadline)) as Row[],
      run: async (sql, params = []) => void (await this.query(conn, sql, params, deadline)),
    };
  }

  /**
   * A pooled connection and the result of the statements that open a
   * transaction on it. A connection that died while idle (the database
   * restarted) fails here, before anything was done: one retry on a fresh
   * connection is always safe.
   */
  private async opened(sql: string, params: unknown[], deadline: number | null): Promise<{ conn: mysql.PoolConnection; row: Row }> {
    for (let attempt = 1; ; attempt++) {
      const conn = await this.acquire(deadline);
      try {
        const results = (await this.query(conn, sql, params, deadline)) as unknown[];
        return { conn, row: (results[results.length - 1] as Row[])[0] };
      } catch (err) {
        conn.destroy();
        if (attempt >= 2 || err instanceof StorageTimeoutError || !(err instanceof StorageUnavailableError)) throw err;
      }
    }
  }

  transaction<T>(begin: Statement, fn: (tx: SqlExecutor, locked: Row) => Promise<WriteOutcome<T>>, deadline?: number): Promise<T> {
    return this.health.track('write', this.writeTransaction(begin, fn, deadline));
  }

  /** The whole transaction, COMMIT included, within one deadline. */
  private async writeTransaction<T>(begin: Statement, fn: (tx: SqlExecutor, locked: Row) => Promise<WriteOutcome<T>>, until?: number): Promise<T> {
    const deadline = earliest(this.deadline(), until);
    const { conn, row: locked } = await this.opened(`${this.starts.startWrite}; ${begin.sql}`, begin.params, deadline);
    let open = true;
    let broken = false;
    try {
      const outcome = await fn(this.executor(conn, deadline), locked);
      // One round trip when it fits in a packet; the last one carries COMMIT.
      const groups = packetGroups([...outcome.commit, { sql: 'COMMIT', params: [] }], this.maxPacketBytes);
      await this.health.commit(
        (async () => {
          for (const g of groups) await this.query(conn, g.map((x) => x.sql).join(';\n'), g.flatMap((x) => x.params), deadline);
        })(),
      );
      open = false;
      return outcome.value;
    } catch (err) {
      if (err instanceof StorageTimeoutError) broken = true; // destroyed: the database rolls it back
      else if (err instanceof StorageUnavailableError) {
        // lost, or read-only (a demoted primary): the next transaction takes a fresh connection
        broken = true;
        conn.destroy();
      } else if (open) {
        await conn.query('ROLLBACK').catch(() => {
          broken = true;
          conn.destroy();
        });
      }
      throw err;
    } finally {
      if (!broken) conn.release();
    }
  }

  /**
   * A named lock on one connection for fn's whole run (GET_LOCK belongs to the
   * connection that took it: taken and released through the pool, it could
   * stay with an idle connection). Not got within 60 s, or refused: fn runs without it, as before.
   */
  async exclusive<T>(fn: (ex: SqlExecutor) => Promise<T>): Promise<T> {
    const conn = await this.acquire(this.deadline());
    let broken = false;
    try {
      const locked = await this.query(conn, "SELECT GET_LOCK('etcd_adapter_schema', 60) AS got", [], null).then(
        (rows) => Number((rows as Row[])[0]?.got) === 1,
        () => false,
      );
      try {
        return await fn(this.executor(conn, null));
      } finally {
        if (locked) await this.query(conn, "SELECT RELEASE_LOCK('etcd_adapter_schema')", [], null).catch(() => (broken = true));
      }
    } catch (err) {
      broken = true;
      throw err;
    } finally {
      if (broken) conn.destroy();
      else conn.release();
    }
  }

  snapshot<T>(begin: Statement, fn: (tx: SqlExecutor, meta: Row) => Promise<T>): Promise<T> {
    return this.health.track('read', this.readSnapshot(begin, fn));
  }

  private async readSnapshot<T>(begin: Statement, fn: (tx: SqlExecutor, meta: Row) => Promise<T>): Promise<T> {
    const deadline = this.deadline();
    const { conn, row: meta } = await this.opened(`${this.starts.startSnapshot}; ${begin.sql}`, begin.params, deadline);
    let broken = false;
    try {
      return await fn(this.executor(conn, deadline), meta);
    } catch (err) {
      if (err instanceof StorageTimeoutError) broken = true;
      throw err;
    } finally {
      if (!broken) {
        // Nothing to wait for: the connection runs COMMIT before its next query.
        conn.query('COMMIT').catch(() => conn.destroy());
        conn.release();
      }
    }
  }

  failing(): string | null {
    return this.health.failing();
  }

  /** Half of the server's max_allowed_packet (values travel hex-encoded); learned at start. */
  private maxPacketBytes = 8 << 20;

  async learnLimits(): Promise<void> {
    const [row] = await this.all('SELECT @@max_allowed_packet AS max');
    if (row?.max) this.maxPacketBytes = Math.max(1 << 20, Number(row.max) / 2);
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => undefined);
  }
}

/** Groups statements so that each group's parameters stay under the byte budget (one statement may exceed it alone). */
function packetGroups(statements: Statement[], budget: number): Statement[][] {
  const groups: Statement[][] = [];
  let group: Statement[] = [];
  let bytes = 0;
  for (const st of statements) {
    const size = st.sql.length + st.params.reduce<number>((n, v) => n + (Buffer.isBuffer(v) ? v.length * 2 + 3 : 24), 0);
    if (group.length > 0 && bytes + size > budget) {
      groups.push(group);
      group = [];
      bytes = 0;
    }
    group.push(st);
    bytes += size;
  }
  if (group.length > 0) groups.push(group);
  return groups;
}
