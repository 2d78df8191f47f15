// The data model of the key-value store, shared by mvcc, the API handlers and
// the drivers. Field names are etcd's proto names, so a KeyValue goes onto the
// wire as it is.
//
// Revisions: the empty store is at revision 1; every write transaction that
// changes something gets the next revision, shared by all its changes, which
// are ordered inside it by `sub`. Revisions are JS numbers (exact to 2^53).
// Lease ids are int64 and may exceed 2^53, so they travel as decimal strings
// ("0" = no lease).

export interface KeyValue {
  key: Buffer;
  /** Revision of the key's last creation; 0 for a deletion record. */
  create_revision: number;
  /** Revision of the key's last modification (or of its deletion). */
  mod_revision: number;
  /** 1 on creation, +1 per put; 0 for a deletion record. */
  version: number;
  value: Buffer;
  /** Attached lease id as a decimal int64 string; "0" means none. */
  lease: string;
}

/**
 * One row of the revision log: a put or a deletion of one key at one
 * revision. A deletion's kv holds only key and mod_revision (zero values
 * elsewhere), which is exactly what a DELETE watch event shows.
 */
export interface LogEntry {
  kv: KeyValue;
  /** Position inside the revision, from 0, in the order the ops ran. */
  sub: number;
  deleted: boolean;
  /**
   * mod_revision of the key's previous live version (0 for a creation). With
   * the key it names the previous kv, which a watcher with prev_kv receives.
   */
  prev_revision: number;
}

export const EMPTY = Buffer.alloc(0);
export const NO_LEASE = '0';

export function tombstone(key: Buffer, revision: number): KeyValue {
  return { key, create_revision: 0, mod_revision: revision, version: 0, value: EMPTY, lease: NO_LEASE };
}

/** Event types as etcd numbers them on the wire. */
export const EventType = { PUT: 0, DELETE: 1 } as const;

export interface Event {
  type: number;
  kv: KeyValue;
  prev_kv?: KeyValue | null;
}
