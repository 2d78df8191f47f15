// node-postgres (pg) behind the async SqlClient interface.
//
// The driver writes `?` placeholders; they become `$1, $2...` here. A write
// transaction takes two round trips to open and lock (BEGIN and the locking
// SELECT go together as one simple query), its reads are parameterized, and
// its final statements go with COMMIT in one simple query with the values
// written as literals (bytes as hex): one round trip, as with MySQL. A lost or
// refused connection is UNAVAILABLE; the pool reconnects by itself.
//
// LISTEN/NOTIFY: each commit ends with pg_notify (the dialect's commitNotice,
// with the commit's entries when they fit: drivers/sql/commit-notice.ts),
// delivered by PostgreSQL when the transaction commits; one connection per
// process listens and wakes the log tail at once. Polling stays the safety
// net for a notification lost while that connection was down.
import pg from 'pg';
import { READ_ONLY, StorageTimeoutError, StorageUnavailableError } from '../../src/errors';
import { byDeadline, earliest, RetryableError, type DatabaseTarget, SqlMonitor, STATEMENT_TIMEOUT_MS, type RunOptions, type Row, type SqlClient, type SqlExecutor, type SqlObserver, type Statement, type WriteOutcome, readTlsFiles, type TlsFileParams } from '../sql/sql-client';
import { COMMIT_CHANNEL, ENDS_IF_IDLE } from './pg-dialect';
import { HostChooser, routedClient, type Endpoint, type SessionAttrs } from './pg-hosts';
import { TlsChoice } from './pg-tls';

/**
 * Its params: sslmode, sslrootcert, sslcert, sslkey, connect_timeout, application_name,
 * target_session_attrs; a host that is an absolute path is a Unix socket directory.
 * `endpoints`: every host of a multi-host URL, in order (host and port are the first's).
 */
export interface PostgresTarget extends DatabaseTarget {
  endpoints?: Endpoint[];
}

/** The advisory lock of schema migrations (any number: it only has to be the same for every instance). */
const SCHEMA_LOCK_KEY = 0x65746364;
// every bigint column is read with Number() or String() by the driver; keep pg's exact strings
const RETRYABLE = new Set(['40001', '40P01', '55P03']); // serialization failure, deadlock, lock not available
const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN', '57P01', '57P02', '57P03', '53300']);
// "timeout expired": a Client (not the pool) that could not connect within connect_timeout
const LOST = /Connection terminated|connection error|Client was closed|not queryable|Connection ended|timeout expired/i;

export function classify(err: unknown): unknown {
  const e = err as { code?: string; message?: string };
  if (e && typeof e === 'object') {
    if (e.code && RETRYABLE.has(e.code)) return new RetryableError(e.code);
    // read_only_sql_transaction: a hot standby, or a primary being demoted. Unavailable, so that the
    // connection is dropped: through a proxy or a failover address the next one reaches the new primary.
    if (e.code === '25006') return new StorageUnavailableError(new Error(READ_ONLY));
    if ((e.code && (UNAVAILABLE_CODES.has(e.code) || e.code.startsWith('08'))) || (!e.code && e.message && LOST.test(e.message))) return new StorageUnavailableError(err);
  }
  return err;
}

const guarded = new WeakSet<pg.PoolClient>();

/** The statement with each `?` placeholder outside quoted literals replaced by fill(its index). */
function fillPlaceholders(sql: string, fill: (i: number) => string): string {
  let i = 0;
  let quoted = false;
  let out = '';
  for (const c of sql) {
    if (c === "'") quoted = !quoted;
    out += c === '?' && !quoted ? fill(i++) : c;
  }
  return out;
}

/** `?` placeholders (outside quoted literals) as `$1, $2...`. */
export function numbered(sql: string): string {
  return fillPlaceholders(sql, (i) => `$${i + 1}`);
}

/** A value as an SQL literal, for the statements sent with COMMIT. */
export function literal(v: unknown): string {
  if (v === null || v === undefined) return 'NULL';
  if (Buffer.isBuffer(v)) return `'\\x${v.toString('hex')}'::bytea`;
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  if (typeof v === 'boolean') return v ? 'TRUE' : 'FALSE';
  const s = String(v);
  return s.includes('\\') ? `E'${s.replace(/\\/g, '\\\\').replace(/'/g, "''")}'` : `'${s.replace(/'/g, "''")}'`;
}

