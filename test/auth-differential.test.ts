// Auth (etcd-facts section 6) against a real etcd 3.4: users and roles,
// enabling auth, tokens over gRPC metadata and the HTTP Authorization header,
// allowed and denied access to KV, Watch, Lease, Maintenance and Cluster, the
// management errors, and disabling it again.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { b, type EtcdGrpcClient } from './helpers/grpc-client';
import { same, sameCode, startPair, type Pair } from './helpers/pair';
import { agreed, byWatcher, grpcWatch, httpWatch } from './helpers/watch-client';
import { etcdctl, ctlError } from './helpers/etcdctl';
import { normalize } from './helpers/normalize';
import { backendsUnderTest } from './helpers/backends';

const READ = 0;
const READWRITE = 2;

for (const backend of backendsUnderTest()) {
  describe(`Auth against etcd 3.4 (${backend})`, () => {
    let pair: Pair;
    /** each server's tokens, per user */
    const tokens = new Map<EtcdGrpcClient, Record<string, string>>();
    before(async () => {
      pair = await startPair({ backend });
    });
    after(async () => {
      await pair?.close();
    });
    const both = (fn: (c: EtcdGrpcClient) => Promise<unknown>, ignore?: string[]) => same(pair, fn, ignore);
    const auth = (c: EtcdGrpcClient, method: string, req: object, user?: string) => c.call(c.auth, method, req, md(c, user));
    const md = (c: EtcdGrpcClient, user?: string) => {
      const m = new grpc.Metadata();
      if (user) m.set('token', tokens.get(c)![user] ?? 'no-such-token');
      return m;
    };
    const as = (user?: string) => ({
      range: (c: EtcdGrpcClient, req: object) => c.call(c.kv, 'Range', req, md(c, user)),
      put: (c: EtcdGrpcClient, req: object) => c.call(c.kv, 'Put', req, md(c, user)),
      del: (c: EtcdGrpcClient, req: object) => c.call(c.kv, 'DeleteRange', req, md(c, user)),
      txn: (c: EtcdGrpcClient, req: object) => c.call(c.kv, 'Txn', req, md(c, user)),
      call: (c: EtcdGrpcClient, client: grpc.Client, method: string, req: object) => c.call(client, method, req, md(c, user)),
    });

    it('users and roles: add, grant, get, list, and their errors', async () => {
      await both((c) => auth(c, 'UserAdd', { name: 'root', password: 'rootpw' }));
      await both((c) => auth(c, 'UserAdd', { name: 'root', password: 'x' })); // exists
      await both((c) => auth(c, 'UserAdd', { name: '', password: 'x' })); // empty name
      await both((c) => auth(c, 'UserGrantRole', { user: 'root', role: 'root' }));
      await both((c) => auth(c, 'UserAdd', { name: 'alice', password: 'alicepw' }));
      await both((c) => auth(c, 'UserAdd', { name: 'bob', password: 'bobpw' }));
      await both((c) => auth(c, 'RoleAdd', { name: 'reader' }));
      await both((c) => auth(c, 'RoleAdd', { name: 'reader' })); // exists
      await both((c) => auth(c, 'RoleAdd', { name: '' }));
      await both((c) => auth(c, 'RoleAdd', { name: 'writer' }));
      await both((c) => auth(c, 'RoleGrantPermission', { name: 'reader', perm: { permType: READ, key: b('foo/'), range_end: b('foo0') } }));
      await both((c) => auth(c, 'RoleGrantPermission', { name: 'reader', perm: { permType: READ, key: b('single') } }));
      await both((c) => auth(c, 'RoleGrantPermission', { name: 'writer', perm: { permType: READWRITE, key: b('foo/w/'), range_end: b('foo/w0') } }));
      await both((c) => auth(c, 'RoleGrantPermission', { name: 'nobody', perm: { permType: READ, key: b('x') } }));
      await both((c) => auth(c, 'UserGrantRole', { user: 'alice', role: 'reader' }));
      await both((c) => auth(c, 'UserGrantRole', { user: 'alice', role: 'writer' }));
      await both((c) => auth(c, 'UserGrantRole', { user: 'alice', role: 'reader' })); // again: fine
      await both((c) => auth(c, 'UserGrantRole', { user: 'alice', role: 'nope' }));
      await both((c) => auth(c, 'UserGrantRole', { user: 'nobody', role: 'reader' }));
      await both((c) => auth(c, 'UserGet', { name: 'alice' }));
      await both((c) => auth(c, 'UserGet', { name: 'nobody' }));
      await both((c) => auth(c, 'UserList', {}));
      await both((c) => auth(c, 'RoleList', {}));
      await both((c) => auth(c, 'RoleGet', { role: 'reader' }));
      await both((c) => auth(c, 'RoleGet', { role: 'nope' }));
      await both((c) => auth(c, 'UserRevokeRole', { name: 'bob', role: 'reader' })); // not granted
      await both((c) => auth(c, 'RoleRevokePermission', { role: 'writer', key: b('nope') }));
      await both((c) => auth(c, 'Authenticate', { name: 'root', password: 'rootpw' })); // auth not enabled
    });

    it('enable needs root with the root role; then tokens are required', async () => {
      await both((c) => auth(c, 'AuthEnable', {}));
      for (const c of [pair.etcd, pair.ours]) {
        const t: Record<string, string> = {};
        for (const [u, pw] of [['root', 'rootpw'], ['alice', 'alicepw'], ['bob', 'bobpw']]) t[u] = ((await auth(c, 'Authenticate', { name: u, password: pw })) as any).token;
        tokens.set(c, t);
      }
      await both((c) => auth(c, 'Authenticate', { name: 'alice', password: 'wrong' }));
      await both((c) => auth(c, 'Authenticate', { name: 'nobody', password: 'x' }));
      await both((c) => as('root').put(c, { key: b('foo/a'), value: b('1') }));
      await both((c) => as('root').put(c, { key: b('bar'), value: b('1') }));
    });

    it('KV: allowed and denied by role; no token; a bad token', async () => {
      const alice = as('alice');
      await both((c) => alice.range(c, { key: b('foo/a') }));
      await both((c) => alice.range(c, { key: b('foo/'), range_end: b('foo0') }));
      await both((c) => alice.range(c, { key: b('single') }));
      await both((c) => alice.range(c, { key: b('bar') })); // denied
      await both((c) => alice.range(c, { key: b('foo/'), range_end: b('fop') })); // wider than granted
      await both((c) => alice.range(c, { key: b('foo/a'), range_end: b('\0') }));
      await both((c) => alice.put(c, { key: b('foo/a'), value: b('2') })); // read only
      await both((c) => alice.put(c, { key: b('foo/w/a'), value: b('2') }));
      await both((c) => alice.put(c, { key: b('foo/w/a'), value: b('3'), prev_kv: true }));
      await both((c) => alice.del(c, { key: b('foo/w/'), range_end: b('foo/w0'), prev_kv: true }));
      await both((c) => alice.txn(c, { compare: [{ key: b('bar'), target: 0, result: 0, version: 0 }], success: [] })); // compare needs read
      await both((c) => alice.txn(c, { success: [{ request_put: { key: b('foo/w/t'), value: b('t') } }], failure: [{ request_put: { key: b('bar'), value: b('x') } }] })); // both branches checked
      await both((c) => as('bob').range(c, { key: b('foo/a') }));
      await both((c) => as().range(c, { key: b('foo/a') })); // no token
      await both((c) => c.call(c.kv, 'Range', { key: b('foo/a') }, (() => { const m = new grpc.Metadata(); m.set('token', 'garbage.token'); return m; })()));
      await both((c) => as('root').range(c, { key: b('\0'), range_end: b('\0'), keys_only: true }));
    });

    it('management needs root; a user may read itself', async () => {
      const alice = as('alice');
      await both((c) => alice.call(c, c.auth, 'UserAdd', { name: 'mallory', password: 'x' }));
      await both((c) => alice.call(c, c.auth, 'UserGet', { name: 'alice' }));
      await both((c) => alice.call(c, c.auth, 'UserGet', { name: 'bob' }));
      await both((c) => alice.call(c, c.auth, 'RoleGet', { role: 'reader' }));
      await both((c) => alice.call(c, c.auth, 'RoleGet', { role: 'root' }));
      await both((c) => alice.call(c, c.auth, 'AuthDisable', {}));
      await both((c) => as('root').call(c, c.auth, 'UserDelete', { name: 'root' })); // not while enabled
      await both((c) => as('root').call(c, c.auth, 'UserRevokeRole', { name: 'root', role: 'root' }));
      await both((c) => as('root').call(c, c.auth, 'RoleDelete', { role: 'root' }));
      await both((c) => as('root').call(c, c.auth, 'RoleGet', { role: 'root' }));
    });

    it('leases, maintenance and cluster under auth', async () => {
      const alice = as('alice');
      await both((c) => as('root').call(c, c.lease, 'LeaseGrant', { ID: 500, TTL: 60 }));
      await both((c) => as('root').put(c, { key: b('bar/l'), value: b('v'), lease: 500 }));
      await both((c) => alice.call(c, c.lease, 'LeaseRevoke', { ID: 500 })); // attached key not writable
      await both((c) => as('root').call(c, c.lease, 'LeaseRevoke', { ID: 500 }));
      // etcd 3.4 refuses these with UNKNOWN "auth: permission denied"; 3.5 (and this server) with PERMISSION_DENIED
      for (const method of ['Defragment', 'Hash']) {
        await assert.rejects(alice.call(pair.etcd, pair.etcd.maintenance, method, {}), (err: { details: string }) => /permission denied/.test(err.details));
        await assert.rejects(alice.call(pair.ours, pair.ours.maintenance, method, {}), { code: 7, details: 'etcdserver: permission denied' });
      }
      await sameCode(pair, (c) => alice.call(c, c.maintenance, 'Status', {}));
      await both((c) => as().call(c, c.lease, 'LeaseGrant', { ID: 501, TTL: 60 })); // no token
      await both((c) => alice.call(c, c.lease, 'LeaseGrant', { ID: 502, TTL: 60 }));
      await both((c) => as('root').put(c, { key: b('bar/m'), value: b('v'), lease: 502 }));
      // etcd 3.4.23 shows alice the names of keys she may not read; 3.4.26 and 3.5.9 (and this server) refuse
      await assert.rejects(alice.call(pair.ours, pair.ours.lease, 'LeaseTimeToLive', { ID: 502, keys: true }), { code: 7 });
      await both((c) => alice.call(c, c.lease, 'LeaseTimeToLive', { ID: 502 }).then((r: any) => ({ ...r, TTL: 0 }))); // without the keys: allowed
      await both((c) => alice.call(c, c.lease, 'LeaseTimeToLive', { ID: 501 }).then((r: any) => ({ ...r, TTL: 0 })));
      await both((c) => alice.call(c, c.lease, 'LeaseLeases', {}));
      await sameCode(pair, (c) => alice.call(c, c.kv, 'Compact', { revision: 3 }));
      await sameCode(pair, (c) => as().call(c, c.kv, 'Compact', { revision: 3 }));
      await sameCode(pair, (c) => alice.call(c, c.cluster, 'MemberList', {}));
      await sameCode(pair, (c) => as().call(c, c.maintenance, 'Alarm', {}));
    });

    it('a refused watch: created, canceled, with the reason', async () => {
      for (const user of ['alice', undefined]) {
        const e = grpcWatch(pair.etcd, md(pair.etcd, user));
        const o = grpcWatch(pair.ours, md(pair.ours, user));
        for (const [w, c] of [[e, pair.etcd], [o, pair.ours]] as const) {
          void c;
          w.send({ create_request: { key: b('bar') } });
          w.send({ create_request: { key: b('foo/'), range_end: b('foo0') } });
        }
        // etcd 3.4 echoes the requested id (0) in a refusal; 3.5 answers -1, as this server does
        const tidy = (rs: any[]) => rs.map((r) => (r.canceled && r.created ? { ...r, watch_id: 'refused' } : r));
        const [er, or] = await agreed(e, o, tidy);
        e.close();
        o.close();
        assert.deepEqual(byWatcher(tidy(or)), byWatcher(tidy(er)), `watches as ${user ?? 'nobody'}`);
        assert.equal(or[0].watch_id, '-1');
        assert.equal(or[0].cancel_reason, user ? 'rpc error: code = PermissionDenied desc = etcdserver: permission denied' : 'rpc error: code = InvalidArgument desc = etcdserver: user name is empty');
      }
    });

    it('over HTTP: authenticate, then the token as the raw Authorization header', async () => {
      const http = async (base: string, path: string, body: object, token?: string) => {
        const res = await fetch(base + path, { method: 'POST', body: JSON.stringify(body), headers: token ? { authorization: token } : {} });
        return { status: res.status, json: await res.json() };
      };
      const t = async (base: string) => ((await http(base, '/v3/auth/authenticate', { name: 'alice', password: 'alicepw' })).json as any).token as string;
      const [te, to] = [await t(pair.etcdServer.url), await t(pair.oursServer.url)];
      assert.ok(to);
      for (const [body, path] of [
        [{ key: Buffer.from('foo/a').toString('base64') }, '/v3/kv/range'],
        [{ key: Buffer.from('bar').toString('base64') }, '/v3/kv/range'],
      ] as const) {
        const e = await http(pair.etcdServer.url, path, body, te);
        const o = await http(pair.oursServer.url, path, body, to);
        assert.deepEqual({ s: o.status, j: normalize(o.json) }, { s: e.status, j: normalize(e.json) });
      }
      const noToken = [await http(pair.etcdServer.url, '/v3/kv/range', { key: 'Zm9v' }), await http(pair.oursServer.url, '/v3/kv/range', { key: 'Zm9v' })];
      assert.deepEqual(normalize(noToken[1]), normalize(noToken[0]));
      const bad = [await http(pair.etcdServer.url, '/v3/kv/range', { key: 'Zm9v' }, 'bad.token'), await http(pair.oursServer.url, '/v3/kv/range', { key: 'Zm9v' }, 'bad.token')];
      assert.deepEqual(normalize(bad[1]), normalize(bad[0]));
      assert.equal(bad[1].status, 401);
      // "Bearer " is accepted too (not by etcd)
      assert.equal((await http(pair.oursServer.url, '/v3/kv/range', { key: Buffer.from('foo/a').toString('base64') }, `Bearer ${to}`)).status, 200);
      // a refused watch over HTTP
      const w = httpWatch(pair.oursServer.url, [{ create_request: { key: Buffer.from('bar').toString('base64') } }], { authorization: to });
      const [r] = await w.waitFor(1);
      w.close();
      assert.deepEqual([r.result.created, r.result.canceled, r.result.watch_id, r.result.cancel_reason], [true, true, '-1', 'rpc error: code = PermissionDenied desc = etcdserver: permission denied']);
    });

    it('etcdctl --user: allowed and denied', async () => {
      for (const args of [
        ['--user', 'alice:alicepw', 'get', 'foo/a'],
        ['--user', 'alice:alicepw', 'get', 'bar'],
        ['--user', 'alice:wrong', 'get', 'foo/a'],
        ['--user', 'root:rootpw', 'put', 'foo/b', 'x'],
        ['--user', 'root:rootpw', 'user', 'list'],
        ['--user', 'root:rootpw', 'role', 'get', 'reader'],
        ['--user', 'root:rootpw', 'user', 'get', 'alice'],
        ['get', 'foo/a'],
      ]) {
        const [e, o] = [await etcdctl(pair.etcdServer.endpoint, args), await etcdctl(pair.oursServer.endpoint, args)];
        assert.equal(o.code, e.code, args.join(' '));
        assert.equal(ctlError(o), ctlError(e), args.join(' '));
        assert.equal(o.stdout, e.stdout, args.join(' '));
      }
    });

    it('password change invalidates tokens; disable turns auth off', async () => {
      await both((c) => as('root').call(c, c.auth, 'UserChangePassword', { name: 'alice', password: 'new' }));
      await both((c) => as('alice').range(c, { key: b('foo/a') })); // the old token is gone
      await both((c) => as('root').call(c, c.auth, 'AuthDisable', {}));
      await both((c) => as().range(c, { key: b('bar') }));
      await both((c) => auth(c, 'Authenticate', { name: 'alice', password: 'new' }));
      await both((c) => auth(c, 'UserDelete', { name: 'bob' }));
      await both((c) => auth(c, 'RoleDelete', { role: 'reader' }));
      await both((c) => auth(c, 'UserGet', { name: 'alice' }));
    });
  });
}
