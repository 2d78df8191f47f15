// Loads an etcd snapshot (what `etcdctl snapshot save` writes, or one of
// ours) into an empty store: every version in its key bucket at its own
// revision, the compact revision, leases, users and roles. The file is
// checked whole before anything is written - its SHA-256 trailer, then every
// page and every record decoded - so a damaged snapshot loads nothing. The
// history goes in whole revisions, a few thousand versions per write
// transaction, each version naming the one it replaces (as mvcc's own writes
// do), so watches, prev_kv and later compactions work on it as on any other.
import { open, stat } from 'node:fs/promises';
import { authDocOf, AUTH_DOC, type AuthData } from '../mvcc/auth-store';
import type { Driver, LeaseRecord, WriteSet } from '../mvcc/driver';
import { keyString } from '../mvcc/key-range';
import { tombstone, type KeyValue, type LogEntry } from '../mvcc/kv';
import { BoltReader, SnapshotError } from './bbolt-reader';
import { AUTH_KEYS, BUCKETS, decode, fileSha256, KeyValueType, LeaseType, META_KEYS, parseRevisionKey, RoleType, SHA256_BYTES, UserType } from './etcd-schema';

export { SnapshotError } from './bbolt-reader';

export interface ImportOptions {
  /** Load a file without the SHA-256 trailer (a db file copied out of a data directory), as etcdctl's --skip-hash-check. */
  skipHashCheck?: boolean;
  /** Leases never expire here until told otherwise (a migration: the source still decides). */
  holdLeases?: boolean;
}

export interface ImportResult {
  revision: number;
  compactRevision: number;
  versions: number;
  leases: number;
  users: number;
  roles: number;
}

/** Expiry of a lease that another etcd still decides about (far in the future, a safe integer). */
export const HELD_LEASE_EXPIRY = 8_640_000_000_000_000;
/** Versions per write transaction (whole revisions: a batch ends only between two). */
const BATCH_VERSIONS = 2000;

interface Contents {
  reader: BoltReader;
  key: Buffer;
  revision: number;
  compactRevision: number;
  versions: number;
  leases: { id: string; ttl: number }[];
  auth: AuthData;
}

export async function importSnapshot(driver: Driver, file: string, opts: ImportOptions = {}): Promise<ImportResult> {
  const length = await checkHash(file, opts.skipHashCheck ?? false);
  await checkEmpty(driver);
  const c = await readContents(file, length);
  try {
    await load(driver, c, opts.holdLeases ?? false);
  } finally {
    await c.reader.close();
  }
  return { revision: c.revision, compactRevision: c.compactRevision, versions: c.versions, leases: c.leases.length, users: c.auth.users.length, roles: c.auth.roles.length };
}

