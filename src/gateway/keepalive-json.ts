// LeaseKeepAlive over the HTTP gateway: one answer line per request in the
// body; the response ends when the body has ended and every answer is out.
import { KeepAliveSession } from '../api/lease';
import type { ApiContext } from '../api/context';
import type { Lessor } from '../mvcc/lessor';
import type { StreamServer } from './json-stream';

export function keepAliveJson(api: ApiContext, lessor: Lessor): StreamServer {
  return {
    open(out) {
      const session = new KeepAliveSession(api, lessor, (res) => out.send(res), (err) => out.fail(err));
      return {
        request: (req) => session.request(req as { ID: string }),
        end: () => void session.drained().then(() => out.end()),
        close: () => undefined,
      };
    },
  };
}
