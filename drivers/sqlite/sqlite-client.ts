// better-sqlite3 behind the async SqlClient interface.
//
// Writes: one writer connection, in a worker thread (sqlite-writer.ts), so
// that fsync at commit never blocks this event loop. Write transactions run
// one at a time in this process (BEGIN IMMEDIATE also locks out other
// processes on the file); their final statements and COMMIT go in one message.
// Reads: a pool of read-only connections in this thread; in WAL mode each
// one's read transaction is a consistent snapshot, held for one read view.
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { StorageTimeoutError, StorageUnavailableError } from '../../src/errors';
import { earliest, RetryableError, SqlMonitor, STATEMENT_TIMEOUT_MS, type SqlObserver, type RunOptions, type Row, type SqlClient, type SqlExecutor, type Statement, type WriteOutcome } from '../sql/sql-client';
import { fromSqlite, toSqlite, type WriterOptions, type WriterReply, type WriterRequest } from './sqlite-writer';

type Db = Database.Database;

const BUSY_TIMEOUT_MS = 5000;
const MAX_IDLE_READERS = 8;

/** A SQLite error as the rest of the driver understands it. */
function classify(code: string, message: string): Error {
  const err = Object.assign(new Error(message), { code });
  if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') return new RetryableError(code);
  if (/^SQLITE_(IOERR|CANTOPEN|FULL|CORRUPT|NOTADB|READONLY)/.test(code)) return new StorageUnavailableError(err);
  return err;
}

function guard<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw classify((err as { code?: string }).code ?? '', (err as Error).message);
  }
}

interface Reader {
  db: Db;
  begin: Database.Statement;
  commit: Database.Statement;
  statements: Map<string, Database.Statement>;
}

