// LeaseKeepAlive over gRPC.
import type * as grpc from '@grpc/grpc-js';
import { KeepAliveSession } from '../api/lease';
import type { ApiContext } from '../api/context';
import { toStatus } from '../errors';
import type { Lessor } from '../mvcc/lessor';
import type { StreamHandler } from './grpc-server';

export function keepAliveStream(api: ApiContext, lessor: Lessor): StreamHandler {
  return (rawCall) => {
    const call = rawCall as grpc.ServerDuplexStream<any, any>;
    let failed = false;
    const session = new KeepAliveSession(
      api,
      lessor,
      (res) => call.write(res),
      (err) => {
        if (failed) return;
        failed = true;
        call.emit('error', toStatus(err));
      },
    );
    call.on('data', (req) => session.request(req));
    call.on('end', () => void session.drained().then(() => !failed && call.end()));
    call.on('error', () => undefined);
  };
}
