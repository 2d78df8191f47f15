// The streams a server has open (Watch, LeaseKeepAlive, health Watch, on gRPC
// and on the gateway), so that a shutdown ends each one as etcd does instead
// of cutting its connection: an HTTP watch gets etcd's last line
// {"error":{"grpc_code":14,"http_code":503,"message":"transport is closing",...}}
// and a clean end of its chunked body (Patroni and curl read that as an
// orderly end); a gRPC stream gets the status UNAVAILABLE "transport is
// closing", the words a Go client prints when etcd goes away.
import { status } from '@grpc/grpc-js';
import type * as grpc from '@grpc/grpc-js';
import { EtcdError } from '../errors';
import type { StreamServer } from '../gateway/json-stream';
import type { StreamHandler } from './grpc-server';

export const TRANSPORT_CLOSING = new EtcdError(status.UNAVAILABLE, 'transport is closing');

export class OpenStreams {
  private readonly enders = new Set<() => void>();
  private ending = false;

  /** Registers how to end one stream; returns its removal (call it when the stream closes). */
  add(end: () => void): () => void {
    if (this.ending) {
      end();
      return () => undefined;
    }
    this.enders.add(end);
    return () => void this.enders.delete(end);
  }

  /** Ends every open stream, and any opened from now on. */
  endAll(): void {
    this.ending = true;
    const all = [...this.enders];
    this.enders.clear();
    for (const end of all) end();
  }

  /** A gRPC stream handler whose calls end with "transport is closing" at shutdown. */
  grpc(handler: StreamHandler): StreamHandler {
    return (call) => {
      const remove = this.add(() => {
        if (!call.destroyed) call.emit('error', { code: TRANSPORT_CLOSING.code, details: TRANSPORT_CLOSING.message } satisfies Partial<grpc.StatusObject>);
      });
      call.once('close', remove);
      handler(call);
    };
  }

  /** A gateway stream whose responses end with etcd's "transport is closing" line at shutdown. */
  http(server: StreamServer): StreamServer {
    return {
      open: (out, meta) => {
        const remove = this.add(() => out.fail(TRANSPORT_CLOSING));
        const callbacks = server.open(out, meta);
        return {
          ...callbacks,
          close: () => {
            remove();
            callbacks.close();
          },
        };
      },
    };
  }
}
