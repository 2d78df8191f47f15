// The Lease service: Grant, Revoke, TimeToLive, Leases, and the KeepAlive
// stream (one answer per request, in order).
import type { Lessor } from '../mvcc/lessor';
import type { ApiContext, ServiceHandlers } from './context';
import { withHeader } from './kv';

export function leaseService(api: ApiContext, lessor: Lessor): ServiceHandlers {
  return {
    LeaseGrant: async (req) => withHeader(api, await lessor.grant(req.TTL, req.ID)),
    LeaseRevoke: async (req) => withHeader(api, await lessor.revoke(req.ID)),
    LeaseTimeToLive: async (req) => withHeader(api, await lessor.timeToLive(req.ID, req.keys)),
    LeaseLeases: async () => withHeader(api, await lessor.leases()),
  };
}

/** A keepalive stream, whatever the transport: answers go out in the order the requests came. */
export class KeepAliveSession {
  private tail: Promise<void> = Promise.resolve();

  constructor(
    private readonly api: ApiContext,
    private readonly lessor: Lessor,
    private readonly send: (res: object) => void,
    private readonly fail: (err: unknown) => void,
  ) {}

  request(req: { ID: string | number }): void {
    this.tail = this.tail
      .then(async () => this.send(withHeader(this.api, await this.lessor.keepAlive(req.ID))))
      .catch((err) => this.fail(err));
  }

  /** Resolves when every answer so far has been sent. */
  drained(): Promise<void> {
    return this.tail;
  }
}
