// The space quota around the writes that add data (etcd's quota KV server
// and capped applier): puts, txns with puts, lease grants.
import type { Alarms } from '../mvcc/alarms';
import { writeBytes } from '../mvcc/validate';
import type { ServiceHandlers } from './context';

/** etcd's cost of a lease grant in the quota. */
const LEASE_COST = 64;

export function withQuota(handlers: ServiceHandlers, alarms: Alarms, cost: Record<string, (req: any) => number>): ServiceHandlers {
  const out: ServiceHandlers = { ...handlers };
  for (const [method, f] of Object.entries(cost)) {
    const handler = handlers[method];
    if (!handler) continue;
    out[method] = async (req, meta) => {
      const bytes = f(req);
      if (bytes > 0) await alarms.admit(bytes);
      return handler(req, meta);
    };
  }
  return out;
}

export const KV_COSTS = {
  Put: (r: { key: Buffer; value: Buffer }) => r.key.length + r.value.length + 1,
  Txn: (r: Parameters<typeof writeBytes>[0]) => (hasPut(r) ? writeBytes(r) : 0),
};

export const LEASE_COSTS = { LeaseGrant: () => LEASE_COST };

function hasPut(r: Parameters<typeof writeBytes>[0]): boolean {
  return [...r.success, ...r.failure].some((op) => op.request === 'request_put' || (op.request === 'request_txn' && hasPut(op.request_txn!)));
}
