// better-sqlite3 behind the async SqlClient interface.
//
// One writer connection: write transactions run one at a time in this process
// (BEGIN IMMEDIATE also locks out other processes on the same file), and their
// final statements run with COMMIT in one synchronous block. Reads use a pool
// of read-only connections; in WAL mode each one's read transaction is a
// consistent snapshot, held for one read view.
import Database from 'better-sqlite3';
import { StorageUnavailableError } from '../../src/errors';
import { RetryableError, type Row, type SqlClient, type SqlExecutor, type Statement, type WriteOutcome } from '../sql/sql-client';

type Db = Database.Database;

const BUSY_TIMEOUT_MS = 5000;
const MAX_IDLE_READERS = 8;

export class SqliteClient implements SqlClient {
  private readonly writer: Db;
  private readonly idleReaders: Db[] = [];
  private readonly statements = new Map<Db, Map<string, Database.Statement>>();
  private writeTail: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly file: string,
    synchronous: 'FULL' | 'NORMAL',
  ) {
    this.writer = open(file, false);
    // Incremental vacuum must be chosen before the first table exists.
    this.writer.pragma('auto_vacuum = INCREMENTAL');
    this.writer.pragma('journal_mode = WAL');
    this.writer.pragma(`synchronous = ${synchronous}`);
  }

  private prepare(db: Db, sql: string): Database.Statement {
    let cache = this.statements.get(db);
    if (!cache) this.statements.set(db, (cache = new Map()));
    let stmt = cache.get(sql);
    if (!stmt) {
      stmt = db.prepare(sql);
      stmt.safeIntegers(true);
      cache.set(sql, stmt);
    }
    return stmt;
  }

  private executor(db: Db): SqlExecutor & { allSync(sql: string, params?: unknown[]): Row[]; runSync(sql: string, params?: unknown[]): void } {
    const allSync = (sql: string, params: unknown[] = []) => fromSqlite(this.prepare(db, sql).all(...params.map(toSqlite)) as Row[]);
    const runSync = (sql: string, params: unknown[] = []) => {
      const stmt = this.prepare(db, sql);
      if (stmt.reader) stmt.all(...params.map(toSqlite));
      else stmt.run(...params.map(toSqlite));
    };
    return {
      allSync,
      runSync,
      all: async (sql, params) => guard(() => allSync(sql, params)),
      run: async (sql, params) => guard(() => runSync(sql, params)),
    };
  }

  all(sql: string, params?: unknown[]): Promise<Row[]> {
    return this.snapshot({ sql: 'SELECT 1', params: [] }, (tx) => tx.all(sql, params));
  }

  async run(sql: string, params?: unknown[]): Promise<void> {
    await this.serialized(async () => guard(() => this.executor(this.writer).runSync(sql, params)));
  }

  /** Schema changes run here: statements that may not run inside a transaction. */
  execScript(sql: string): void {
    guard(() => this.writer.exec(sql));
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.writeTail.then(fn);
    this.writeTail = run.catch(() => undefined);
    return run;
  }

  transaction<T>(begin: Statement, fn: (tx: SqlExecutor, locked: Row) => Promise<WriteOutcome<T>>): Promise<T> {
    return this.serialized(async () => {
      const ex = this.executor(this.writer);
      guard(() => this.writer.exec('BEGIN IMMEDIATE'));
      try {
        const [locked] = ex.allSync(begin.sql, begin.params);
        const outcome = await fn(ex, locked);
        // The final statements and COMMIT in one synchronous block.
        guard(() => {
          for (const s of outcome.commit) ex.runSync(s.sql, s.params);
          this.writer.exec('COMMIT');
        });
        return outcome.value;
      } catch (err) {
        if (this.writer.inTransaction) this.writer.exec('ROLLBACK');
        throw err;
      }
    });
  }

  async snapshot<T>(begin: Statement, fn: (tx: SqlExecutor, meta: Row) => Promise<T>): Promise<T> {
    if (this.closed) throw new StorageUnavailableError(new Error('database closed'));
    const db = this.idleReaders.pop() ?? open(this.file, true);
    const ex = this.executor(db);
    try {
      guard(() => db.exec('BEGIN'));
      const [meta] = ex.allSync(begin.sql, begin.params);
      return await fn(ex, meta);
    } finally {
      if (db.inTransaction) db.exec('COMMIT');
      if (!this.closed && this.idleReaders.length < MAX_IDLE_READERS) this.idleReaders.push(db);
      else this.closeDb(db);
    }
  }

  private closeDb(db: Db): void {
    this.statements.delete(db);
    db.close();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.writeTail;
    for (const db of this.idleReaders.splice(0)) this.closeDb(db);
    this.closeDb(this.writer);
  }
}

function open(file: string, readonly: boolean): Db {
  const db = new Database(file, { readonly, fileMustExist: readonly, timeout: BUSY_TIMEOUT_MS });
  db.defaultSafeIntegers(true);
  return db;
}

/** Parameters: booleans as 0/1; everything else as it is. */
function toSqlite(v: unknown): unknown {
  if (typeof v === 'boolean') return v ? 1 : 0;
  return v;
}

/** Integers come back as BigInt (exact for int64 lease ids); numbers are made of those that fit. */
function fromSqlite(rows: Row[]): Row[] {
  for (const row of rows) {
    for (const k of Object.keys(row)) {
      const v = row[k];
      if (typeof v === 'bigint') row[k] = v >= -9007199254740991n && v <= 9007199254740991n ? Number(v) : v.toString();
    }
  }
  return rows;
}

function guard<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    const code = (err as { code?: string }).code ?? '';
    if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') throw new RetryableError(code);
    if (/^SQLITE_(IOERR|CANTOPEN|FULL|CORRUPT|NOTADB|READONLY)/.test(code)) throw new StorageUnavailableError(err);
    throw err;
  }
}
