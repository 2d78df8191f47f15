// etcd's gateway paths and the gRPC method each one calls. /v3beta/... is an
// alias of every /v3/... path.

export interface Route {
  service: string;
  method: string;
}

const KV = 'etcdserverpb.KV';
const LEASE = 'etcdserverpb.Lease';
const CLUSTER = 'etcdserverpb.Cluster';
const MAINT = 'etcdserverpb.Maintenance';
const AUTH = 'etcdserverpb.Auth';

export const ROUTES: Record<string, Route> = {
  '/kv/range': { service: KV, method: 'Range' },
  '/kv/put': { service: KV, method: 'Put' },
  '/kv/deleterange': { service: KV, method: 'DeleteRange' },
  '/kv/txn': { service: KV, method: 'Txn' },
  '/kv/compaction': { service: KV, method: 'Compact' },
  '/watch': { service: 'etcdserverpb.Watch', method: 'Watch' },
  '/lease/grant': { service: LEASE, method: 'LeaseGrant' },
  '/lease/revoke': { service: LEASE, method: 'LeaseRevoke' },
  '/kv/lease/revoke': { service: LEASE, method: 'LeaseRevoke' },
  '/lease/keepalive': { service: LEASE, method: 'LeaseKeepAlive' },
  '/lease/timetolive': { service: LEASE, method: 'LeaseTimeToLive' },
  '/kv/lease/timetolive': { service: LEASE, method: 'LeaseTimeToLive' },
  '/lease/leases': { service: LEASE, method: 'LeaseLeases' },
  '/kv/lease/leases': { service: LEASE, method: 'LeaseLeases' },
  '/cluster/member/add': { service: CLUSTER, method: 'MemberAdd' },
  '/cluster/member/remove': { service: CLUSTER, method: 'MemberRemove' },
  '/cluster/member/update': { service: CLUSTER, method: 'MemberUpdate' },
  '/cluster/member/list': { service: CLUSTER, method: 'MemberList' },
  '/cluster/member/promote': { service: CLUSTER, method: 'MemberPromote' },
  '/maintenance/alarm': { service: MAINT, method: 'Alarm' },
  '/maintenance/status': { service: MAINT, method: 'Status' },
  '/maintenance/defragment': { service: MAINT, method: 'Defragment' },
  '/maintenance/hash': { service: MAINT, method: 'Hash' },
  '/maintenance/snapshot': { service: MAINT, method: 'Snapshot' },
  '/maintenance/transfer-leadership': { service: MAINT, method: 'MoveLeader' },
  '/maintenance/downgrade': { service: MAINT, method: 'Downgrade' },
  '/auth/enable': { service: AUTH, method: 'AuthEnable' },
  '/auth/disable': { service: AUTH, method: 'AuthDisable' },
  '/auth/status': { service: AUTH, method: 'AuthStatus' },
  '/auth/authenticate': { service: AUTH, method: 'Authenticate' },
  '/auth/user/add': { service: AUTH, method: 'UserAdd' },
  '/auth/user/get': { service: AUTH, method: 'UserGet' },
  '/auth/user/list': { service: AUTH, method: 'UserList' },
  '/auth/user/delete': { service: AUTH, method: 'UserDelete' },
  '/auth/user/changepw': { service: AUTH, method: 'UserChangePassword' },
  '/auth/user/grant': { service: AUTH, method: 'UserGrantRole' },
  '/auth/user/revoke': { service: AUTH, method: 'UserRevokeRole' },
  '/auth/role/add': { service: AUTH, method: 'RoleAdd' },
  '/auth/role/get': { service: AUTH, method: 'RoleGet' },
  '/auth/role/list': { service: AUTH, method: 'RoleList' },
  '/auth/role/delete': { service: AUTH, method: 'RoleDelete' },
  '/auth/role/grant': { service: AUTH, method: 'RoleGrantPermission' },
  '/auth/role/revoke': { service: AUTH, method: 'RoleRevokePermission' },
};

export const API_PREFIXES = ['/v3', '/v3beta'];

/** HTTP status for a gRPC code, as etcd's gateway (grpc-gateway v1) maps it. */
export function httpStatus(code: number): number {
  switch (code) {
    case 0:
      return 200;
    case 1: // CANCELLED
      return 408;
    case 3: // INVALID_ARGUMENT
    case 11: // OUT_OF_RANGE
      return 400;
    case 4: // DEADLINE_EXCEEDED
      return 504;
    case 5: // NOT_FOUND
      return 404;
    case 6: // ALREADY_EXISTS
    case 10: // ABORTED
      return 409;
    case 7: // PERMISSION_DENIED
      return 403;
    case 8: // RESOURCE_EXHAUSTED
      return 429;
    case 9: // FAILED_PRECONDITION
      return 412;
    case 12: // UNIMPLEMENTED
      return 501;
    case 14: // UNAVAILABLE
      return 503;
    case 16: // UNAUTHENTICATED
      return 401;
    default: // UNKNOWN, INTERNAL, DATA_LOSS
      return 500;
  }
}
