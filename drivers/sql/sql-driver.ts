// The one SQL driver, for every SQL database: the statements are the same,
// what differs lives in the Dialect and the SqlClient.
//
// Tables (see the dialects for their DDL):
//   etcd_meta        one row: the store's revision (the revision lock: writers
//                    hold it for their whole transaction), compact revision,
//                    cluster id, schema version
//   etcd_log         every change: (revision, sub) -> key, value, ..., deleted
//   etcd_kv          the current value of each live key
//   etcd_compaction  how far physical compaction has got (its own lock row)
//
// A write transaction locks the meta row, reads under the lock, then writes
// its log rows, the current rows and the new revision together. Commit order
// is therefore revision order, and a snapshot that sees revision N sees every
// revision up to N: the log has no gaps to wait for.
import { randomBytes } from 'node:crypto';
import { ANNOUNCEMENT_HEARD_WITHIN_MS } from '../../src/mvcc/driver';
import type { AnnouncedCommit, Driver, DriverStats, KvRef, LeaseRecord, LogRead, MemberRecord, RangeQuery, RangeResult, ReadView, SharedDoc, TokenStore, WriteOptions, WriteSet, WriteTxn } from '../../src/mvcc/driver';
import type { KeyRange } from '../../src/mvcc/key-range';
import { EMPTY, type KeyValue, type LogEntry } from '../../src/mvcc/kv';
import { LOG_COLUMNS, placeholders, type Dialect } from './dialect';
import { RetryableError, type Row, type SqlClient, type SqlExecutor, type Statement } from './sql-client';
import { LeaseFence, LeaseHeld, leaseRow } from './lease-fence';
import { SqlTokens } from './sql-tokens';
import { decodeNotice, encodeNotice } from './commit-notice';
import type { LeaseGrant, ReadLeaseStore } from './read-lease';
import { StorageTimeoutError, StorageUnavailableError } from '../../src/errors';

const KV_SELECT = 'k, v, create_revision, mod_revision, version, lease';
const LOG_SELECT = 'revision, sub, k, v, create_revision, version, lease, deleted, prev_revision';
/** Work that may rightly take long (schema changes, defragmentation, giving space back): no statement time limit. */
const UNBOUNDED = { timeoutMs: 0 };
/** Bytes per page of log rows read for a snapshot (about), and the most rows. */
const SNAPSHOT_PAGE_BYTES = 4 << 20;
const SNAPSHOT_MAX_ROWS = 4000;
/** Log rows per compaction step: each step is one short transaction. */
const COMPACT_BATCH = 500;
/** compacted_sub when every row of compacted_to is done. */
const WHOLE_REVISION = 2_147_483_647;
const WRITE_ATTEMPTS = 8;
/** How often a write waiting for another instance's read lease looks again. */
const LEASE_RECHECK_MS = 20;
/** A write gives up (UNAVAILABLE) if another instance's read lease is not gone by then; it always is, barring bugs. */
const LEASE_WAIT_LIMIT_MS = 60_000;
const RELEASE_LEASE = 'UPDATE etcd_read_lease SET holder = NULL, revoked = 0 WHERE id = 1';

function where(r: KeyRange, column = 'k'): { sql: string; params: unknown[] } {
  if (r.end === null) return { sql: `${column} = ?`, params: [r.key] };
  if (r.end.length === 0) return { sql: `${column} >= ?`, params: [r.key] };
  return { sql: `${column} >= ? AND ${column} < ?`, params: [r.key, r.end] };
}

function kvFromRow(row: Row): KeyValue {
  return {
    key: row.k as Buffer,
    value: (row.v as Buffer | undefined) ?? EMPTY,
    create_revision: Number(row.create_revision),
    mod_revision: Number(row.mod_revision),
    version: Number(row.version),
    lease: String(row.lease),
  };
}

function leaseFromRow(row: Row): LeaseRecord {
  return { id: String(row.id), ttl: Number(row.ttl), expiresAt: Number(row.expires_at) };
}