/** A statement with its values written in (no placeholders left). */
export function inlined(st: Statement): string {
  return fillPlaceholders(st.sql, (i) => literal(st.params[i]));
}

/** The TLS files, as libpq names its parameters. */
export const PG_TLS_FILES: TlsFileParams = ['sslrootcert', 'sslcert', 'sslkey'];

function sslOptions(params: Record<string, string>): pg.ClientConfig['ssl'] {
  // libpq's default: TLS where the server offers it
  const mode = params.sslmode ?? 'prefer';
  if (mode === 'disable') return undefined;
  // a client certificate (sslcert, sslkey), for servers whose pg_hba.conf asks for one (`cert`, clientcert=verify-full)
  const { ca, ...client } = readTlsFiles(params, PG_TLS_FILES);
  // prefer and allow: TLS where the server wants it (pg-tls.ts), with no check of its certificate, as libpq
  if (mode === 'require' || mode === 'prefer' || mode === 'allow') return { ...client, rejectUnauthorized: false };
  if (mode === 'verify-ca') return { ...client, ca, rejectUnauthorized: true, checkServerIdentity: () => undefined };
  return { ...client, ca, rejectUnauthorized: true }; // verify-full
}

export function connectionConfig(target: PostgresTarget): pg.ClientConfig {
  return {
    host: target.host,
    port: target.port,
    user: target.user,
    password: target.password,
    database: target.database,
    ssl: sslOptions(target.params),
    connectionTimeoutMillis: Number(target.params.connect_timeout ?? 5) * 1000,
    application_name: target.params.application_name ?? 'etcd-adapter',
    keepAlive: true,
    // no `options` startup parameter (PgBouncer refuses it): each transaction sets what it needs (ENDS_IF_IDLE)
  };
}

export class PostgresClient implements SqlClient {
  readonly pool: pg.Pool;
  private readonly health: SqlMonitor;
  private listener: pg.Client | null = null;
  private closed = false;
  /** Several hosts, or a session kind asked for: which host connections go to. */
  private readonly chooser: HostChooser | null;
  /** sslmode=prefer or allow: which hosts get TLS. */
  private readonly tls: TlsChoice | null;
  private readonly Client: typeof pg.Client;

  constructor(
    readonly target: PostgresTarget,
    private readonly starts: { startWrite: string; startSnapshot: string },
    poolSize = 16,
    private readonly timeoutMs = STATEMENT_TIMEOUT_MS,
    observer?: SqlObserver,
  ) {
    this.health = new SqlMonitor(observer);
    const config = connectionConfig(target);
    const endpoints = target.endpoints ?? [{ host: target.host, port: target.port }];
    const attrs = (target.params.target_session_attrs ?? 'any') as SessionAttrs;
    const mode = target.params.sslmode ?? 'prefer';
    // prefer, allow: each host's connections with TLS or not as it wants (pg-tls.ts)
    this.tls = mode === 'prefer' || mode === 'allow' ? new TlsChoice(mode, config.ssl!, config, (err) => classify(err) instanceof StorageUnavailableError) : null;
    this.chooser = endpoints.length > 1 || attrs !== 'any' ? new HostChooser(endpoints, attrs, config, this.tls) : null;
    this.Client = this.chooser || this.tls ? routedClient(this.chooser, this.tls) : pg.Client;
    this.pool = new pg.Pool({ ...config, max: poolSize, idleTimeoutMillis: 60_000, Client: this.Client });
    // an idle pooled connection that breaks (the server restarted) is dropped by the pool; nothing to do here
    this.pool.on('error', () => undefined);
  }

  all(sql: string, params: unknown[] = [], opts?: RunOptions): Promise<Row[]> {
    return this.health.track('statement', this.single(sql, params, opts), sql);
  }

  async run(sql: string, params: unknown[] = [], opts?: RunOptions): Promise<void> {
    await this.health.track('statement', this.single(sql, params, opts), sql);
  }

  private deadline(opts?: RunOptions): number | null {
    const ms = opts?.timeoutMs ?? this.timeoutMs;
    return ms > 0 ? performance.now() + ms : null;
  }

