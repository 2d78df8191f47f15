// What the generic SQL driver needs from a database connection, whatever the
// library (better-sqlite3 is synchronous, mysql2 is a pool of async
// connections). Rows come back as plain objects keyed by column name.
import * as fs from 'node:fs';
import { StorageTimeoutError, StorageUnavailableError } from '../../src/errors';

export type Row = Record<string, unknown>;

export interface Statement {
  sql: string;
  params: unknown[];
}

/**
 * How long one statement, or one whole transaction, may take before the
 * request answers `etcdserver: request timed out` (etcd's own request timeout
 * is about 7 s): a database that stops answering (frozen, partitioned) never
 * holds a request longer than this.
 */
export const STATEMENT_TIMEOUT_MS = 5000;

/**
 * How long the database lets a transaction sit idle before it ends the
 * session. Ours never wait inside a transaction (statements go back to back),
 * so an idle one belongs to an instance that stopped: paused (SIGSTOP, a VM
 * suspended, a long stall) with the revision row locked. Without this, every
 * other instance's writes wait on that lock until it resumes (InnoDB gives up
 * after 50 s, and tries again). Shorter than a statement's deadline, so that a
 * write elsewhere waits it out and succeeds. MariaDB, TiDB and PostgreSQL have
 * such a setting; MySQL has none.
 */
export const IDLE_TRANSACTION_TIMEOUT_MS = 3000;

export interface RunOptions {
  /** A limit other than STATEMENT_TIMEOUT_MS; 0 for none (schema changes, defragmentation). */
  timeoutMs?: number;
}

export interface SqlExecutor {
  all(sql: string, params?: unknown[], opts?: RunOptions): Promise<Row[]>;
  run(sql: string, params?: unknown[], opts?: RunOptions): Promise<void>;
}

export interface WriteOutcome<T> {
  value: T;
  /**
   * Statements to run as the transaction's last step, together with COMMIT
   * and as one unit: no reader of this process sees half of them (SQLite runs
   * them synchronously; MySQL sends them in one round trip).
   */
  commit: Statement[];
}

export interface SqlClient extends SqlExecutor {
  /**
   * Runs fn in a write transaction. `begin` is the statement that opens it and
   * takes the write lock (it returns the locked meta row); fn's reads see the
   * latest committed state, and nothing else commits until this transaction
   * does. Rolls back when fn throws. The whole of it, COMMIT included, must
   * be done by the deadline (performance.now() time; at most
   * STATEMENT_TIMEOUT_MS from now) or it fails with StorageTimeoutError.
   */
  transaction<T>(begin: Statement, fn: (tx: SqlExecutor, locked: Row) => Promise<WriteOutcome<T>>, deadline?: number): Promise<T>;
  /** Runs fn against one consistent snapshot; `begin` reads the meta row inside it. */
  snapshot<T>(begin: Statement, fn: (tx: SqlExecutor, meta: Row) => Promise<T>): Promise<T>;
  /** Runs fn on one connection while holding the database's schema lock (schema migrations of instances starting together). */
  exclusive?<T>(fn: (ex: SqlExecutor) => Promise<T>): Promise<T>;
  /**
   * Where the database announces commits (PostgreSQL's LISTEN/NOTIFY): calls onNotice with each
   * announcement's payload (null: (re)connected, so some may have been missed).
   */
  listen?(onNotice: (payload: string | null) => void): void;
  /** Why the database is failing (its last answer was a fault or nothing in time), or null. */
  failing(): string | null;
  close(): Promise<void>;
}

/**
 * The work's result, or StorageTimeoutError(`what`) once the deadline
 * (performance.now() time; null: none) passes first. The work goes on; a
 * caller that must undo it (a connection that comes late) does so itself.
 */
export async function byDeadline<T>(work: Promise<T>, deadline: number | null, what: string): Promise<T> {
  if (deadline === null) return work;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StorageTimeoutError(what)), Math.max(0, deadline - performance.now()));
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The connection, target and settings of a database server, from a backend URL. */
export interface DatabaseTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  /** From the URL's query string (ssl, sslmode, connect timeouts...). */
  params: Record<string, string>;
}

/** The URL parameters that name a TLS CA, client certificate and client key file, in that order. */
export type TlsFileParams = readonly [ca: string, cert: string, key: string];

/** The CA, client certificate and client key files a URL names, read (undefined where it names none). */
export function readTlsFiles(params: Record<string, string>, names: TlsFileParams): { ca?: string; cert?: string; key?: string } {
  const [ca, cert, key] = names.map((param) => (params[param] ? fs.readFileSync(params[param], 'utf8') : undefined));
  return { ca, cert, key };
}

/** The earlier of two deadlines (null: none). */
export function earliest(a: number | null, b: number | undefined): number | null {
  if (b === undefined) return a;
  return a === null ? b : Math.min(a, b);
}

/** What a client tells about its work (metrics, slow SQL, the database lost and back). */
export interface SqlObserver {
  /** A write transaction (COMMIT included), a read snapshot, or one statement alone, took this long. */
  timed(kind: SqlWork, seconds: number, sql?: string): void;
  /** The COMMIT step of a write transaction took this long (etcd's backend commit duration). */
  committed(seconds: number): void;
  /** A statement failed: the database's error code, or "timeout". */
  failed(code: string): void;
  /** The database stopped answering (the reason), or answers again (null). */
  health(reason: string | null): void;
}

export type SqlWork = 'write' | 'read' | 'statement';

/**
 * Times a client's work for its observer, and keeps whether the database
 * answered last time: a fault sets the reason, the next success clears it.
 */
export class SqlMonitor {
  private reason: string | null = null;

  constructor(private readonly observer?: SqlObserver) {}

  track<T>(kind: SqlWork, work: Promise<T>, sql?: string): Promise<T> {
    const started = performance.now();
    return work.then(
      (v) => {
        this.observer?.timed(kind, (performance.now() - started) / 1000, sql);
        if (this.reason !== null) {
          this.reason = null;
          this.observer?.health(null);
        }
        return v;
      },
      (err) => {
        this.observer?.timed(kind, (performance.now() - started) / 1000, sql);
        this.observer?.failed(err instanceof StorageTimeoutError ? 'timeout' : String((err as { code?: unknown }).code ?? (err as { errno?: unknown }).errno ?? 'error'));
        if (err instanceof StorageUnavailableError) {
          if (this.reason === null) this.observer?.health(err.message);
          this.reason = err.message;
        }
        throw err;
      },
    );
  }

  /** Times a COMMIT step. */
  async commit<T>(work: Promise<T>): Promise<T> {
    const started = performance.now();
    const v = await work;
    this.observer?.committed((performance.now() - started) / 1000);
    return v;
  }

  failing(): string | null {
    return this.reason;
  }
}

/** A database error that means "try the transaction again" (deadlock, lock timeout, write conflict). */
export class RetryableError extends Error {}