export class SqliteClient implements SqlClient {
  private readonly worker: Worker;
  private readonly ready: Promise<void>;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(r: WriterReply): void; reject(e: unknown): void }>();
  private readonly idleReaders: Reader[] = [];
  private writeTail: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly health: SqlMonitor;

  constructor(
    private readonly file: string,
    synchronous: 'FULL' | 'NORMAL',
    /** How long a writer statement, or a whole write transaction, may take (0: no limit). */
    private readonly timeoutMs = STATEMENT_TIMEOUT_MS,
    observer?: SqlObserver,
  ) {
    this.health = new SqlMonitor(observer);
    const options: WriterOptions = { file, synchronous, busyTimeoutMs: BUSY_TIMEOUT_MS };
    this.worker = new Worker(path.join(__dirname, 'sqlite-writer.js'), { workerData: options });
    this.ready = new Promise((resolve, reject) => {
      this.pending.set(0, { resolve: () => resolve(), reject });
      this.worker.once('error', (err) => {
        for (const p of this.pending.values()) p.reject(new StorageUnavailableError(err));
        this.pending.clear();
      });
    });
    this.worker.on('message', (reply: WriterReply) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      if (reply.error) return p.reject(classify(reply.error.code, reply.error.message));
      // Buffers cross threads as plain Uint8Arrays: make them Buffers again.
      for (const row of reply.rows ?? []) {
        for (const k of Object.keys(row)) {
          const v = row[k];
          if (v instanceof Uint8Array && !Buffer.isBuffer(v)) row[k] = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
        }
      }
      p.resolve(reply);
    });
  }

  /**
   * One request to the writer thread, answered by the deadline (null: no
   * limit) or refused with `request timed out` (a disk that stopped
   * answering); a reply that comes later is dropped. The thread runs requests
   * in order, so a transaction given up on is still rolled back after it.
   */
  private async ask(req: Omit<WriterRequest, 'id'>, deadline: number | null = null): Promise<WriterReply> {
    await this.ready;
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      if (deadline !== null) {
        timer = setTimeout(() => {
          if (!this.pending.delete(id)) return;
          reject(new StorageTimeoutError('a SQLite statement'));
        }, Math.max(0, deadline - performance.now()));
      }
      this.pending.set(id, {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.worker.postMessage({ ...req, id });
    });
  }

  /** The moment by which work started now must be done (null: no limit). */
  private deadline(opts?: RunOptions): number | null {
    const ms = opts?.timeoutMs ?? this.timeoutMs;
    return ms > 0 ? performance.now() + ms : null;
  }

  failing(): string | null {
    return this.health.failing();
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.writeTail.then(fn);
    this.writeTail = run.catch(() => undefined);
    return run;
  }

  /** One statement on a reader, in autocommit: a single SELECT is its own consistent snapshot. */
  all(sql: string, params: unknown[] = []): Promise<Row[]> {
    return this.health.track('statement', this.read(sql, params), sql);
  }

  private async read(sql: string, params: unknown[]): Promise<Row[]> {
    if (this.closed) throw new StorageUnavailableError(new Error('database closed'));
    await this.ready;
    const r = this.reader();
    try {
      return this.query(r, sql, params);
    } finally {
      this.release(r);
    }
  }

  private query(r: Reader, sql: string, params: unknown[]): Row[] {
    return guard(() => {
      let st = r.statements.get(sql);
      if (!st) r.statements.set(sql, (st = r.db.prepare(sql)));
      return fromSqlite(st.all(...params.map(toSqlite)) as Row[]);
    });
  }

  private release(r: Reader): void {
    if (!this.closed && this.idleReaders.length < MAX_IDLE_READERS) this.idleReaders.push(r);
    else r.db.close();
  }

  /** A statement on the writer, outside any transaction (schema, vacuum). */
  run(sql: string, params?: unknown[], opts?: RunOptions): Promise<void> {
    return this.health.track('statement', this.serialized(async () => void (await this.ask({ op: 'run', sql, params }, this.deadline(opts)))), sql);
  }

  /** The whole transaction, COMMIT included, within one deadline. */
  transaction<T>(begin: Statement, fn: (tx: SqlExecutor, locked: Row) => Promise<WriteOutcome<T>>, until?: number): Promise<T> {
    return this.health.track(
      'write',
      this.serialized(async () => {
        const deadline = earliest(this.deadline(), until);
        const { rows } = await this.ask({ op: 'begin', sql: begin.sql, params: begin.params }, deadline);
        const tx: SqlExecutor = {
          all: async (sql, params) => (await this.ask({ op: 'all', sql, params }, deadline)).rows as Row[],
          run: async (sql, params) => void (await this.ask({ op: 'run', sql, params }, deadline)),
        };
        try {
          const outcome = await fn(tx, rows![0]);
          await this.health.commit(this.ask({ op: 'commit', statements: outcome.commit }, deadline));
          return outcome.value;
        } catch (err) {
          // Queued behind whatever the thread still runs of this transaction; not waited for past a timeout.
          const rollback = this.ask({ op: 'rollback' }).catch(() => undefined);
          if (!(err instanceof StorageTimeoutError)) await rollback;
          throw err;
        }
      }),
    );
  }

  private reader(): Reader {
    const idle = this.idleReaders.pop();
    if (idle) return idle;
    const db = guard(() => new Database(this.file, { readonly: true, fileMustExist: true, timeout: BUSY_TIMEOUT_MS }));
    db.defaultSafeIntegers(true);
    return { db, begin: db.prepare('BEGIN'), commit: db.prepare('COMMIT'), statements: new Map() };
  }

  snapshot<T>(begin: Statement, fn: (tx: SqlExecutor, meta: Row) => Promise<T>): Promise<T> {
    return this.health.track('read', this.readSnapshot(begin, fn));
  }

  private async readSnapshot<T>(begin: Statement, fn: (tx: SqlExecutor, meta: Row) => Promise<T>): Promise<T> {
    if (this.closed) throw new StorageUnavailableError(new Error('database closed'));
    await this.ready;
    const r = this.reader();
    const tx: SqlExecutor = {
      all: async (sql, params) => this.query(r, sql, params ?? []),
      run: async () => {
        throw new Error('a read snapshot cannot write');
      },
    };
    try {
      guard(() => r.begin.run());
      const [meta] = this.query(r, begin.sql, begin.params);
      return await fn(tx, meta);
    } finally {
      if (r.db.inTransaction) r.commit.run();
      this.release(r);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.writeTail;
    for (const r of this.idleReaders.splice(0)) r.db.close();
    await this.ask({ op: 'close' }).catch(() => undefined);
    await this.worker.terminate();
  }
}
