// What every API handler gets: the store, who we are, the limits, and the
// per-call metadata. Handlers are transport-neutral: gRPC and the HTTP/JSON
// gateway both call them with the same request objects.
import type { MvccStore } from '../mvcc/store';
import type { Identity } from './identity';

export interface Limits {
  /** etcd's --max-request-bytes: the largest write request accepted. */
  maxRequestBytes: number;
}

export interface ApiContext {
  store: MvccStore;
  identity: Identity;
  limits: Limits;
}

/** Per-call facts from the transport. */
export interface CallMeta {
  /** Auth token from gRPC metadata `token`/`authorization` or the HTTP Authorization header. */
  token?: string;
  /** The client's API version, from gRPC metadata `client-api-version` (etcd's clients send it). */
  apiVersion?: string;
  /**
   * gRPC over TLS with a verified client certificate: its Common Name, the
   * user when no token is sent (as etcd with --client-cert-auth). Never set
   * on the gateway: etcd ignores the certificate of a gateway request.
   */
  certUser?: string;
}

export type UnaryHandler = (req: any, meta: CallMeta) => Promise<object>;

/** A service implementation: handlers named after the proto method names. */
export type ServiceHandlers = Record<string, UnaryHandler | undefined>;
