// The storage contract, declared here by its user. A driver stores and reads;
// it never decides what a request means: mvcc evaluates every txn, assigns
// every revision and hands the driver finished changes to persist.
//
// A driver keeps three things:
//   - the revision log: every put and deletion of every key (LogEntry), many
//     per revision, kept until compaction;
//   - the current view: the live kv of every key, so that reads at the latest
//     revision never scan history;
//   - the store meta: current revision (1 on an empty store) and compact
//     revision (-1 until the first compaction).
// Leases and auth data live in the same database (see lease/auth contracts).
import type { KeyValue, LogEntry } from './kv';
import type { KeyRange } from './key-range';

export interface RangeQuery extends KeyRange {
  /** Read the state at this revision: compactRevision <= revision <= view.revision. */
  revision: number;
  /** Return at most this many kvs, in ascending key order; 0 means all. */
  limit: number;
  /** The caller needs only `count`; kvs may come back empty. */
  countOnly: boolean;
  /** The caller drops values; a driver may return them empty. */
  keysOnly: boolean;
}

export interface RangeResult {
  /** Live kvs in the range at the revision, ascending by key, cut at limit. */
  kvs: KeyValue[];
  /** All live keys in the range at the revision, regardless of limit. */
  count: number;
}

export interface WriteOptions {
  /** performance.now() by which the write must be done or given up (`request timed out`). */
  deadline?: number;
}

/** A consistent snapshot of the store. */
export interface ReadView {
  /** The store's current revision in this snapshot. */
  readonly revision: number;
  /** The compact revision in this snapshot (-1: never compacted). */
  readonly compactRevision: number;
  range(q: RangeQuery): Promise<RangeResult>;
}

/** A lease as stored: its granted TTL and its expiry on the store's clock. */
export interface LeaseRecord {
  /** int64 as a decimal string */
  id: string;
  /** granted TTL, seconds */
  ttl: number;
  /** milliseconds since the epoch, on the store's clock (the database's, for SQL) */
  expiresAt: number;
}

/**
 * A small document every instance shares (auth state, alarms), stored as
 * JSON. `version` goes up with every change, so instances notice cheaply.
 */
export interface SharedDoc {
  version: number;
  value: unknown;
}

/** An announced commit of ours not heard back by then means announcements are not getting through (announcesCommits). */
export const ANNOUNCEMENT_HEARD_WITHIN_MS = 1000;

/** An instance counts as alive with a heartbeat this recent (instances heartbeat every 2 s). */
export const MEMBER_ALIVE_MS = 10_000;

/** An instance serving this store, as it last said so. */
export interface MemberRecord {
  id: string;
  name: string;
  clientUrls: string[];
  peerUrls: string[];
  /** the store's clock, ms */
  heartbeatAt: number;
}

/** An auth token as stored: whose it is and how long it has gone unused. */
export interface TokenRecord {
  user: string;
  /** The user's password generation when the token was issued. */
  generation: string;
  /** The auth epoch (it changes when auth is enabled again) when the token was issued. */
  epoch: string;
  /** ms since the token was last used, on the store's clock. */
  idleMs: number;
}

/**
 * Auth tokens, shared by every instance on the store and kept by the SHA-256
 * of the token only: a reader of the store (or of a backup) learns no token.
 * Outside the revision log: tokens are not keys and bump no revision.
 */
export interface TokenStore {
  /** Record a new token, used now. */
  put(hash: Buffer, t: Omit<TokenRecord, 'idleMs'>): Promise<void>;
  get(hash: Buffer): Promise<TokenRecord | null>;
  /** Mark tokens as used now. */
  touch(hashes: Buffer[]): Promise<void>;
  /** Forget tokens unused for longer than idleMs (expired ones). */
  dropIdle(idleMs: number): Promise<void>;
}

/** Everything one write batch changed, computed by mvcc. */
export interface WriteSet {
  /** Leases created or changed (keepalive), and leases removed. */
  leasePuts: LeaseRecord[];
  leaseDeletes: string[];
  /** Shared documents replaced. */
  docs: { name: string; doc: SharedDoc }[];
  /** New log entries, ascending by (kv.mod_revision, sub). */
  entries: LogEntry[];
  /** Keys live after the batch, with their final kv. */
  puts: KeyValue[];
  /** Keys that were live before the batch and are not after it. */
  deletes: Buffer[];
  /** The store's revision after the batch. */
  revision: number;
}

/**
 * An exclusive write transaction: no other writer (in this process or, on
 * SQL, any instance) commits while it is open, so its reads stay true until
 * it commits. Reads see the state before this transaction's own changes.
 */
export interface WriteTxn extends ReadView {
  /** The live kv of each key (null when absent), at `revision`. */
  getMany(keys: Buffer[]): Promise<(KeyValue | null)[]>;
  /** The store's clock in ms (the database's, so that instances agree on lease expiry). */
  now(): Promise<number>;
  getLease(id: string): Promise<LeaseRecord | null>;
  /** The live kvs attached to a lease. */
  keysWithLease(id: string): Promise<KeyValue[]>;
  getDoc(name: string): Promise<SharedDoc | null>;
  /** Persist a batch's changes; they commit with the transaction. */
  apply(ws: WriteSet): Promise<void>;
  /** Record a new compact revision (mvcc has checked it). */
  setCompactRevision(revision: number): Promise<void>;
}

