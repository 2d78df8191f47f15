// LeaseKeepAlive over gRPC.
import type * as grpc from '@grpc/grpc-js';
import { KeepAliveSession } from '../api/lease';
import type { ApiContext } from '../api/context';
import { toStatus } from '../errors';
import type { Lessor } from '../mvcc/lessor';
import { callMeta, type StreamHandler } from './grpc-server';
import { streamStats, type Metrics } from '../metrics';

export function keepAliveStream(api: ApiContext, lessor: Lessor, metrics: Metrics | null): StreamHandler {
  return (rawCall) => {
    const call = rawCall as grpc.ServerDuplexStream<any, any>;
    const stats = streamStats(metrics, 'etcdserverpb.Lease', 'LeaseKeepAlive', callMeta(call.metadata, call).apiVersion);
    let failed = false;
    const session = new KeepAliveSession(
      api,
      lessor,
      (res) => {
        stats.sent();
        call.write(res);
      },
      (err) => {
        if (failed) return;
        failed = true;
        const status = toStatus(err);
        stats.closed(status.code);
        call.emit('error', status);
      },
    );
    call.on('data', (req) => {
      stats.received();
      session.request(req);
    });
    call.on('end', () => void session.drained().then(() => !failed && call.end()));
    call.on('error', () => undefined);
    call.on('close', () => stats.closed(0));
  };
}
