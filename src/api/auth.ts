// The Auth service.
import type { AuthStore } from '../mvcc/auth-store';
import type { ApiContext, ServiceHandlers } from './context';
import { withHeader } from './kv';

export function authService(api: ApiContext, auth: AuthStore): ServiceHandlers {
  return {
    AuthEnable: async () => withHeader(api, await auth.enable()),
    AuthDisable: async () => withHeader(api, await auth.disable()),
    AuthStatus: async () => withHeader(api, await auth.status()),
    Authenticate: async (req, meta) => withHeader(api, await auth.authenticate(req.name, req.password, meta.token)),
    UserAdd: async (req) => withHeader(api, await auth.userAdd(req.name, req.password, req.options?.no_password ?? false, req.hashedPassword)),
    UserGet: async (req) => withHeader(api, await auth.userGet(req.name)),
    UserList: async () => withHeader(api, await auth.userList()),
    UserDelete: async (req) => withHeader(api, await auth.userDelete(req.name)),
    UserChangePassword: async (req) => withHeader(api, await auth.userChangePassword(req.name, req.password, req.hashedPassword)),
    UserGrantRole: async (req) => withHeader(api, await auth.userGrantRole(req.user, req.role)),
    UserRevokeRole: async (req) => withHeader(api, await auth.userRevokeRole(req.name, req.role)),
    RoleAdd: async (req) => withHeader(api, await auth.roleAdd(req.name)),
    RoleGet: async (req) => withHeader(api, await auth.roleGet(req.role)),
    RoleList: async () => withHeader(api, await auth.roleList()),
    RoleDelete: async (req) => withHeader(api, await auth.roleDelete(req.role)),
    RoleGrantPermission: async (req) => withHeader(api, await auth.roleGrantPermission(req.name, req.perm)),
    RoleRevokePermission: async (req) => withHeader(api, await auth.roleRevokePermission(req.role, req.key, req.range_end)),
  };
}