function entryFromRow(row: Row): LogEntry {
  const deleted = Number(row.deleted) === 1;
  return {
    kv: {
      key: row.k as Buffer,
      value: row.v as Buffer,
      create_revision: Number(row.create_revision),
      mod_revision: Number(row.revision),
      version: Number(row.version),
      lease: String(row.lease),
    },
    sub: Number(row.sub),
    deleted,
    prev_revision: Number(row.prev_revision),
  };
}

export class SqlDriver implements Driver, ReadLeaseStore {
  readonly kind: string;
  clusterId = '';
  /** Keeps this instance's writes out while another instance holds the read lease. */
  readonly fence = new LeaseFence();
  readonly tokens: TokenStore;
  /** Set by stopping() and close(): long work (compaction) stops between its steps. */
  private closing = false;
  /** Names this process's commits in their announcements (commitNotice). */
  private readonly origin = randomBytes(6).toString('hex');
  /** The newest revision this process announced, and since when one of its announcements is unheard (null: none). */
  private announced = 0;
  private unheardSince: number | null = null;
  /** Whether other instances serve this store (othersServing): only then do announcements carry entries. */
  private others = false;

  constructor(
    private readonly client: SqlClient,
    private readonly dialect: Dialect,
  ) {
    this.kind = dialect.name;
    this.tokens = new SqlTokens(client, dialect);
  }

  get maxKeyBytes(): number {
    return this.dialect.maxKeyBytes;
  }

  async open(): Promise<void> {
    await this.migrate();
    const [meta] = await this.client.all('SELECT cluster_id FROM etcd_meta WHERE id = 1');
    this.clusterId = String(meta.cluster_id);
  }

  private async migrate(): Promise<void> {
    // Instances starting together take turns (a database lock held on one connection, where there are several).
    if (this.client.exclusive) return this.client.exclusive((ex) => this.migrateOn(ex));
    await this.migrateOn(this.client);
  }

  private async migrateOn(ex: SqlExecutor): Promise<void> {
    const { dialect } = this;
    // Version 1 creates the tables idempotently; instances starting together may both run it.
    for (const sql of dialect.migrations[0]) await ex.run(sql, [], UNBOUNDED);
    const clusterId = (randomBytes(8).readBigUInt64BE() & 0x7fff_ffff_ffff_ffffn).toString();
    await ex.run(dialect.insertMeta, [clusterId]);
    const [meta] = await ex.all('SELECT schema_version FROM etcd_meta WHERE id = 1');
    // Later versions, each once, in order.
    for (let v = Number(meta.schema_version); v < dialect.migrations.length; v++) {
      for (const sql of dialect.migrations[v]) await ex.run(sql, [], UNBOUNDED);
      await ex.run('UPDATE etcd_meta SET schema_version = ? WHERE id = 1', [v + 1]);
    }
  }

  /** Calls `listener` as other instances' commits are announced (with what they committed, when carried), where the database announces them. */
  onCommitElsewhere(listener: (commit?: AnnouncedCommit) => void): void {
    this.client.listen?.((payload) => {
      if (payload === null) {
        // (re)connected: what was announced before it could not be heard here
        this.unheardSince = null;
        return listener();
      }
      // this process's own commits are known here already (waking for them would read the database
      // for nothing); hearing them shows that announcements get through. Their entries are not decoded.
      const notice = decodeNotice(payload, this.origin);
      if (!notice) return;
      if (notice.origin === this.origin) return this.heard(notice.revision);
      listener(notice.commit);
    });
  }

  /**
   * Announcements can be lost without an error: behind PgBouncer in transaction mode, LISTEN
   * succeeds and nothing is ever delivered. This process hears its own announcements when they
   * get through; one unheard for ANNOUNCEMENT_HEARD_WITHIN_MS means they do not (or the listening
   * connection is down), and the server then wakes the other instances itself.
   */
  announcesCommits(): boolean {
    if (!this.dialect.commitNotice || !this.client.listen) return false;
    return this.unheardSince === null || performance.now() - this.unheardSince < ANNOUNCEMENT_HEARD_WITHIN_MS;
  }