  private async single(sql: string, params: unknown[], opts?: RunOptions): Promise<Row[]> {
    const deadline = this.deadline(opts);
    const conn = await this.acquire(deadline);
    let broken = false;
    try {
      return await this.query(conn, numbered(sql), params, deadline);
    } catch (err) {
      broken = err instanceof StorageTimeoutError || err instanceof StorageUnavailableError;
      throw err;
    } finally {
      conn.release(broken);
    }
  }

  /** A pooled connection, or `request timed out` once the deadline passes; one that comes later goes back. */
  private async acquire(deadline: number | null): Promise<pg.PoolClient> {
    const pending = this.pool.connect().then(
      (conn) => {
        // A checked-out connection that breaks between queries emits 'error' (the pool listens only to idle ones):
        // unheard, it would end the process. Its next query fails and it is released as broken.
        if (!guarded.has(conn)) {
          guarded.add(conn);
          conn.on('error', () => undefined);
        }
        return conn;
      },
      (err) => {
        throw this.classified(err);
      },
    );
    try {
      return await byDeadline(pending, deadline, 'waiting for a database connection');
    } catch (err) {
      if (err instanceof StorageTimeoutError) pending.then((c) => c.release(), () => undefined);
      throw err;
    }
  }

  /**
   * One query within the deadline. A query still unanswered then leaves its
   * connection unusable: the caller releases it as broken (pg closes it), and
   * the server rolls back what it had open.
   */
  private async query(conn: pg.PoolClient, sql: string, params: unknown[] | undefined, deadline: number | null): Promise<Row[]> {
    const run = async () => {
      const result = (await conn.query(params ? { text: sql, values: params } : sql)) as pg.QueryResult | pg.QueryResult[];
      // a simple query of several statements answers each; the last one's rows are wanted
      return (Array.isArray(result) ? result[result.length - 1] : result).rows as Row[];
    };
    const work = run().catch((err) => {
      throw this.classified(err);
    });
    work.catch(() => undefined); // a late failure, after the deadline answered, is nobody's
    if (deadline !== null && deadline <= performance.now()) throw new StorageTimeoutError('a database statement');
    return byDeadline(work, deadline, 'a database statement');
  }

  /** classify(), and a host that failed or takes no writes now is looked for again (several hosts). */
  private classified(err: unknown): unknown {
    const c = classify(err);
    if (c instanceof StorageUnavailableError) {
      this.chooser?.forget();
      this.tls?.forget();
    }
    return c;
  }

  private executor(conn: pg.PoolClient, deadline: number | null): SqlExecutor {
    return {
      all: (sql, params = []) => this.query(conn, numbered(sql), params, deadline),
      run: async (sql, params = []) => void (await this.query(conn, numbered(sql), params, deadline)),
    };
  }

  /** Opens a transaction with `start` and runs `begin` in it; a connection that died while idle is replaced once. */
  private async opened(start: string, begin: Statement, deadline: number | null): Promise<{ conn: pg.PoolClient; row: Row }> {
    for (let attempt = 1; ; attempt++) {
      const conn = await this.acquire(deadline);
      try {
        const rows = begin.params.length ? (await this.query(conn, start, undefined, deadline), await this.query(conn, numbered(begin.sql), begin.params, deadline)) : await this.query(conn, `${start}; ${begin.sql}`, undefined, deadline);
        return { conn, row: rows[0] };
      } catch (err) {
        conn.release(true);
        if (attempt >= 2 || err instanceof StorageTimeoutError || !(err instanceof StorageUnavailableError)) throw err;
      }
    }
  }

  transaction<T>(begin: Statement, fn: (tx: SqlExecutor, locked: Row) => Promise<WriteOutcome<T>>, deadline?: number): Promise<T> {
    return this.health.track('write', this.writeTransaction(begin, fn, deadline));
  }

  private async writeTransaction<T>(begin: Statement, fn: (tx: SqlExecutor, locked: Row) => Promise<WriteOutcome<T>>, until?: number): Promise<T> {
    const deadline = earliest(this.deadline(), until);
    const { conn, row: locked } = await this.opened(this.starts.startWrite, begin, deadline);
    let open = true;
    let broken = false;
    try {
      const outcome = await fn(this.executor(conn, deadline), locked);
      const finalSql = [...outcome.commit.map(inlined), 'COMMIT'].join(';\n');
      await this.health.commit(this.query(conn, finalSql, undefined, deadline));
      open = false;
      return outcome.value;
    } catch (err) {
      if (err instanceof StorageTimeoutError || err instanceof StorageUnavailableError) broken = true;
      else if (open) await conn.query('ROLLBACK').catch(() => (broken = true));
      throw err;
    } finally {
      conn.release(broken);
    }
  }

