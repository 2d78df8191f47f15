// What etcd keeps in its backend file, bucket by bucket (etcd 3.4, checked
// byte by byte against a snapshot etcd 3.4.23 saved):
//
//   key              revision key -> mvccpb.KeyValue; a revision key is the
//                    8-byte big-endian main revision, '_', the 8-byte sub
//                    revision, and 't' after that for a deletion (whose
//                    KeyValue holds only the key)
//   meta             consistent_index (8 bytes), scheduledCompactRev and
//                    finishedCompactRev (revision keys, sub 0)
//   lease            8-byte big-endian lease id -> leasepb.Lease
//   auth             authEnabled (1 byte), authRevision (8 bytes)
//   authUsers        name -> authpb.User (bcrypt password hash)
//   authRoles        name -> authpb.Role
//   members          hex member id -> JSON {id, peerURLs, name, clientURLs}
//   members_removed, alarm, cluster (clusterVersion -> "3.4.0")
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { PROTO_DIR } from '../proto';

export const BUCKETS = {
  key: 'key',
  meta: 'meta',
  lease: 'lease',
  auth: 'auth',
  authUsers: 'authUsers',
  authRoles: 'authRoles',
  members: 'members',
  membersRemoved: 'members_removed',
  cluster: 'cluster',
  alarm: 'alarm',
} as const;

export const META_KEYS = {
  consistentIndex: Buffer.from('consistent_index'),
  scheduledCompact: Buffer.from('scheduledCompactRev'),
  finishedCompact: Buffer.from('finishedCompactRev'),
};
export const AUTH_KEYS = { enabled: Buffer.from('authEnabled'), revision: Buffer.from('authRevision') };
export const CLUSTER_VERSION_KEY = Buffer.from('clusterVersion');
export const CLUSTER_VERSION = '3.4.0';

/** A snapshot file is the backend file followed by its SHA-256 (etcdctl snapshot save/restore check it). */
export const SHA256_BYTES = 32;

/** The SHA-256 of a file's first `length` bytes (all of it by default), read as a stream. */
export async function fileSha256(file: string, length?: number): Promise<Buffer> {
  const hash = createHash('sha256');
  if (length !== 0) for await (const chunk of createReadStream(file, { end: length === undefined ? undefined : length - 1 }) as AsyncIterable<Buffer>) hash.update(chunk);
  return hash.digest();
}

const REVISION_KEY_BYTES = 17;
const TOMBSTONE = 0x74; // 't'

export function revisionKey(main: number, sub: number, tombstone = false): Buffer {
  const b = Buffer.alloc(REVISION_KEY_BYTES + (tombstone ? 1 : 0));
  b.writeBigUInt64BE(BigInt(main), 0);
  b[8] = 0x5f; // '_'
  b.writeBigUInt64BE(BigInt(sub), 9);
  if (tombstone) b[REVISION_KEY_BYTES] = TOMBSTONE;
  return b;
}

export function parseRevisionKey(b: Buffer): { main: number; sub: number; tombstone: boolean } | null {
  if (b.length !== REVISION_KEY_BYTES && !(b.length === REVISION_KEY_BYTES + 1 && b[REVISION_KEY_BYTES] === TOMBSTONE)) return null;
  if (b[8] !== 0x5f) return null;
  const main = b.readBigUInt64BE(0);
  const sub = b.readBigUInt64BE(9);
  if (main > BigInt(Number.MAX_SAFE_INTEGER) || sub > 0xffffffffn) return null;
  return { main: Number(main), sub: Number(sub), tombstone: b.length > REVISION_KEY_BYTES };
}

export function u64be(n: number | bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

/** A lease id (int64, decimal string) as etcd's lease bucket key. */
export function leaseKey(id: string): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(BigInt(id));
  return b;
}

const root = (() => {
  const r = new protobuf.Root();
  r.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : path.join(PROTO_DIR, target));
  r.loadSync(['mvccpb/kv.proto', 'authpb/auth.proto', 'leasepb/lease.proto'], { keepCase: true });
  r.resolveAll();
  return r;
})();

export const KeyValueType = root.lookupType('mvccpb.KeyValue');
export const LeaseType = root.lookupType('leasepb.Lease');
export const UserType = root.lookupType('authpb.User');
export const RoleType = root.lookupType('authpb.Role');

/**
 * Encode a plain object (int64 as decimal strings or numbers, bytes as
 * Buffers). Zero scalars and empty bytes are left out, as Go's encoder
 * leaves them out, so the bytes match what etcd writes.
 */
export function encode(type: protobuf.Type, value: Record<string, unknown>): Buffer {
  return Buffer.from(type.encode(type.fromObject(withoutZeros(value))).finish());
}

function withoutZeros(value: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (v === 0 || v === '0' || v === false || v === null || v === undefined) continue;
    if ((Buffer.isBuffer(v) || Array.isArray(v)) && v.length === 0) continue;
    out[k] = Array.isArray(v) ? v.map((x) => (x && typeof x === 'object' && !Buffer.isBuffer(x) ? withoutZeros(x as Record<string, unknown>) : x)) : v && typeof v === 'object' && !Buffer.isBuffer(v) ? withoutZeros(v as Record<string, unknown>) : v;
  }
  return out;
}

/** Decode to a plain object: int64 as decimal strings, bytes as Buffers, absent fields at their defaults. */
export function decode(type: protobuf.Type, bytes: Buffer): Record<string, unknown> {
  return type.toObject(type.decode(bytes), { longs: String, defaults: true }) as Record<string, unknown>;
}