  private announcedOne(revision: number): void {
    this.announced = Math.max(this.announced, revision);
    this.unheardSince ??= performance.now();
  }

  private heard(revision: number): void {
    // any of ours heard: they get through; the clock restarts for those still on their way
    this.unheardSince = revision >= this.announced ? null : performance.now();
  }

  othersServing(yes: boolean): void {
    this.others = yes;
  }

  /** Why the database is failing right now (its last answer was a fault or came too late), or null. */
  failing(): string | null {
    return this.client.failing();
  }

  stopping(): void {
    this.closing = true;
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.client.close();
  }

  /** One statement, no transaction: what a ReadIndex needs. */
  async revisions(): Promise<{ revision: number; compactRevision: number }> {
    const [meta] = await this.client.all(this.dialect.beginRead);
    return { revision: Number(meta.revision), compactRevision: Number(meta.compact_revision) };
  }

  read<T>(fn: (view: ReadView) => Promise<T>): Promise<T> {
    return this.client.snapshot({ sql: this.dialect.beginRead, params: [] }, (tx, meta) => fn(this.view(tx, meta)));
  }

  private view(tx: SqlExecutor, meta: Row): ReadView {
    const revision = Number(meta.revision);
    const compactRevision = Number(meta.compact_revision);
    return { revision, compactRevision, range: (q) => this.range(tx, q, revision) };
  }

  private async range(tx: SqlExecutor, q: RangeQuery, current: number): Promise<RangeResult> {
    const w = where(q);
    if (q.revision >= current) {
      if (q.countOnly) {
        const [row] = await tx.all(`SELECT COUNT(*) AS n FROM etcd_kv WHERE ${w.sql}`, w.params);
        return { kvs: [], count: Number(row.n) };
      }
      const value = q.keysOnly ? `${this.dialect.emptyBytes} AS v` : 'v';
      const limit = q.limit > 0 ? ` LIMIT ${q.limit}` : '';
      const rows = await tx.all(
        `SELECT k, ${value}, create_revision, mod_revision, version, lease, COUNT(*) OVER () AS n FROM etcd_kv WHERE ${w.sql} ORDER BY k${limit}`,
        w.params,
      );
      return { kvs: rows.map(kvFromRow), count: rows.length > 0 ? Number(rows[0].n) : 0 };
    }
    // History: each key's last version at or below the revision, when it is not a deletion.
    const h = where(q, 'l.k');
    const value = q.keysOnly || q.countOnly ? `${this.dialect.emptyBytes} AS v` : 'l.v';
    const limit = q.limit > 0 && !q.countOnly ? ` LIMIT ${q.limit}` : '';
    if (this.dialect.historyRange) {
      const rows = await tx.all(this.dialect.historyRange(value, h.sql, limit), [...h.params, q.revision]);
      return { kvs: q.countOnly ? [] : rows.map(kvFromRow), count: rows.length > 0 ? Number(rows[0].n) : 0 };
    }
    const rows = await tx.all(
      `SELECT l.k, ${value}, l.create_revision, l.revision AS mod_revision, l.version, l.lease, COUNT(*) OVER () AS n
       FROM etcd_log l
       WHERE ${h.sql} AND l.revision <= ? AND l.deleted = 0
         AND NOT EXISTS (SELECT 1 FROM etcd_log x WHERE x.k = l.k AND x.revision <= ?
                         AND (x.revision > l.revision OR (x.revision = l.revision AND x.sub > l.sub)))
       ORDER BY l.k${limit}`,
      [...h.params, q.revision, q.revision],
    );
    return { kvs: q.countOnly ? [] : rows.map(kvFromRow), count: rows.length > 0 ? Number(rows[0].n) : 0 };
  }

