// The Watch service over gRPC: one WatchSession per bidirectional stream.
import type * as grpc from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';
import { GRPC_WATCH_WINDOW_BYTES, SendWindow } from '../api/send-window';
import { WatchSession, type WatchContext, type WatchResponse } from '../api/watch';
import { PRE_ENCODED, protoRoot } from '../proto';
import { batchedWriter } from './grpc-batched-writer';
import { callMeta, type StreamHandler } from './grpc-server';
import { streamStats, type Metrics } from '../metrics';

const WatchResponseType = protoRoot.lookupType('etcdserverpb.WatchResponse');

/** The encodings of the small watch ids that streams hand out (0, 1, 2...), made once. */
const SMALL_ID_FIELDS: Buffer[] = [];
const SMALL_IDS = 4096;

/** Field 2 (watch_id, int64 varint), appended to shared bytes: protobuf fields may come in any order. */
function watchIdField(id: string): Buffer {
  const encode = () => Buffer.from(protobuf.Writer.create().uint32(16).int64(id).finish());
  const n = Number(id);
  return Number.isInteger(n) && n >= 0 && n < SMALL_IDS ? (SMALL_ID_FIELDS[n] ??= encode()) : encode();
}

/** The wire form of a response; event batches shared by many watchers are encoded once. */
export function encodeWatchResponse(res: WatchResponse): Buffer {
  if (!res.batch || res.fragment) return Buffer.from(WatchResponseType.encode(res as unknown as protobuf.Message).finish());
  const cache = (res.batch.cache ??= new Map());
  let shared = cache.get('pb') as Buffer | undefined;
  if (!shared) {
    shared = Buffer.from(WatchResponseType.encode({ header: res.header, events: res.events } as unknown as protobuf.Message).finish());
    cache.set('pb', shared);
  }
  return res.watch_id === '0' ? shared : Buffer.concat([shared, watchIdField(res.watch_id!)]);
}

export function watchStream(ctx: WatchContext, metrics: Metrics | null): StreamHandler {
  return (rawCall) => {
    const call = rawCall as grpc.ServerDuplexStream<any, any>;
    const meta = callMeta(call.metadata, call);
    const stats = streamStats(metrics, 'etcdserverpb.Watch', 'Watch', meta.apiVersion);
    const window = new SendWindow(GRPC_WATCH_WINDOW_BYTES, () => session.drained());
    const batched = batchedWriter(call);
    const session = new WatchSession(ctx, {
      send: (res) => {
        const encoded = encodeWatchResponse(res);
        stats.sent(encoded.length);
        if (batched) batched.write(encoded, window.add(encoded.length));
        else call.write({ [PRE_ENCODED]: encoded }, window.add(encoded.length));
        return window.open;
      },
      writable: () => window.open && !call.destroyed,
    }, meta);
    call.on('data', (req) => {
      stats.received();
      session.handle(req);
    });
    // A half-closed request stream keeps the watch open, as in etcd.
    call.on('end', () => undefined);
    const closed = (code: number) => {
      stats.closed(code);
      session.close();
    };
    call.on('error', () => closed(14));
    call.on('cancelled', () => closed(1));
    call.on('close', () => closed(0));
  };
}
