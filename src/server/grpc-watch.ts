// The Watch service over gRPC: one WatchSession per bidirectional stream.
import type * as grpc from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';
import { WatchSession, type WatchContext, type WatchResponse } from '../api/watch';
import { PRE_ENCODED, protoRoot } from '../proto';
import { callMeta, type StreamHandler } from './grpc-server';

const WatchResponseType = protoRoot.lookupType('etcdserverpb.WatchResponse');

/** Field 2 (watch_id, int64 varint), appended to shared bytes: protobuf fields may come in any order. */
function watchIdField(id: string): Buffer {
  return Buffer.from(protobuf.Writer.create().uint32(16).int64(id).finish());
}

export function encodeWatchResponse(res: WatchResponse): Buffer | object {
  if (!res.batch || res.fragment) return res;
  const cache = (res.batch.cache ??= new Map());
  let shared = cache.get('pb') as Buffer | undefined;
  if (!shared) {
    shared = Buffer.from(WatchResponseType.encode({ header: res.header, events: res.events } as unknown as protobuf.Message).finish());
    cache.set('pb', shared);
  }
  return res.watch_id === '0' ? shared : Buffer.concat([shared, watchIdField(res.watch_id!)]);
}

export function watchStream(ctx: WatchContext): StreamHandler {
  return (rawCall) => {
    const call = rawCall as grpc.ServerDuplexStream<any, any>;
    const session = new WatchSession(ctx, {
      send: (res) => {
        const encoded = encodeWatchResponse(res);
        return call.write(Buffer.isBuffer(encoded) ? { [PRE_ENCODED]: encoded } : encoded);
      },
      writable: () => !call.writableNeedDrain && !call.destroyed,
    }, callMeta(call.metadata));
    call.on('data', (req) => session.handle(req));
    call.on('drain', () => session.drained());
    // A half-closed request stream keeps the watch open, as in etcd.
    call.on('end', () => undefined);
    call.on('error', () => session.close());
    call.on('cancelled', () => session.close());
    call.on('close', () => session.close());
  };
}