  async write<T>(fn: (tx: WriteTxn) => Promise<T>, opts?: WriteOptions): Promise<T> {
    const started = performance.now();
    const deadline = opts?.deadline;
    for (let attempt = 1; ; attempt++) {
      let announcing = 0;
      try {
        const value = await this.client.transaction({ sql: this.dialect.beginWrite, params: [] }, async (tx, locked) => {
          const lease = this.fence.check(leaseRow(locked));
          if (lease === 'wait') throw new LeaseHeld(String(locked.lease_holder));
          const staged: WriteSet[] = [];
          let compactTo: number | null = null;
          const view = this.view(tx, locked);
          const txn: WriteTxn = {
            ...view,
            getMany: (keys) => this.getMany(tx, keys),
            now: () => this.nowOn(tx),
            getLease: (id) => this.leaseOn(tx, id),
            keysWithLease: async (id) => (await tx.all(`SELECT ${KV_SELECT} FROM etcd_kv WHERE lease = ? ORDER BY k`, [id])).map(kvFromRow),
            getDoc: (name) => this.docOn(tx, name),
            apply: async (ws) => void staged.push(ws),
            setCompactRevision: async (rev) => void (compactTo = rev),
          };
          const value = await fn(txn);
          announcing = this.dialect.commitNotice ? staged.reduce((r, ws) => Math.max(r, ws.revision), 0) : 0;
          const commit = this.commitStatements(staged, compactTo, view.revision);
          // Nobody renewed it for its whole length: its holder has stopped serving from it.
          if (lease === 'clear') commit.unshift({ sql: RELEASE_LEASE, params: [] });
          return { value, commit };
        }, deadline);
        if (announcing > 0) this.announcedOne(announcing);
        return value;
      } catch (err) {
        if (deadline !== undefined && performance.now() >= deadline && (err instanceof LeaseHeld || err instanceof RetryableError)) throw new StorageTimeoutError('a write');
        if (err instanceof LeaseHeld) {
          if (performance.now() - started > LEASE_WAIT_LIMIT_MS) throw new StorageUnavailableError(err);
          this.fence.waits++;
          // Ask the holder to give it up (it stops renewing), then look again.
          await this.client.run('UPDATE etcd_read_lease SET revoked = 1 WHERE id = 1 AND holder = ?', [err.holder]);
          await new Promise((r) => setTimeout(r, LEASE_RECHECK_MS));
          attempt--;
          continue;
        }
        if (!(err instanceof RetryableError) || attempt >= WRITE_ATTEMPTS) throw err;
        await new Promise((r) => setTimeout(r, Math.random() * 10 * attempt));
      }
    }
  }

  /**
   * Takes (when `take`) or renews the read lease for `holder`, under the
   * revision lock: a write that committed before is in the revision returned,
   * and none can commit after until the lease is gone. Null: not ours (held
   * by another instance, or revoked by a waiting writer: then given up).
   */
  leaseRenew(holder: string, ms: number, take: boolean): Promise<LeaseGrant | null> {
    this.fence.self = holder;
    return this.client.transaction({ sql: this.dialect.beginWrite, params: [] }, async (_tx, locked) => {
      const row = leaseRow(locked);
      const grant = { revision: Number(locked.revision), compactRevision: Number(locked.compact_revision) };
      if (row.holder === holder && Number(locked.lease_revoked) === 0) {
        return { value: grant, commit: [{ sql: 'UPDATE etcd_read_lease SET seq = seq + 1, ms = ? WHERE id = 1', params: [ms] }] };
      }
      if (row.holder === holder) return { value: null, commit: [{ sql: RELEASE_LEASE, params: [] }] };
      if (row.holder === null && take) {
        return { value: grant, commit: [{ sql: 'UPDATE etcd_read_lease SET holder = ?, seq = seq + 1, ms = ?, revoked = 0 WHERE id = 1', params: [holder, ms] }] };
      }
      return { value: null, commit: [] };
    });
  }

