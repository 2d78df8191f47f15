// Request and response shapes as they come off the wire: proto field names,
// int64 as decimal strings (gRPC) or numbers (JSON), bytes as Buffers, enums
// as numbers, oneofs named by a discriminator field. Both transports produce
// exactly these objects, so mvcc has one implementation.
import type { KeyValue } from './kv';

export type Int64 = string | number;

export interface RangeRequest {
  key: Buffer;
  range_end: Buffer;
  limit: Int64;
  revision: Int64;
  sort_order: number;
  sort_target: number;
  serializable: boolean;
  keys_only: boolean;
  count_only: boolean;
  min_mod_revision: Int64;
  max_mod_revision: Int64;
  min_create_revision: Int64;
  max_create_revision: Int64;
}

export interface PutRequest {
  key: Buffer;
  value: Buffer;
  lease: Int64;
  prev_kv: boolean;
  ignore_value: boolean;
  ignore_lease: boolean;
}

export interface DeleteRangeRequest {
  key: Buffer;
  range_end: Buffer;
  prev_kv: boolean;
}

export interface RequestOp {
  request?: 'request_range' | 'request_put' | 'request_delete_range' | 'request_txn';
  request_range?: RangeRequest | null;
  request_put?: PutRequest | null;
  request_delete_range?: DeleteRangeRequest | null;
  request_txn?: TxnRequest | null;
}

export interface Compare {
  result: number;
  target: number;
  key: Buffer;
  target_union?: 'version' | 'create_revision' | 'mod_revision' | 'value' | 'lease';
  version?: Int64;
  create_revision?: Int64;
  mod_revision?: Int64;
  value?: Buffer;
  lease?: Int64;
  range_end: Buffer;
}

export interface TxnRequest {
  compare: Compare[];
  success: RequestOp[];
  failure: RequestOp[];
}

export interface CompactionRequest {
  revision: Int64;
  physical: boolean;
}

/** mvcc fills only the revision; the API layer adds cluster, member and term. */
export interface Header {
  revision: number;
}

export interface RangeResponse {
  header: Header;
  kvs: KeyValue[];
  more: boolean;
  count: number;
}

export interface PutResponse {
  header: Header;
  prev_kv?: KeyValue | null;
}

export interface DeleteRangeResponse {
  header: Header;
  deleted: number;
  prev_kvs: KeyValue[];
}

export interface ResponseOp {
  response_range?: RangeResponse;
  response_put?: PutResponse;
  response_delete_range?: DeleteRangeResponse;
  response_txn?: TxnResponse;
}

export interface TxnResponse {
  header: Header;
  succeeded: boolean;
  responses: ResponseOp[];
}

export const SortOrder = { NONE: 0, ASCEND: 1, DESCEND: 2 } as const;
export const SortTarget = { KEY: 0, VERSION: 1, CREATE: 2, MOD: 3, VALUE: 4 } as const;
export const CompareResult = { EQUAL: 0, GREATER: 1, LESS: 2, NOT_EQUAL: 3 } as const;
export const CompareTarget = { VERSION: 0, CREATE: 1, MOD: 2, VALUE: 3, LEASE: 4 } as const;

/** An int64 field as a JS number (revisions, limits: exact below 2^53). */
export function num(v: Int64 | undefined | null): number {
  if (v === undefined || v === null || v === '') return 0;
  return typeof v === 'number' ? v : Number(v);
}

/** An int64 field as a BigInt, for lease ids and lease compares. */
export function big(v: Int64 | undefined | null): bigint {
  if (v === undefined || v === null || v === '') return 0n;
  return typeof v === 'number' ? BigInt(Math.trunc(v)) : BigInt(v);
}

/** A lease id in the canonical form the store keeps ("0" = none). */
export function leaseId(v: Int64 | undefined | null): string {
  if (v === undefined || v === null || v === '' || v === 0 || v === '0') return '0';
  return big(v).toString();
}
