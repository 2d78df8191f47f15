// The Common Name of a client certificate TLS verified on a connection: the
// user of a gRPC call without a token under --client-cert-auth, and what
// makes the gateway refuse a call (etcd's rule).
import type * as net from 'node:net';
import * as tls from 'node:tls';

/** On a stream standing for a connection (h2-gateway.ts, h2-authority.ts): the real connection. */
export const UNDERLYING_SOCKET = Symbol('underlying socket');

export function verifiedCommonName(socket: net.Socket | undefined): string | undefined {
  // Node's HTTP/2 wraps a stream that is not a socket (h2-authority.ts) and keeps it as `stream`
  const wrapped = socket as unknown as (Record<symbol, net.Socket | undefined> & { stream?: Record<symbol, net.Socket | undefined> }) | undefined;
  const underlying = wrapped?.[UNDERLYING_SOCKET] ?? wrapped?.stream?.[UNDERLYING_SOCKET];
  if (underlying) socket = underlying;
  if (!(socket instanceof tls.TLSSocket) || !socket.authorized) return undefined;
  const cn = socket.getPeerCertificate()?.subject?.CN;
  return typeof cn === 'string' && cn ? cn : undefined;
}
