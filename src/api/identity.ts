// Who this server is, as etcd's response headers and member list tell it:
// a cluster id shared by every instance on one store, a member id per
// instance, and a raft term that never changes (there is no raft here).
import { createHash } from 'node:crypto';
import Long from 'long';

export const SERVER_VERSION = '3.5.16';
export const CLUSTER_VERSION = '3.5.0';
/** There is no election, so the term is constant. */
export const RAFT_TERM = 2;

export interface Identity {
  /** uint64 as a decimal string. */
  clusterId: string;
  memberId: string;
  name: string;
  clientUrls: string[];
  /** Shown in the member list; no peer traffic exists. */
  peerUrls: string[];
}

/** A stable positive 63-bit id from a text, as a decimal string. */
export function stableId(text: string): string {
  const digest = createHash('sha256').update(text).digest();
  return (digest.readBigUInt64BE(0) & 0x7fff_ffff_ffff_ffffn).toString();
}

export function memberIdentity(clusterId: string, name: string, clientUrls: string[], peerUrls: string[]): Identity {
  return { clusterId, memberId: stableId(`member:${clusterId}:${name}:${clientUrls.join(',')}`), name, clientUrls, peerUrls };
}

/** A uint64 id as a Long, which protobufjs encodes without re-parsing the decimal string. */
export type Uint64 = Long;

export interface FullHeader {
  cluster_id: Uint64;
  member_id: Uint64;
  revision: number;
  raft_term: number;
}

const longs = new Map<string, Uint64>();

/** The Long of a decimal uint64 id, parsed once. */
export function uint64(id: string): Uint64 {
  let l = longs.get(id);
  if (!l) {
    l = Long.fromString(id, true);
    longs.set(id, l);
  }
  return l;
}

export function header(id: Identity, revision: number): FullHeader {
  return { cluster_id: uint64(id.clusterId), member_id: uint64(id.memberId), revision, raft_term: RAFT_TERM };
}
