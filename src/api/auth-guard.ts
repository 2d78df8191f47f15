// Auth enforcement, wrapped around every service's handlers, in etcd's order:
//   1. the request's own checks (empty key, too many ops...): no caller needed;
//   2. the token: when auth is on, a token that is sent must be valid, on
//      every method etcd looks at it for (all but a few reads of cluster
//      state); no token means an anonymous caller, refused later only if the
//      method needs a permission (`etcdserver: user name is empty`);
//   3. what the method needs (key ranges to read or write, the root role).
// Methods without a policy get step 2 alone.
import type { AuthInfo, AuthStore } from '../mvcc/auth-store';
import type { Lessor } from '../mvcc/lessor';
import { leaseId, type DeleteRangeRequest, type PutRequest, type RangeRequest, type RequestOp, type TxnRequest } from '../mvcc/requests';
import { checkDelete, checkDuplicates, checkPut, checkRange, checkTxn } from '../mvcc/validate';
import type { CallMeta, ServiceHandlers } from './context';

type Rule = (req: any, info: AuthInfo | null) => void | Promise<void>;

export interface Policy {
  /** Checks of the request alone, made before the caller is looked at. */
  validate?: (req: any) => void;
  /** Whether etcd looks at the token for this request at all (default: always). */
  token?: (req: any) => boolean;
  /** What the caller needs, checked once the token is known good. */
  rule?: Rule;
}

export function guard(handlers: ServiceHandlers, policies: Record<string, Policy>, auth: AuthStore): ServiceHandlers {
  const out: ServiceHandlers = {};
  for (const [method, handler] of Object.entries(handlers)) {
    if (!handler) continue;
    const { validate, token, rule } = policies[method] ?? {};
    out[method] = async (req: unknown, meta: CallMeta) => {
      validate?.(req);
      if (!token || token(req)) {
        const info = await auth.identify(meta.token, meta.certUser);
        if (rule) await rule(req, info);
      }
      return handler(req, meta);
    };
  }
  return out;
}

const never = () => false;

/**
 * What each KV request needs, as etcd checks it (nested txns included: etcd
 * 3.4 does not look inside them, this server does). `admit` runs between the
 * token and the permissions, where etcd checks a write's size.
 */
export function kvPolicies(auth: AuthStore, lessor: Lessor, maxTxnOps: number, admit: (req: object) => void): Record<string, Policy> {
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
  return {
    Range: { validate: checkRange, rule: range },
    Put: {
      validate: checkPut,
      rule: async (r: PutRequest, i) => {
        admit(r);
        put(r, i);
        // A put under a lease needs write permission over every key already attached to it.
        if (i && !i.root && leaseId(r.lease) !== '0') {
          for (const key of await lessor.keysOf(leaseId(r.lease))) auth.check(i, 'write', key);
        }
      },
    },
    DeleteRange: {
      validate: checkDelete,
      rule: (r: DeleteRangeRequest, i) => {
        admit(r);
        del(r, i);
      },
    },
    Txn: {
      validate: (r: TxnRequest) => {
        checkTxn(r, maxTxnOps);
        checkDuplicates(r.success);
        checkDuplicates(r.failure);
      },
      rule: (r: TxnRequest, i) => {
        admit(r);
        txn(r, i);
      },
    },
    // Compact needs no permission, but a token sent with it must be valid.
  };
}

/**
 * Revoking needs write permission over every key attached to the lease.
 * TimeToLive with keys needs read permission over them (key names are data;
 * etcd 3.4.26 and 3.5.9 check this, 3.4.23 does not). etcd 3.4 does not look
 * at the token of TimeToLive without keys, Leases or KeepAlive.
 */
export function leasePolicies(auth: AuthStore, lessor: Lessor): Record<string, Policy> {
  return {
    LeaseRevoke: {
      rule: async (r: { ID: string }, i) => {
        if (!i || i.root) return;
        for (const key of await lessor.keysOf(r.ID)) auth.check(i, 'write', key);
      },
    },
    LeaseTimeToLive: {
      token: (r: { keys: boolean }) => r.keys,
      rule: async (r: { ID: string }, i) => {
        if (!i || i.root) return;
        for (const key of await lessor.keysOf(r.ID)) auth.check(i, 'read', key);
      },
    },
    LeaseLeases: { token: never },
  };
}

/** Maintenance: Status is open to all (etcd does not look at the token); the rest of `admin` needs root. */
export function maintenancePolicies(auth: AuthStore, admin: string[]): Record<string, Policy> {
  return { Status: { token: never }, ...adminOnly(auth, admin) };
}

/** Cluster: MemberList is open to all (etcd does not look at the token); the rest of `admin` needs root. */
export function clusterPolicies(auth: AuthStore, admin: string[]): Record<string, Policy> {
  return { MemberList: { token: never }, ...adminOnly(auth, admin) };
}

function adminOnly(auth: AuthStore, methods: string[]): Record<string, Policy> {
  return Object.fromEntries(methods.map((m) => [m, { rule: (_r: unknown, i: AuthInfo | null) => auth.requireAdmin(i) }]));
}

/** Auth management: root only, except authenticating, the status, and reading oneself and one's own roles. */
export function authPolicies(auth: AuthStore): Record<string, Policy> {
  return {
    // The password is checked before the token (AuthStore.authenticate looks at the token itself).
    Authenticate: { token: never },
    ...adminOnly(auth, [
      'AuthEnable',
      'AuthDisable',
      'UserAdd',
      'UserList',
      'UserDelete',
      'UserChangePassword',
      'UserGrantRole',
      'UserRevokeRole',
      'RoleAdd',
      'RoleList',
      'RoleDelete',
      'RoleGrantPermission',
      'RoleRevokePermission',
    ]),
    UserGet: {
      rule: (r: { name: string }, i) => {
        if (i && !i.root && r.name !== i.user) auth.requireAdmin(i);
      },
    },
    RoleGet: {
      rule: (r: { role: string }, i) => {
        if (!auth.hasRole(i, r.role)) auth.requireAdmin(i);
      },
    },
  };
}
