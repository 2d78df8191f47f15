// Names that are also JavaScript object keys ("__proto__", "constructor",
// "toString"...) are plain names to etcd: users, roles and enum values named
// so must behave as any other name. Against etcd 3.4, over gRPC and HTTP.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { b, type EtcdGrpcClient } from './helpers/grpc-client';
import { same, startPair, type Pair } from './helpers/pair';
import { normalize } from './helpers/normalize';

const NAMES = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'prototype'];
const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('names that are JavaScript object keys, against etcd 3.4', () => {
  let pair: Pair;
  before(async () => {
    pair = await startPair();
  });
  after(async () => {
    await pair?.close();
  });
  const auth = (c: EtcdGrpcClient, method: string, req: object, md?: grpc.Metadata) => c.call(c.auth, method, req, md);
  const both = (fn: (c: EtcdGrpcClient) => Promise<unknown>) => same(pair, fn);

  async function http(path: string, body: object, token?: string): Promise<void> {
    const answer = async (url: string) => {
      const res = await fetch(`${url}/v3${path}`, { method: 'POST', body: JSON.stringify(body), headers: token ? { authorization: token } : {} });
      return { status: res.status, json: normalize(await res.json()) };
    };
    assert.deepEqual(await answer(pair.oursServer.url), await answer(pair.etcdServer.url), `${path} ${JSON.stringify(body)}`);
  }

  it('users and roles named like object keys, before auth is on', async () => {
    for (const name of NAMES) {
      await both((c) => auth(c, 'UserGet', { name }));
      await both((c) => auth(c, 'RoleGet', { role: name }));
      await both((c) => auth(c, 'UserDelete', { name }));
      await both((c) => auth(c, 'UserAdd', { name, password: 'pw' }));
      await both((c) => auth(c, 'UserAdd', { name, password: 'pw' })); // exists
      await both((c) => auth(c, 'RoleAdd', { name }));
      await both((c) => auth(c, 'RoleGrantPermission', { name, perm: { permType: 0, key: b('k/'), range_end: b('k0') } }));
      await both((c) => auth(c, 'UserGrantRole', { user: name, role: name }));
      await both((c) => auth(c, 'UserGet', { name }));
      await both((c) => auth(c, 'RoleGet', { role: name }));
      await http('/auth/user/get', { name });
      await http('/auth/role/get', { role: name });
    }
    await both((c) => auth(c, 'UserList', {}));
    await both((c) => auth(c, 'RoleList', {}));
  });

  it('authenticating as them once auth is on; tokens work', async () => {
    await both((c) => auth(c, 'UserAdd', { name: 'root', password: 'rootpw' }));
    await both((c) => auth(c, 'UserGrantRole', { user: 'root', role: 'root' }));
    await both((c) => auth(c, 'AuthEnable', {}));
    for (const name of NAMES) {
      await both((c) => auth(c, 'Authenticate', { name, password: 'wrong' }));
      await http('/auth/authenticate', { name, password: 'wrong' });
      for (const c of [pair.etcd, pair.ours]) {
        const { token } = await auth(c, 'Authenticate', { name, password: 'pw' });
        const md = new grpc.Metadata();
        md.set('token', token);
        await c.call(c.kv, 'Range', { key: b('k/1') }, md); // the role's permission holds
      }
    }
    await both((c) => auth(c, 'Authenticate', { name: 'isPrototypeOf', password: 'pw' })); // no such user
    const root = new Map<EtcdGrpcClient, grpc.Metadata>();
    for (const c of [pair.etcd, pair.ours]) {
      const md = new grpc.Metadata();
      md.set('token', (await auth(c, 'Authenticate', { name: 'root', password: 'rootpw' })).token);
      root.set(c, md);
    }
    for (const name of NAMES) {
      await both((c) => auth(c, 'UserRevokeRole', { name, role: name }, root.get(c)));
      await both((c) => auth(c, 'RoleDelete', { role: name }, root.get(c)));
      await both((c) => auth(c, 'UserDelete', { name }, root.get(c)));
    }
    await both((c) => auth(c, 'UserList', {}, root.get(c)));
    await both((c) => auth(c, 'AuthDisable', {}, root.get(c)));
  });

  it('enum values named like object keys are unknown values', async () => {
    for (const name of NAMES) {
      await http('/kv/range', { key: b64('k'), sort_order: name });
      await http('/kv/txn', { compare: [{ key: b64('k'), target: name, result: 'EQUAL' }] });
    }
  });
});
