// What a robustness run records: every client request with its invocation and
// completion time and its result (or "unknown": the client cannot tell whether
// it took effect), and every watch stream's responses. Values are plain JSON
// (strings for keys and values, numbers for revisions) so that a history can
// be written to a file, read back and checked again.

export interface KeyValue {
  key: string;
  value: string;
  create: number;
  mod: number;
  version: number;
  /** Lease id as a decimal string, '0' for none. */
  lease: string;
}

export type CompareTarget = 'VALUE' | 'VERSION' | 'MOD' | 'CREATE';
export type CompareResult = 'EQUAL' | 'NOT_EQUAL' | 'LESS' | 'GREATER';

export interface Compare {
  key: string;
  target: CompareTarget;
  result: CompareResult;
  /** A string for VALUE, a number otherwise. */
  value: string | number;
}

export type TxnOp =
  | { put: { key: string; value: string; lease?: string } }
  | { range: { key: string; end?: string } }
  | { del: { key: string; end?: string } };

export type Request =
  | { type: 'range'; key: string; end?: string; revision?: number; serializable?: boolean; limit?: number }
  | { type: 'put'; key: string; value: string; lease?: string }
  | { type: 'delete'; key: string; end?: string }
  | { type: 'txn'; compare: Compare[]; success: TxnOp[]; failure: TxnOp[] }
  | { type: 'leaseGrant'; ttl: number }
  | { type: 'leaseRevoke'; id: string }
  /** Not sent by a client: the server expiring a lease, at a time nobody knows (recorded as unknown). */
  | { type: 'leaseExpire'; id: string }
  | { type: 'compact'; revision: number };

export interface RangeResult {
  kvs: KeyValue[];
  count: number;
  more?: boolean;
}

export type TxnResult = RangeResult | { deleted: number } | { put: true };

export type Response =
  | ({ revision: number } & RangeResult)
  | { revision: number }
  | { revision: number; deleted: number }
  | { revision: number; succeeded: boolean; results: TxnResult[] }
  | { revision: number; id: string }
  /** A definite failure: the request had no effect (INVALID_ARGUMENT, OUT_OF_RANGE, NOT_FOUND, ...). */
  | { error: { code: number; message: string } };

export interface Operation {
  id: number;
  client: number;
  /** Which instance and transport served it ('grpc' or 'http'). */
  instance: number;
  transport: string;
  /** Milliseconds on one monotonic clock for the whole run. */
  call: number;
  /** Completion time; Infinity when the outcome is unknown. */
  ret: number;
  input: Request;
  /** Absent when the outcome is unknown (timeout, connection lost, UNAVAILABLE). */
  output?: Response;
  /** Why the outcome is unknown. */
  unknown?: string;
  /** A read after traffic stopped and faults healed (the durability check's witness). */
  final?: boolean;
}

export interface WatchEvent {
  type: 'PUT' | 'DELETE';
  kv: KeyValue;
  prev?: KeyValue;
}

export interface WatchCreate {
  key: string;
  end?: string;
  /** 0: from the revision after the one the created response names. */
  startRevision: number;
  prevKv: boolean;
  filters: ('NOPUT' | 'NODELETE')[];
  progressNotify: boolean;
  fragment: boolean;
}

export interface WatchResponseRecord {
  time: number;
  revision: number;
  created?: boolean;
  canceled?: boolean;
  compactRevision?: number;
  cancelReason?: string;
  /** A response with no events that is not created/canceled: a progress notification. */
  events: WatchEvent[];
  /** fragment: more of the same revision follows. */
  fragment?: boolean;
}

export interface WatchRecord {
  id: number;
  instance: number;
  transport: string;
  create: WatchCreate;
  openedAt: number;
  responses: WatchResponseRecord[];
  /** How the stream ended: 'client' (closed on purpose), 'error: ...', or 'open' at the end of the run. */
  ending: string;
  /** A revision the stream is known to have delivered everything up to (a progress notification answered after traffic stopped). */
  syncedTo?: number;
  /** A full-keyspace watch from revision 1 on an instance: the run's reference for what happened. */
  reference?: boolean;
}

export interface History {
  seed: number;
  backend: string;
  instances: number;
  operations: Operation[];
  watches: WatchRecord[];
  /** Faults injected, for the report. */
  faults: { time: number; what: string }[];
  /** The store's revision after traffic stopped. */
  finalRevision?: number;
}

/** Keys are compared as etcd does: by bytes. Our keys are ASCII, where string order is byte order. */
export function inRange(key: string, start: string, end?: string): boolean {
  if (end === undefined || end === '') return key === start;
  if (end === '\0') return key >= start;
  return key >= start && key < end;
}

/** JSON text of a history (an unknown completion time, Infinity, is written as null). */
export function historyJson(h: History): string {
  return JSON.stringify(h, (k, v) => (k === 'ret' && v === Infinity ? null : v));
}

export function parseHistory(text: string): History {
  return JSON.parse(text, (k, v) => (k === 'ret' && v === null ? Infinity : v));
}