export interface LogRead {
  /** Entries of whole revisions in (after, through], ascending (filtered when asked). */
  entries: LogEntry[];
  /** The last revision this read covers; resume after it. */
  through: number;
  /** The store's current and compact revision at the read. */
  revision: number;
  compactRevision: number;
}

export interface KvRef {
  key: Buffer;
  /** mod_revision of the live version wanted. */
  revision: number;
}

/** Another instance's commit, as its announcement carried it. */
export interface AnnouncedCommit {
  /** The revision the commit was made on. */
  base: number;
  /** The revision it made (the store's revision after it). */
  through: number;
  /** Every log entry of (base, through], in log order. */
  entries: LogEntry[];
}

export interface DriverStats {
  /** Bytes the store occupies (file or memory). */
  dbSize: number;
  /** Bytes of that in use by live data and history. */
  dbSizeInUse: number;
}

export interface Driver {
  /** Short name for logs and status: "memory", "sqlite", "mysql", "tidb". */
  readonly kind: string;
  /** The cluster id stored with the data (shared by every instance on it); absent for memory. */
  readonly clusterId?: string;
  /** The longest key the store can hold; longer keys are refused. */
  readonly maxKeyBytes?: number;
  /** Connect, migrate the schema, load the meta. Throws a clear error when it cannot. */
  open(): Promise<void>;
  close(): Promise<void>;
  /**
   * Calls `listener` soon after any instance commits, where the store can tell (PostgreSQL's
   * NOTIFY), with what it committed when the announcement carried that; polling covers the rest.
   */
  onCommitElsewhere?(listener: (commit?: AnnouncedCommit) => void): void;
  /**
   * Whether this process's commits are being announced to the other instances by the store itself
   * right now (PostgreSQL's NOTIFY, checked by hearing its own). When not, instances wake each
   * other (src/server/peer-wake.ts). Absent: the store announces nothing. It turns false at most
   * ANNOUNCEMENT_HEARD_WITHIN_MS after an announcement that is not heard.
   */
  announcesCommits?(): boolean;
  /**
   * Whether other instances serve this store now (from the member heartbeats): announcements carry
   * a commit's entries only for them to read; alone, they would be sent for nobody.
   */
  othersServing?(yes: boolean): void;
  /** A shutdown begins: long work (physical compaction) stops at its next step; requests are still served until close(). */
  stopping?(): void;
  /**
   * Run fn against one consistent snapshot. By default the snapshot includes
   * every write committed before the call (linearizable); `serializable`
   * allows a slightly older one, as etcd's serializable reads.
   */
  read<T>(fn: (view: ReadView) => Promise<T>, opts?: { serializable?: boolean }): Promise<T>;
  /**
   * Run fn in an exclusive write transaction and commit when it returns; roll
   * back when it throws. A driver may run fn again after a transient conflict,
   * so fn must not have effects outside the transaction. Past the deadline
   * (performance.now() time) a driver gives up with StorageTimeoutError.
   */
  write<T>(fn: (tx: WriteTxn) => Promise<T>, opts?: WriteOptions): Promise<T>;
  /**
   * Read the log after revision `after`, at most `maxRevisions` whole
   * revisions, only entries inside `range` when given. Never returns a
   * revision while an earlier one could still appear.
   */
  readLog(after: number, maxRevisions: number, range?: KeyRange): Promise<LogRead>;
  /**
   * The versions a snapshot at `revision` holds, in (revision, sub) order and
   * in batches: every entry after `compactRevision` up to `revision`, and at or
   * below it each key's last version there unless that is a deletion (what
   * compaction keeps). A compaction running meanwhile may remove entries not
   * yet read: the caller checks the compact revision afterwards.
   */
  snapshotLog(revision: number, compactRevision: number): AsyncIterable<LogEntry[]>;
  /** Look up historical versions (for prev_kv of watch events); null where gone. */
  getVersions(refs: KvRef[]): Promise<(KeyValue | null)[]>;
  /**
   * Physically remove history that no read at or above `revision` needs: for
   * every key, all but its latest version at or below `revision`, and that one
   * too when it is a deletion. Runs in bounded batches. Returns how many
   * versions it removed (as best the store can tell).
   */
  compact(revision: number): Promise<number>;
  stats(): Promise<DriverStats>;
  /** The store's clock in ms. */
  now(): Promise<number>;
  /** Every lease (for Leases and the expiry scan). */
  listLeases(): Promise<LeaseRecord[]>;
  getLease(id: string): Promise<LeaseRecord | null>;
  /** The keys attached to a lease, at the latest revision. */
  keysWithLease(id: string): Promise<Buffer[]>;
  getDoc(name: string): Promise<SharedDoc | null>;
  /** Record that this instance is alive (its row, its heartbeat = the store's now). */
  heartbeat(member: Omit<MemberRecord, 'heartbeatAt'>): Promise<void>;
  /** Instances that sent a heartbeat within `withinMs`. */
  members(withinMs: number): Promise<MemberRecord[]>;
  /** The committed revision and compact revision, as cheaply as the store can tell them. */
  revisions?(): Promise<{ revision: number; compactRevision: number }>;
  /** Give unused space back to the system (etcd's Defragment). */
  defragment?(): Promise<void>;
  /** Why the storage is failing right now (its last answer was a fault, or none came in time), or null. */
  failing?(): string | null;
  /** Auth tokens (see TokenStore). */
  readonly tokens: TokenStore;
}