  /** Who holds the read lease now (its holder id), if anyone. */
  async leaseHolder(): Promise<string | null> {
    const [row] = await this.client.all('SELECT holder FROM etcd_read_lease WHERE id = 1');
    return row.holder === null || row.holder === undefined ? null : String(row.holder);
  }

  /** Gives the read lease up (call only once no read is served from it). */
  async leaseRelease(holder: string): Promise<void> {
    await this.client.run(`${RELEASE_LEASE} AND holder = ?`, [holder]);
  }

  private async getMany(tx: SqlExecutor, keys: Buffer[]): Promise<(KeyValue | null)[]> {
    const found = new Map<string, KeyValue>();
    for (let i = 0; i < keys.length; i += 500) {
      const chunk = keys.slice(i, i + 500);
      const rows = await tx.all(`SELECT ${KV_SELECT} FROM etcd_kv WHERE k IN (${chunk.map(() => '?').join(', ')})`, chunk);
      for (const row of rows) found.set((row.k as Buffer).toString('latin1'), kvFromRow(row));
    }
    return keys.map((k) => found.get(k.toString('latin1')) ?? null);
  }

  /** The statements that make a batch's changes durable, sized to the database's limits. */
  private commitStatements(staged: WriteSet[], compactTo: number | null, base: number): Statement[] {
    const out: Statement[] = [];
    const logRows: unknown[][] = [];
    const kvRows: unknown[][] = [];
    const deletes: Buffer[] = [];
    const leasePuts = new Map<string, LeaseRecord>();
    const leaseDeletes = new Set<string>();
    const docs = new Map<string, SharedDoc>();
    let revision = 0;
    for (const ws of staged) {
      for (const l of ws.leasePuts) {
        leasePuts.set(l.id, l);
        leaseDeletes.delete(l.id);
      }
      for (const id of ws.leaseDeletes) {
        leasePuts.delete(id);
        leaseDeletes.add(id);
      }
      for (const d of ws.docs) docs.set(d.name, d.doc);
      for (const e of ws.entries) {
        const kv = e.kv;
        logRows.push([kv.mod_revision, e.sub, kv.key, kv.value, kv.create_revision, kv.version, kv.lease, e.deleted ? 1 : 0, e.prev_revision]);
      }
      for (const kv of ws.puts) kvRows.push([kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease]);
      deletes.push(...ws.deletes);
      revision = Math.max(revision, ws.revision);
    }
    this.chunked(logRows, 9, (rows) => out.push({ sql: `INSERT INTO etcd_log (${LOG_COLUMNS}) VALUES ${placeholders(9, rows.length)}`, params: rows.flat() }));
    const kvColumns = ['k', 'v', 'create_revision', 'mod_revision', 'version', 'lease'];
    this.chunked(kvRows, 6, (rows) => out.push({ sql: this.dialect.upsert('etcd_kv', kvColumns, 'k', placeholders(6, rows.length)), params: rows.flat() }));
    const leaseRows = [...leasePuts.values()].map((l) => [l.id, l.ttl, l.expiresAt]);
    this.chunked(leaseRows, 3, (rows) => out.push({ sql: this.dialect.upsert('etcd_leases', ['id', 'ttl', 'expires_at'], 'id', placeholders(3, rows.length)), params: rows.flat() }));
    this.chunked(
      [...leaseDeletes].map((id) => [id]),
      1,
      (rows) => out.push({ sql: `DELETE FROM etcd_leases WHERE id IN (${rows.map(() => '?').join(', ')})`, params: rows.flat() }),
    );
    for (const [name, doc] of docs) {
      out.push({ sql: this.dialect.upsert('etcd_docs', ['name', 'version', 'value'], 'name', '(?, ?, ?)'), params: [name, doc.version, Buffer.from(JSON.stringify(doc.value))] });
    }
    this.chunked(
      deletes.map((k) => [k]),
      1,
      (rows) => out.push({ sql: `DELETE FROM etcd_kv WHERE k IN (${rows.map(() => '?').join(', ')})`, params: rows.flat() }),
    );
    if (revision > 0) out.push({ sql: 'UPDATE etcd_meta SET revision = ? WHERE id = 1', params: [revision] });
    if (revision > 0 && this.dialect.commitNotice) {
      const entries = staged.flatMap((ws) => ws.entries);
      // alone on the store: nobody to read them; a compaction goes by the log (the others learn the
      // new compact revision from it, as before)
      const room = compactTo === null && this.others ? (this.dialect.maxNoticeBytes ?? 0) : 0;
      out.push(this.dialect.commitNotice(encodeNotice(this.origin, base, revision, entries, room)));
    }
    if (compactTo !== null) out.push({ sql: 'UPDATE etcd_meta SET compact_revision = ? WHERE id = 1', params: [compactTo] });
    return out;
  }