/** etcd's rule: a snapshot of n pages plus 32 bytes has a hash; returns the bytes of the database proper. */
async function checkHash(file: string, skip: boolean): Promise<number> {
  const size = await stat(file).then(
    (st) => st.size,
    (err: NodeJS.ErrnoException) => {
      throw new SnapshotError(`cannot read the snapshot ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
    },
  );
  const hasHash = size % 512 === SHA256_BYTES;
  if (!hasHash) {
    if (skip) return size;
    throw new SnapshotError(`${file} has no SHA-256 trailer (${size} bytes; a snapshot is whole pages plus 32): it is cut short, or a database file copied out of a data directory (load that with --skip-hash-check)`);
  }
  const length = size - SHA256_BYTES;
  if (skip) return length;
  const saved = Buffer.alloc(SHA256_BYTES);
  const handle = await open(file, 'r');
  try {
    await handle.read(saved, 0, SHA256_BYTES, length);
  } finally {
    await handle.close();
  }
  if (!(await fileSha256(file, length)).equals(saved)) throw new SnapshotError(`${file} is damaged: its SHA-256 does not match the hash saved with it`);
  return length;
}

async function checkEmpty(driver: Driver): Promise<void> {
  const revision = await driver.read(async (v) => v.revision);
  const leases = await driver.listLeases();
  const auth = await driver.getDoc(AUTH_DOC);
  if (revision > 1 || leases.length > 0 || auth) {
    throw new SnapshotError(`the target store is not empty (revision ${revision}, ${leases.length} leases${auth ? ', auth set up' : ''}): a snapshot loads only into a new store`);
  }
}

/** Decodes everything once without writing: any damage is found before the store is touched. */
async function readContents(file: string, length: number): Promise<Contents> {
  const reader = await BoltReader.open(file, length);
  try {
    const buckets = await reader.buckets();
    const need = (name: string) => {
      const b = buckets.get(name);
      if (!b) throw new SnapshotError(`not an etcd snapshot: it has no "${name}" bucket`);
      return b;
    };
    const key = need(BUCKETS.key);
    let compactRevision = -1;
    for await (const e of reader.entries(need(BUCKETS.meta))) {
      if (e.key.equals(META_KEYS.finishedCompact) || e.key.equals(META_KEYS.scheduledCompact)) {
        // an unfinished compaction (scheduled past finished) is finished here
        const rev = parseRevisionKey(e.value);
        if (!rev) throw new SnapshotError(`meta ${e.key.toString()} is not a revision`);
        compactRevision = Math.max(compactRevision, rev.main);
      }
    }
    let revision = 1;
    let versions = 0;
    for await (const e of reader.entries(key)) {
      const rev = parseRevisionKey(e.key);
      if (!rev) throw new SnapshotError(`a key bucket entry is not a revision key (${e.key.toString('hex')})`);
      versionFrom(rev, e.value);
      revision = rev.main;
      versions++;
    }
    const leases: { id: string; ttl: number }[] = [];
    if (buckets.has(BUCKETS.lease)) {
      for await (const e of reader.entries(buckets.get(BUCKETS.lease)!)) {
        const l = decodeOrFail(LeaseType, e.value, 'a lease');
        const ttl = Number(l.RemainingTTL) > 0 ? Number(l.RemainingTTL) : Number(l.TTL);
        leases.push({ id: String(l.ID), ttl });
      }
    }
    const auth = await readAuth(reader, buckets);
    return { reader, key, revision: Math.max(revision, compactRevision), compactRevision, versions, leases, auth };
  } catch (err) {
    await reader.close();
    throw err;
  }
}

function decodeOrFail(type: typeof KeyValueType, bytes: Buffer, what: string): Record<string, unknown> {
  try {
    return decode(type, bytes);
  } catch (err) {
    throw new SnapshotError(`${what} cannot be decoded: ${(err as Error).message}`);
  }
}

function versionFrom(rev: { main: number; sub: number; tombstone: boolean }, value: Buffer): LogEntry {
  const kv = decodeOrFail(KeyValueType, value, `the version at revision ${rev.main}`);
  if ((kv.key as Buffer).length === 0) throw new SnapshotError(`the version at revision ${rev.main} has no key`);
  return logEntryOf(kv, rev.main, rev.sub, rev.tombstone);
}

/**
 * A version as etcd hands it out (a decoded mvccpb.KeyValue, int64 fields as
 * strings or numbers: a snapshot's or a watch event's), at its revision and
 * place in it; a deletion keeps only the key. prev_revision is filled in by
 * historyBatch.
 */
export function logEntryOf(kv: Record<string, unknown>, revision: number, sub: number, deleted: boolean): LogEntry {
  const key = kv.key as Buffer;
  return {
    kv: deleted ? tombstone(key, revision) : { key, value: kv.value as Buffer, create_revision: Number(kv.create_revision), mod_revision: revision, version: Number(kv.version), lease: String(kv.lease) },
    sub,
    deleted,
    prev_revision: 0,
  };
}

async function readAuth(reader: BoltReader, buckets: Map<string, Buffer>): Promise<AuthData> {
  const data: AuthData = { enabled: false, revision: 1, users: [], roles: [] };
  const each = async function* (name: string) {
    const b = buckets.get(name);
    if (b) yield* reader.entries(b);
  };
  for await (const e of each(BUCKETS.auth)) {
    if (e.key.equals(AUTH_KEYS.enabled)) data.enabled = e.value.length === 1 && e.value[0] === 1;
    else if (e.key.equals(AUTH_KEYS.revision) && e.value.length === 8) data.revision = Number(e.value.readBigUInt64BE());
  }
  for await (const e of each(BUCKETS.authUsers)) {
    const u = decodeOrFail(UserType, e.value, 'a user');
    const options = (u.options as { no_password?: boolean } | null) ?? {};
    data.users.push({ name: (u.name as Buffer).toString(), password: (u.password as Buffer).toString(), noPassword: options.no_password === true, roles: u.roles as string[] });
  }
  for await (const e of each(BUCKETS.authRoles)) {
    const r = decodeOrFail(RoleType, e.value, 'a role');
    const perms = (r.keyPermission as { permType: number; key: Buffer; range_end: Buffer }[]).map((p) => ({ permType: p.permType, key: p.key, range_end: p.range_end }));
    data.roles.push({ name: (r.name as Buffer).toString(), perms });
  }
  return data;
}

/** Writes the checked contents: history in batches of whole revisions, then leases, auth and the compact revision. */
async function load(driver: Driver, c: Contents, holdLeases: boolean): Promise<void> {
  let batch: LogEntry[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const entries = batch;
    batch = [];
    await driver.write(async (tx) => tx.apply(await historyBatch(tx, entries)));
  };
  for await (const e of c.reader.entries(c.key)) {
    const v = versionFrom(parseRevisionKey(e.key)!, e.value);
    if (batch.length >= BATCH_VERSIONS && batch[batch.length - 1].kv.mod_revision !== v.kv.mod_revision) await flush();
    batch.push(v);
  }
  await flush();
  await driver.write(async (tx) => {
    const now = await tx.now();
    const leasePuts: LeaseRecord[] = c.leases.map((l) => ({ id: l.id, ttl: l.ttl, expiresAt: holdLeases ? HELD_LEASE_EXPIRY : now + l.ttl * 1000 }));
    await tx.apply({ leasePuts, leaseDeletes: [], docs: [{ name: AUTH_DOC, doc: authDocOf(c.auth) }], entries: [], puts: [], deletes: [], revision: c.revision });
    if (c.compactRevision > 0) await tx.setCompactRevision(c.compactRevision);
  });
  // give back what the snapshot still held below its compact revision (an unfinished compaction)
  if (c.compactRevision > 0) await driver.compact(c.compactRevision);
}

/**
 * The write set of a run of versions: each names the version it replaces
 * (the key's live one before it, from the store or earlier in the run), and
 * the keys' states after the run are what the store must now hold.
 */
export async function historyBatch(tx: { getMany(keys: Buffer[]): Promise<(KeyValue | null)[]> }, entries: LogEntry[]): Promise<WriteSet> {
  const keys = new Map<string, Buffer>();
  for (const e of entries) keys.set(keyString(e.kv.key), e.kv.key);
  const before = await tx.getMany([...keys.values()]);
  const live = new Map<string, KeyValue | null>();
  const wasLive = new Set<string>();
  [...keys.keys()].forEach((ks, i) => {
    live.set(ks, before[i]);
    if (before[i]) wasLive.add(ks);
  });
  for (const e of entries) {
    const ks = keyString(e.kv.key);
    const prev = live.get(ks);
    e.prev_revision = prev ? prev.mod_revision : 0;
    live.set(ks, e.deleted ? null : e.kv);
  }
  const puts: KeyValue[] = [];
  const deletes: Buffer[] = [];
  for (const [ks, kv] of live) {
    if (kv) puts.push(kv);
    else if (wasLive.has(ks)) deletes.push(keys.get(ks)!);
  }
  return { leasePuts: [], leaseDeletes: [], docs: [], entries, puts, deletes, revision: entries[entries.length - 1].kv.mod_revision };
}
