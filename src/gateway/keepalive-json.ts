// LeaseKeepAlive over the HTTP gateway: one answer line per request in the
// body; the response ends when the body has ended and every answer is out.
import { KeepAliveSession } from '../api/lease';
import type { ApiContext } from '../api/context';
import type { Lessor } from '../mvcc/lessor';
import type { StreamServer } from './json-stream';
import { streamStats, type Metrics } from '../metrics';
import { toStatus } from '../errors';

export function keepAliveJson(api: ApiContext, lessor: Lessor, metrics: Metrics | null): StreamServer {
  return {
    open(out, meta) {
      const stats = streamStats(metrics, 'etcdserverpb.Lease', 'LeaseKeepAlive', meta.apiVersion);
      const session = new KeepAliveSession(
        api,
        lessor,
        (res) => {
          stats.sent();
          out.send(res);
        },
        (err) => {
          stats.closed(toStatus(err).code);
          out.fail(err);
        },
      );
      return {
        request: (req) => {
          stats.received();
          session.request(req as { ID: string });
        },
        end: () => void session.drained().then(() => out.end()),
        close: () => stats.closed(0),
      };
    },
  };
}