  /** Splits rows into statements under the parameter and size limits. */
  private chunked(rows: unknown[][], columns: number, emit: (rows: unknown[][]) => void): void {
    let chunk: unknown[][] = [];
    let bytes = 0;
    for (const row of rows) {
      const size = row.reduce<number>((n, v) => n + (Buffer.isBuffer(v) ? v.length * 2 + 4 : 24), 0);
      if (chunk.length > 0 && ((chunk.length + 1) * columns > this.dialect.maxParams || bytes + size > this.dialect.maxStatementBytes)) {
        emit(chunk);
        chunk = [];
        bytes = 0;
      }
      chunk.push(row);
      bytes += size;
    }
    if (chunk.length > 0) emit(chunk);
  }

  /**
   * One statement, so one snapshot: the meta row joined with the log rows
   * after `after` (none when nothing is new, which is what most polls find).
   */
  async readLog(after: number, maxRevisions: number, range?: KeyRange): Promise<LogRead> {
    const w = range ? where(range, 'l.k') : null;
    const rows = await this.client.all(
      `SELECT m.revision AS head, m.compact_revision AS compacted, ${LOG_SELECT.split(', ').map((c) => `l.${c}`).join(', ')}
       FROM etcd_meta m LEFT JOIN etcd_log l
         ON l.revision > ? AND l.revision <= ${this.dialect.least('m.revision', '?')}${w ? ` AND ${w.sql}` : ''}
       WHERE m.id = 1 ORDER BY l.revision, l.sub`,
      [after, after + maxRevisions, ...(w?.params ?? [])],
    );
    const revision = Number(rows[0].head);
    const compactRevision = Number(rows[0].compacted);
    const through = Math.max(after, Math.min(revision, after + maxRevisions));
    const entries = rows.filter((r) => r.revision !== null && r.revision !== undefined).map(entryFromRow);
    return { entries, through, revision, compactRevision };
  }

  /**
   * Pages in primary-key order. At or below the compact revision a row counts
   * when no later row of its key is there too (one index probe per row), so
   * rows that physical compaction has not reached yet are left out as well.
   */
  async *snapshotLog(revision: number, compactRevision: number): AsyncGenerator<LogEntry[]> {
    let [afterRev, afterSub] = [0, -1];
    // pages of about SNAPSHOT_PAGE_BYTES whatever the value sizes: the row limit follows the bytes
    let limit = 64;
    for (;;) {
      const rows = await this.client.all(
        `SELECT ${LOG_SELECT} FROM etcd_log l
         WHERE l.revision >= ? AND l.revision <= ? AND (l.revision > ? OR l.sub > ?)
           AND (l.revision > ? OR (l.deleted = 0 AND NOT EXISTS (
             SELECT 1 FROM etcd_log x WHERE x.k = l.k AND x.revision <= ? AND (x.revision > l.revision OR (x.revision = l.revision AND x.sub > l.sub)))))
         ORDER BY l.revision, l.sub LIMIT ${limit}`,
        [afterRev, revision, afterRev, afterSub, compactRevision, compactRevision],
        UNBOUNDED,
      );
      if (rows.length === 0) return;
      const entries = rows.map(entryFromRow);
      const bytes = entries.reduce((n, e) => n + e.kv.key.length + e.kv.value.length, 0);
      yield entries;
      const last = rows[rows.length - 1];
      [afterRev, afterSub] = [Number(last.revision), Number(last.sub)];
      if (rows.length < limit) return;
      limit = bytes > SNAPSHOT_PAGE_BYTES ? Math.max(1, limit >> 1) : bytes < SNAPSHOT_PAGE_BYTES / 4 ? Math.min(SNAPSHOT_MAX_ROWS, limit * 2) : limit;
    }
  }

