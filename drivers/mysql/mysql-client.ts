// mysql2's pool behind the async SqlClient interface, for MySQL, MariaDB and
// TiDB.
//
// Transactions start with the dialect's statements (READ COMMITTED writers;
// on TiDB pessimistic ones, so that FOR UPDATE locks). The final statements
// go with COMMIT in one multi-statement round trip when they fit a packet.
// A lost or refused connection is UNAVAILABLE; the pool reconnects by itself.
import mysql from 'mysql2/promise';
import { StorageUnavailableError } from '../../src/errors';
import { RetryableError, type Row, type SqlClient, type SqlExecutor, type Statement, type WriteOutcome } from '../sql/sql-client';

export interface MysqlTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  tidb: boolean;
  /** Extra connection options from the URL's query string (ssl, connectTimeout...). */
  params: Record<string, string>;
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

export function classify(err: unknown): unknown {
  const e = err as { code?: string; errno?: number; fatal?: boolean };
  if (e && typeof e === 'object') {
    if (e.errno !== undefined && RETRYABLE.has(e.errno)) return new RetryableError(String(e.code ?? e.errno));
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

export class MysqlClient implements SqlClient {
  readonly pool: mysql.Pool;

  constructor(
    readonly target: MysqlTarget,
    private readonly starts: TransactionStarts,
    poolSize = 16,
  ) {
    this.pool = mysql.createPool({
      host: target.host,
      port: target.port,
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
      ssl: target.params.ssl === 'true' ? {} : undefined,
      charset: 'utf8mb4',
      // no stack capture per query (an Error per call): errors are classified, not traced
      trace: false,
    });
  }

  all(sql: string, params: unknown[] = []): Promise<Row[]> {
    return guarded(async () => (await this.pool.query(sql, params))[0] as Row[]);
  }

  async run(sql: string, params: unknown[] = []): Promise<void> {
    await guarded(() => this.pool.query(sql, params));
  }

  private executor(conn: mysql.PoolConnection): SqlExecutor {
    return {
      all: (sql, params = []) => guarded(async () => (await conn.query(sql, params))[0] as Row[]),
      run: async (sql, params = []) => void (await guarded(() => conn.query(sql, params))),
    };
  }

  /**
   * A pooled connection and the result of the statements that open a
   * transaction on it. A connection that died while idle (the database
   * restarted) fails here, before anything was done: one retry on a fresh
   * connection is always safe.
   */
  private async opened(sql: string, params: unknown[]): Promise<{ conn: mysql.PoolConnection; row: Row }> {
    for (let attempt = 1; ; attempt++) {
      const conn = await guarded(() => this.pool.getConnection());
      try {
        const results = (await conn.query(sql, params))[0] as unknown[];
        return { conn, row: (results[results.length - 1] as Row[])[0] };
      } catch (err) {
        conn.destroy();
        const e = classify(err);
        if (attempt >= 2 || !(e instanceof StorageUnavailableError)) throw e;
      }
    }
  }

  async transaction<T>(begin: Statement, fn: (tx: SqlExecutor, locked: Row) => Promise<WriteOutcome<T>>): Promise<T> {
    const { conn, row: locked } = await this.opened(`${this.starts.startWrite}; ${begin.sql}`, begin.params);
    let open = true;
    let broken = false;
    try {
      const outcome = await fn(this.executor(conn), locked);
      // One round trip when it fits in a packet; the last one carries COMMIT.
      const groups = packetGroups([...outcome.commit, { sql: 'COMMIT', params: [] }], this.maxPacketBytes);
      for (const g of groups) await guarded(() => conn.query(g.map((x) => x.sql).join(';\n'), g.flatMap((x) => x.params)));
      open = false;
      return outcome.value;
    } catch (err) {
      if (open) {
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

  async snapshot<T>(begin: Statement, fn: (tx: SqlExecutor, meta: Row) => Promise<T>): Promise<T> {
    const { conn, row: meta } = await this.opened(`${this.starts.startSnapshot}; ${begin.sql}`, begin.params);
    try {
      try {
        return await fn(this.executor(conn), meta);
      } finally {
        // Nothing to wait for: the connection runs COMMIT before its next query.
        conn.query('COMMIT').catch(() => conn.destroy());
      }
    } finally {
      conn.release();
    }
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
