// What the generic SQL driver needs from a database connection, whatever the
// library (better-sqlite3 is synchronous, mysql2 is a pool of async
// connections). Rows come back as plain objects keyed by column name.

export type Row = Record<string, unknown>;

export interface Statement {
  sql: string;
  params: unknown[];
}

export interface SqlExecutor {
  all(sql: string, params?: unknown[]): Promise<Row[]>;
  run(sql: string, params?: unknown[]): Promise<void>;
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
   * does. Rolls back when fn throws.
   */
  transaction<T>(begin: Statement, fn: (tx: SqlExecutor, locked: Row) => Promise<WriteOutcome<T>>): Promise<T>;
  /** Runs fn against one consistent snapshot; `begin` reads the meta row inside it. */
  snapshot<T>(begin: Statement, fn: (tx: SqlExecutor, meta: Row) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** A database error that means "try the transaction again" (deadlock, lock timeout, write conflict). */
export class RetryableError extends Error {}
