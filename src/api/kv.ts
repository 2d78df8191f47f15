// The KV service: Range, Put, DeleteRange, Txn, Compact.
import { ErrRequestTooLarge } from '../errors';
import { requestSize } from '../proto';
import type { Header } from '../mvcc/requests';
import type { ApiContext, ServiceHandlers } from './context';
import { header } from './identity';

/**
 * etcd measures a write as the raft entry that carries it: the request plus
 * about 17 bytes of envelope (entry header with the request id, field tags).
 */
const RAFT_ENVELOPE_BYTES = 17;

export function checkRequestSize(api: ApiContext, req: object): void {
  const size = requestSize(req);
  if (size > 0 && size + RAFT_ENVELOPE_BYTES > api.limits.maxRequestBytes) throw ErrRequestTooLarge;
}

/** Replace mvcc's revision-only header with the full one. */
export function withHeader<T extends { header: Header }>(api: ApiContext, res: T): T {
  return { ...res, header: header(api.identity, res.header.revision) };
}

export function kvService(api: ApiContext): ServiceHandlers {
  const { store } = api;
  return {
    Range: async (req) => withHeader(api, await store.range(req)),
    // The size of writes is checked by the auth guard (auth-guard.ts), between the token and the permissions, as etcd does.
    Put: async (req) => withHeader(api, await store.put(req)),
    DeleteRange: async (req) => withHeader(api, await store.deleteRange(req)),
    Txn: async (req) => withHeader(api, await store.txn(req)),
    Compact: async (req) => withHeader(api, await store.compact(req)),
  };
}
