// A snapshot of the store in etcd's backend format: what `etcdctl snapshot
// save` receives from etcd, and what `etcdctl snapshot restore` turns into a
// data directory a real etcd serves. The key bucket holds the history a read
// at or above the compact revision can still see (as etcd's own compaction
// leaves it), read at one revision while writers go on; the file is written
// to disk first (bbolt's meta pages, at the front, name the tree written
// after them), then streamed with its SHA-256 as etcd sends it.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { authDataOf, AUTH_DOC, isBcryptHash } from '../mvcc/auth-store';
import { MEMBER_ALIVE_MS, type Driver } from '../mvcc/driver';
import type { LogEntry } from '../mvcc/kv';
import { BoltWriter, type BoltEntry } from './bbolt-writer';
import {
  AUTH_KEYS,
  BUCKETS,
  CLUSTER_VERSION,
  CLUSTER_VERSION_KEY,
  encode,
  KeyValueType,
  leaseKey,
  LeaseType,
  META_KEYS,
  revisionKey,
  RoleType,
  u64be,
  UserType,
} from './etcd-schema';

export interface SnapshotInfo {
  /** The store revision the snapshot holds. */
  revision: number;
  /** Its compact revision (-1: never compacted). */
  compactRevision: number;
  /** Versions in its key bucket. */
  versions: number;
  /** Bytes of the bbolt file (without the hash). */
  size: number;
  /** Users whose password hash etcd cannot check (kept from before bcrypt): they need a new password there. */
  usersWithoutBcrypt: string[];
}

/** Tries before a snapshot gives up on compactions that keep moving under it. */
const ATTEMPTS = 3;

export class SnapshotRaceError extends Error {}

/** Writes the store as an etcd backend file at `file` (no hash trailer). */
export async function writeSnapshotFile(driver: Driver, file: string): Promise<SnapshotInfo> {
  for (let attempt = 1; ; attempt++) {
    const at = await driver.read(async (v) => ({ revision: v.revision, compactRevision: v.compactRevision }));
    const info = await writeAt(driver, file, at.revision, at.compactRevision);
    // A compaction that started meanwhile may have removed versions before they were read.
    const after = await driver.read(async (v) => v.compactRevision);
    if (after === at.compactRevision) return info;
    if (attempt === ATTEMPTS) throw new SnapshotRaceError(`etcd-adapter: the store was compacted ${ATTEMPTS} times while a snapshot was being taken; try again`);
  }
}

async function writeAt(driver: Driver, file: string, revision: number, compactRevision: number): Promise<SnapshotInfo> {
  const w = await BoltWriter.create(file);
  try {
    let versions = 0;
    await w.bucket(
      BUCKETS.key,
      (async function* () {
        for await (const batch of driver.snapshotLog(revision, compactRevision)) {
          for (const e of batch) {
            versions++;
            yield keyEntry(e);
          }
        }
      })(),
    );
    const meta: BoltEntry[] = [{ key: META_KEYS.consistentIndex, value: u64be(revision) }];
    if (compactRevision > 0) {
      meta.push({ key: META_KEYS.finishedCompact, value: revisionKey(compactRevision, 0) }, { key: META_KEYS.scheduledCompact, value: revisionKey(compactRevision, 0) });
    }
    await w.bucket(BUCKETS.meta, sorted(meta));

    const leases = await driver.listLeases();
    await w.bucket(BUCKETS.lease, sorted(leases.map((l) => ({ key: leaseKey(l.id), value: encode(LeaseType, { ID: l.id, TTL: l.ttl }) }))));

    const auth = authDataOf(await driver.getDoc(AUTH_DOC));
    await w.bucket(BUCKETS.auth, [
      { key: AUTH_KEYS.enabled, value: Buffer.from([auth.enabled ? 1 : 0]) },
      { key: AUTH_KEYS.revision, value: u64be(auth.revision) },
    ]);
    await w.bucket(
      BUCKETS.authUsers,
      auth.users.map((u) => ({
        key: Buffer.from(u.name),
        value: encode(UserType, { name: Buffer.from(u.name), password: Buffer.from(u.password), roles: u.roles, options: { no_password: u.noPassword } }),
      })),
    );
    await w.bucket(
      BUCKETS.authRoles,
      auth.roles.map((r) => ({ key: Buffer.from(r.name), value: encode(RoleType, { name: Buffer.from(r.name), keyPermission: r.perms }) })),
    );

    // As etcd records them; `etcdctl snapshot restore` replaces them with the new cluster's.
    const members = await driver.members(MEMBER_ALIVE_MS);
    await w.bucket(
      BUCKETS.members,
      sorted(
        members.map((m) => ({
          key: Buffer.from(BigInt(m.id).toString(16)),
          value: Buffer.from(JSON.stringify({ id: m.id, peerURLs: m.peerUrls, name: m.name, clientURLs: m.clientUrls }).replace(/"id":"(\d+)"/, '"id":$1')),
        })),
      ),
    );
    await w.bucket(BUCKETS.membersRemoved, []);
    await w.bucket(BUCKETS.cluster, [{ key: CLUSTER_VERSION_KEY, value: Buffer.from(CLUSTER_VERSION) }]);
    await w.bucket(BUCKETS.alarm, []);
    const size = await w.finish();
    return { revision, compactRevision, versions, size, usersWithoutBcrypt: auth.users.filter((u) => !u.noPassword && u.password && !isBcryptHash(u.password)).map((u) => u.name) };
  } catch (err) {
    await w.abort();
    throw err;
  }
}

function keyEntry(e: LogEntry): BoltEntry {
  const { kv } = e;
  const value = e.deleted
    ? encode(KeyValueType, { key: kv.key })
    : encode(KeyValueType, { key: kv.key, create_revision: kv.create_revision, mod_revision: kv.mod_revision, version: kv.version, value: kv.value, lease: kv.lease });
  return { key: revisionKey(kv.mod_revision, e.sub, e.deleted), value };
}

function sorted(entries: BoltEntry[]): BoltEntry[] {
  return entries.sort((a, b) => Buffer.compare(a.key, b.key));
}

/** Bytes per message of the Snapshot stream, as etcd sends them. */
export const SNAPSHOT_CHUNK = 32 * 1024;

/**
 * A snapshot file made for one stream: the caller reads it in chunks (the
 * last 32 bytes being the SHA-256 of the rest) and must call dispose().
 */
export interface SnapshotStream {
  info: SnapshotInfo;
  chunks(): AsyncGenerator<Buffer>;
  dispose(): Promise<void>;
}

export async function openSnapshotStream(driver: Driver): Promise<SnapshotStream> {
  const dir = await mkdtemp(path.join(tmpdir(), 'etcd-adapter-snapshot-'));
  const file = path.join(dir, 'snapshot.db');
  try {
    const info = await writeSnapshotFile(driver, file);
    return {
      info,
      async *chunks() {
        const hash = createHash('sha256');
        for await (const chunk of createReadStream(file, { highWaterMark: SNAPSHOT_CHUNK }) as AsyncIterable<Buffer>) {
          hash.update(chunk);
          yield chunk;
        }
        yield hash.digest();
      },
      dispose: () => rm(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