  snapshot<T>(begin: Statement, fn: (tx: SqlExecutor, meta: Row) => Promise<T>): Promise<T> {
    return this.health.track('read', this.readSnapshot(begin, fn));
  }

  private async readSnapshot<T>(begin: Statement, fn: (tx: SqlExecutor, meta: Row) => Promise<T>): Promise<T> {
    const deadline = this.deadline();
    const { conn, row: meta } = await this.opened(this.starts.startSnapshot, begin, deadline);
    let broken = false;
    try {
      return await fn(this.executor(conn, deadline), meta);
    } catch (err) {
      broken = err instanceof StorageTimeoutError || err instanceof StorageUnavailableError;
      throw err;
    } finally {
      if (broken) conn.release(true);
      else {
        // queued on the connection ahead of its next user's queries: nothing to wait for
        conn.query('COMMIT').catch(() => undefined);
        conn.release();
      }
    }
  }

  /**
   * Runs fn in one transaction holding a transaction-level advisory lock (PostgreSQL's CREATE ...
   * IF NOT EXISTS races otherwise). Transaction-level, not session-level: behind PgBouncer in
   * transaction mode a session lock and its unlock can land on different server connections,
   * and a lock left behind would stop every later start. The migrations are DDL, which
   * PostgreSQL runs transactionally: a start that dies halfway leaves nothing half done.
   */
  async exclusive<T>(fn: (ex: SqlExecutor) => Promise<T>): Promise<T> {
    const conn = await this.acquire(this.deadline());
    let broken = false;
    let open = false;
    try {
      await this.query(conn, `BEGIN; ${ENDS_IF_IDLE}`, undefined, null);
      open = true;
      // a database without advisory locks (feature_not_supported) runs them without one
      await this.query(conn, `SELECT pg_advisory_xact_lock(${SCHEMA_LOCK_KEY})`, undefined, null).catch(async (err) => {
        if ((err as { code?: string }).code !== '0A000') throw err;
        await this.query(conn, `ROLLBACK; BEGIN; ${ENDS_IF_IDLE}`, undefined, null);
      });
      const value = await fn(this.executor(conn, null));
      await this.query(conn, 'COMMIT', undefined, null);
      open = false;
      return value;
    } catch (err) {
      if (open) await conn.query('ROLLBACK').catch(() => (broken = true));
      else broken = true;
      throw err;
    } finally {
      conn.release(broken);
    }
  }

  /**
   * Holds one connection that LISTENs for commits and calls `onNotice` with each announcement's
   * payload (null once (re)connected); reconnects while the client is open.
   */
  listen(onNotice: (payload: string | null) => void): void {
    let delay = 100;
    const connect = async () => {
      if (this.closed) return;
      const client = new this.Client(connectionConfig(this.target));
      let retried = false;
      const retry = () => {
        if (retried) return;
        retried = true;
        client.removeAllListeners();
        client.on('error', () => undefined);
        client.end().catch(() => undefined);
        if (this.listener === client) this.listener = null;
        if (this.closed) return;
        setTimeout(connect, delay).unref();
        delay = Math.min(delay * 2, 5000);
      };
      client.on('error', retry);
      client.on('end', retry);
      client.on('notification', (n) => {
        if (n.payload) onNotice(n.payload);
      });
      try {
        await client.connect();
        await client.query(`LISTEN ${COMMIT_CHANNEL}`);
        this.listener = client;
        delay = 100;
        // what committed while no one listened is found by the next poll, or at once here
        onNotice(null);
      } catch (err) {
        this.classified(err); // several hosts: one that is down is looked for again
        retry();
      }
    };
    void connect();
  }

  failing(): string | null {
    return this.health.failing();
  }

  async close(): Promise<void> {
    this.closed = true;
    const l = this.listener;
    this.listener = null;
    if (l) {
      l.removeAllListeners();
      l.on('error', () => undefined);
      await l.end().catch(() => undefined);
    }
    await this.pool.end().catch(() => undefined);
  }
}