  async getVersions(refs: KvRef[]): Promise<(KeyValue | null)[]> {
    const found = new Map<string, KeyValue>();
    const id = (k: Buffer, rev: number) => `${rev}:${k.toString('latin1')}`;
    for (let i = 0; i < refs.length; i += 400) {
      const chunk = refs.slice(i, i + 400);
      const rows = await this.client.all(
        `SELECT k, v, create_revision, revision AS mod_revision, version, lease FROM etcd_log
         WHERE deleted = 0 AND (k, revision) IN (${chunk.map(() => '(?, ?)').join(', ')})`,
        chunk.flatMap((r) => [r.key, r.revision]),
      );
      for (const row of rows) found.set(id(row.k as Buffer, Number(row.mod_revision)), kvFromRow(row));
    }
    return refs.map((r) => found.get(id(r.key, r.revision)) ?? null);
  }

  /**
   * Physical compaction up to `revision`, in short transactions of at most
   * COMPACT_BATCH log rows each, taken in log order after the saved progress
   * (etcd_compaction: the last (revision, sub) done). Each row names what it
   * makes unneeded: the key's previous version (prev_revision), superseded by
   * this row at or below `revision`, and the row itself when it is a
   * deletion. So a batch costs index lookups in proportion to its rows, never
   * a search through a key's other versions, and writers (who take the
   * revision lock, not the progress row) go on between and during batches.
   * Concurrent compactors (other instances) queue on the progress row and
   * skip what is done; a closing driver stops between batches.
   */
  async compact(revision: number): Promise<number> {
    let removed = 0;
    for (;;) {
      if (this.closing) return removed;
      const step = await this.compactBatch(revision);
      removed += step.removed;
      if (step.done) break;
    }
    for (const sql of this.dialect.reclaim) {
      if (this.closing) return removed;
      await this.client.run(sql, [], UNBOUNDED);
    }
    return removed;
  }

  /** One step; `removed` counts the versions it deleted (a version already gone counts too). */
  private compactBatch(target: number): Promise<{ done: boolean; removed: number }> {
    return this.client.transaction({ sql: this.dialect.beginCompaction, params: [] }, async (tx, progress) => {
      const fromRev = Number(progress.compacted_to);
      const fromSub = Number(progress.compacted_sub);
      if (fromRev > target || (fromRev === target && fromSub >= WHOLE_REVISION)) return { value: { done: true, removed: 0 }, commit: [] };
      const rows = await tx.all(
        `SELECT revision, sub, k, deleted, prev_revision FROM etcd_log
         WHERE revision >= ? AND revision <= ? AND (revision > ? OR sub > ?) ORDER BY revision, sub LIMIT ${COMPACT_BATCH}`,
        [fromRev, target, fromRev, fromSub],
      );
      const done = rows.length < COMPACT_BATCH;
      const tombstones: unknown[][] = [];
      const superseded: unknown[][] = [];
      const commit: Statement[] = [];
      for (const r of rows) {
        const rev = Number(r.revision);
        const prev = Number(r.prev_revision);
        if (Number(r.deleted) === 1) tombstones.push([rev, Number(r.sub)]);
        if (prev <= 0) continue;
        if (prev < rev) superseded.push([r.k, prev]);
        // the same key earlier in the same revision (not made by etcd's txns, but cheap to get right)
        else commit.push({ sql: 'DELETE FROM etcd_log WHERE k = ? AND revision = ? AND sub < ?', params: [r.k, rev, Number(r.sub)] });
      }
      this.chunked(superseded, 2, (chunk) => commit.push({ sql: `DELETE FROM etcd_log WHERE (k, revision) IN (${chunk.map(() => '(?, ?)').join(', ')})`, params: chunk.flat() }));
      this.chunked(tombstones, 2, (chunk) => commit.push({ sql: `DELETE FROM etcd_log WHERE (revision, sub) IN (${chunk.map(() => '(?, ?)').join(', ')})`, params: chunk.flat() }));
      const last = rows[rows.length - 1];
      const [toRev, toSub] = done ? [target, WHOLE_REVISION] : [Number(last.revision), Number(last.sub)];
      commit.push({ sql: 'UPDATE etcd_compaction SET compacted_to = ?, compacted_sub = ? WHERE id = 1', params: [toRev, toSub] });
      return { value: { done, removed: superseded.length + tombstones.length }, commit };
    });
  }

