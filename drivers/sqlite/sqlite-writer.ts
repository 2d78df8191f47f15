// The SQLite writer connection, in its own thread: a commit waits for fsync
// here, not on the server's event loop, so requests keep arriving (and group
// into the next batch) while the disk works. It runs one message at a time:
//   open | begin(sql) | all(sql) | run(sql) | exec(sql) | commit(statements) | rollback | close
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

export interface WriterRequest {
  id: number;
  op: 'begin' | 'all' | 'run' | 'exec' | 'commit' | 'rollback' | 'close';
  sql?: string;
  params?: unknown[];
  statements?: { sql: string; params: unknown[] }[];
}

export interface WriterReply {
  id: number;
  rows?: Record<string, unknown>[];
  error?: { code: string; message: string };
}

export interface WriterOptions {
  file: string;
  synchronous: 'FULL' | 'NORMAL';
  busyTimeoutMs: number;
}

/** Integers come back as BigInt (exact for int64 lease ids); numbers are made of those that fit. */
export function fromSqlite(rows: Record<string, unknown>[]): Record<string, unknown>[] {
  for (const row of rows) {
    for (const k of Object.keys(row)) {
      const v = row[k];
      if (typeof v === 'bigint') row[k] = v >= -9007199254740991n && v <= 9007199254740991n ? Number(v) : v.toString();
    }
  }
  return rows;
}

/** Parameters: booleans as 0/1; everything else as it is. */
export function toSqlite(v: unknown): unknown {
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (v instanceof Uint8Array && !Buffer.isBuffer(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return v;
}

/** Opens the file; a failure is answered to the first request (id 0), with SQLite's code and message. */
function openDatabase(opts: WriterOptions): Database.Database | null {
  try {
    const db = new Database(opts.file, { timeout: opts.busyTimeoutMs });
    db.defaultSafeIntegers(true);
    // Incremental vacuum must be chosen before the first table exists.
    db.pragma('auto_vacuum = INCREMENTAL');
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${opts.synchronous}`);
    return db;
  } catch (err) {
    // an Error thrown out of a worker reaches the parent as a bare object: send the words instead
    parentPort!.postMessage({ id: 0, error: { code: (err as { code?: string }).code ?? 'ERROR', message: (err as Error).message } } satisfies WriterReply);
    return null;
  }
}

function serve(opts: WriterOptions): void {
  const db = openDatabase(opts);
  if (!db) return;
  const cache = new Map<string, Database.Statement>();
  const prepare = (sql: string) => {
    let s = cache.get(sql);
    if (!s) cache.set(sql, (s = db.prepare(sql)));
    return s;
  };
  const run = (sql: string, params: unknown[] = []) => {
    const s = prepare(sql);
    if (s.reader) s.all(...params.map(toSqlite));
    else s.run(...params.map(toSqlite));
  };
  const all = (sql: string, params: unknown[] = []) => fromSqlite(prepare(sql).all(...params.map(toSqlite)) as Record<string, unknown>[]);

  parentPort!.on('message', (m: WriterRequest) => {
    const reply: WriterReply = { id: m.id };
    try {
      switch (m.op) {
        case 'begin':
          prepare('BEGIN IMMEDIATE').run();
          reply.rows = all(m.sql!, m.params);
          break;
        case 'all':
          reply.rows = all(m.sql!, m.params);
          break;
        case 'run':
          run(m.sql!, m.params);
          break;
        case 'exec':
          db.exec(m.sql!);
          break;
        case 'commit':
          for (const s of m.statements ?? []) run(s.sql, s.params);
          prepare('COMMIT').run();
          break;
        case 'rollback':
          if (db.inTransaction) prepare('ROLLBACK').run();
          break;
        case 'close':
          db.close();
          break;
      }
    } catch (err) {
      if (m.op === 'commit' && db.inTransaction) prepare('ROLLBACK').run();
      reply.error = { code: (err as { code?: string }).code ?? 'ERROR', message: (err as Error).message };
    }
    parentPort!.postMessage(reply);
  });
  parentPort!.postMessage({ id: 0 });
}

if (parentPort && workerData?.file) serve(workerData as WriterOptions);
