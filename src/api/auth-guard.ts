// Auth enforcement, wrapped around every service's handlers: each method
// names what a caller needs (key ranges to read or write, or the root role);
// the guard identifies the caller from the token and refuses with etcd's
// errors before the handler runs. Methods without a rule need nothing.
import type { AuthInfo, AuthStore } from '../mvcc/auth-store';
import type { Lessor } from '../mvcc/lessor';
import type { DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest } from '../mvcc/requests';
import type { CallMeta, ServiceHandlers } from './context';

type Rule = (req: any, info: AuthInfo | null) => void | Promise<void>;

export function guard(handlers: ServiceHandlers, rules: Record<string, Rule>, auth: AuthStore): ServiceHandlers {
  const out: ServiceHandlers = {};
  for (const [method, handler] of Object.entries(handlers)) {
    const rule = rules[method];
    out[method] =
      handler && rule
        ? async (req: unknown, meta: CallMeta) => {
            const info = auth.identify(meta.token);
            await rule(req, info);
            return handler(req, meta);
          }
        : handler;
  }
  return out;
}

/** What each KV request needs, as etcd 3.5 checks it (nested txns included). */
export function kvRules(auth: AuthStore): Record<string, Rule> {
  const range = (r: RangeRequest, i: AuthInfo | null) => auth.check(i, 'read', r.key, r.range_end);
  const put = (r: PutRequest, i: AuthInfo | null) => {
    auth.check(i, 'write', r.key);
    if (r.prev_kv) auth.check(i, 'read', r.key);
  };
  const del = (r: DeleteRangeRequest, i: AuthInfo | null) => {
    auth.check(i, 'write', r.key, r.range_end);
    if (r.prev_kv) auth.check(i, 'read', r.key, r.range_end);
  };
  const ops = (list: RequestOp[], i: AuthInfo | null) => {
    for (const op of list) {
      if (op.request === 'request_range') range(op.request_range!, i);
      else if (op.request === 'request_put') put(op.request_put!, i);
      else if (op.request === 'request_delete_range') del(op.request_delete_range!, i);
      else if (op.request === 'request_txn') txn(op.request_txn!, i);
    }
  };
  const txn = (r: TxnRequest, i: AuthInfo | null) => {
    for (const c of r.compare) auth.check(i, 'read', c.key, c.range_end);
    ops(r.success, i);
    ops(r.failure, i);
  };
  // Compact needs no permission, as in etcd.
  return { Range: range, Put: put, DeleteRange: del, Txn: txn };
}

/**
 * Revoking needs write permission over every key attached to the lease;
 * TimeToLive needs read permission over them (etcd 3.5: key names are data,
 * whether or not the keys are asked for).
 */
export function leaseRules(auth: AuthStore, lessor: Lessor): Record<string, Rule> {
  const keysOf = async (id: string) => (await lessor.timeToLive(id, true)).keys;
  return {
    LeaseRevoke: async (r, i) => {
      if (!i || i.root) return;
      for (const k of await keysOf(r.ID)) auth.check(i, 'write', k);
    },
    LeaseTimeToLive: async (r, i) => {
      if (!i || i.root) return;
      for (const k of await keysOf(r.ID)) auth.check(i, 'read', k);
    },
  };
}

export function adminRules(auth: AuthStore, methods: string[]): Record<string, Rule> {
  return Object.fromEntries(methods.map((m) => [m, (_r: unknown, i: AuthInfo | null) => auth.requireAdmin(i)]));
}

/** Auth management: root only, except reading oneself and one's own roles. */
export function authRules(auth: AuthStore): Record<string, Rule> {
  const admin = (_r: unknown, i: AuthInfo | null) => auth.requireAdmin(i);
  return {
    AuthDisable: admin,
    UserAdd: admin,
    UserList: admin,
    UserDelete: admin,
    UserChangePassword: admin,
    UserGrantRole: admin,
    UserRevokeRole: admin,
    RoleAdd: admin,
    RoleList: admin,
    RoleDelete: admin,
    RoleGrantPermission: admin,
    RoleRevokePermission: admin,
    UserGet: (r, i) => {
      if (i && !i.root && r.name !== i.user) auth.requireAdmin(i);
    },
    RoleGet: (r, i) => {
      if (!auth.hasRole(i, r.role)) auth.requireAdmin(i);
    },
  };
}