  private async nowOn(ex: SqlExecutor): Promise<number> {
    const [row] = await ex.all(`SELECT ${this.dialect.nowMs} AS now`);
    return Number(row.now);
  }

  private async leaseOn(ex: SqlExecutor, id: string): Promise<LeaseRecord | null> {
    const [row] = await ex.all('SELECT id, ttl, expires_at FROM etcd_leases WHERE id = ?', [id]);
    return row ? leaseFromRow(row) : null;
  }

  private async docOn(ex: SqlExecutor, name: string): Promise<SharedDoc | null> {
    const [row] = await ex.all('SELECT version, value FROM etcd_docs WHERE name = ?', [name]);
    return row ? { version: Number(row.version), value: JSON.parse((row.value as Buffer).toString()) } : null;
  }

  now(): Promise<number> {
    return this.nowOn(this.client);
  }

  async listLeases(): Promise<LeaseRecord[]> {
    return (await this.client.all('SELECT id, ttl, expires_at FROM etcd_leases ORDER BY id')).map(leaseFromRow);
  }

  getLease(id: string): Promise<LeaseRecord | null> {
    return this.leaseOn(this.client, id);
  }

  async keysWithLease(id: string): Promise<Buffer[]> {
    return (await this.client.all('SELECT k FROM etcd_kv WHERE lease = ? ORDER BY k', [id])).map((r) => r.k as Buffer);
  }

  getDoc(name: string): Promise<SharedDoc | null> {
    return this.docOn(this.client, name);
  }

  async heartbeat(m: Omit<MemberRecord, 'heartbeatAt'>): Promise<void> {
    const sql = this.dialect.upsert('etcd_members', ['id', 'name', 'client_urls', 'peer_urls', 'heartbeat_at'], 'id', `(?, ?, ?, ?, ${this.dialect.nowMs})`);
    await this.client.run(sql, [m.id, m.name, JSON.stringify(m.clientUrls), JSON.stringify(m.peerUrls)]);
  }

  async members(withinMs: number): Promise<MemberRecord[]> {
    const rows = await this.client.all(`SELECT id, name, client_urls, peer_urls, heartbeat_at FROM etcd_members WHERE heartbeat_at >= ${this.dialect.nowMs} - ? ORDER BY id`, [withinMs]);
    return rows.map((r) => ({
      id: String(r.id),
      name: String(r.name),
      clientUrls: JSON.parse(String(r.client_urls)) as string[],
      peerUrls: JSON.parse(String(r.peer_urls)) as string[],
      heartbeatAt: Number(r.heartbeat_at),
    }));
  }

  async stats(): Promise<DriverStats> {
    const [row] = await this.client.all(this.dialect.statsQuery);
    const size = Number(row?.size ?? 0);
    return { dbSize: size, dbSizeInUse: size - Number(row?.free ?? 0) };
  }

  async defragment(): Promise<void> {
    for (const sql of this.dialect.defragment) await this.client.run(sql, [], UNBOUNDED);
  }
}
