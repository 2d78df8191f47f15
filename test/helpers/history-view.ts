// One history of etcd requests (puts, deletes, txns, leases, a compaction,
// users, roles, auth on) and everything a client can read back of a store
// that holds it: the keys at every revision since the compaction, the watch
// events with prev_kv, leases, users, roles and who may log in. Two stores
// that show the same view hold the same data, revisions included.
import * as grpc from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import { b, type EtcdGrpcClient } from './grpc-client';

export const ROOT_PW = 'rootpw';
export const ALL = { key: Buffer.from([0]), range_end: Buffer.from([0]) };

/** Puts, deletes, txns, leases, a compaction, more writes, users, roles, auth on. */
export async function writeHistory(c: EtcdGrpcClient): Promise<void> {
  for (let i = 0; i < 20; i++) await c.put({ key: b(`k${i % 7}`), value: b(`v${i}`) });
  await c.put({ key: Buffer.from([0x00, 0xff, 0x10]), value: b('binary key') });
  await c.put({ key: b('empty'), value: Buffer.alloc(0) });
  await c.put({ key: b('big'), value: Buffer.alloc(200_000, 7) }); // a value over many pages
  await c.deleteRange({ key: b('k1') });
  await c.txn({ compare: [], success: [{ request_put: { key: b('t1'), value: b('a') } }, { request_put: { key: b('t2'), value: b('b') } }, { request_delete_range: { key: b('k2') } }], failure: [] });
  const l1 = await c.call(c.lease, 'LeaseGrant', { TTL: 600, ID: 0 });
  await c.put({ key: b('leased1'), value: b('x'), lease: l1.ID });
  await c.put({ key: b('leased2'), value: b('y'), lease: l1.ID });
  await c.call(c.lease, 'LeaseGrant', { TTL: 900, ID: 0 }); // no keys
  const rev = Number((await c.range({ key: b('k0') })).header.revision);
  await c.compact({ revision: rev - 4 });
  for (let i = 0; i < 5; i++) await c.put({ key: b(`k${i}`), value: b(`after${i}`) });
  await c.put({ key: b('big'), value: Buffer.alloc(5000, 9) });
  await c.deleteRange({ key: b('t'), range_end: b('u') });
  await c.call(c.auth, 'UserAdd', { name: 'root', password: ROOT_PW });
  await c.call(c.auth, 'RoleAdd', { name: 'r1' });
  await c.call(c.auth, 'RoleGrantPermission', { name: 'r1', perm: { permType: 2, key: b('/x'), range_end: b('/y') } });
  await c.call(c.auth, 'RoleGrantPermission', { name: 'r1', perm: { permType: 0, key: b('/z'), range_end: Buffer.alloc(0) } });
  await c.call(c.auth, 'UserAdd', { name: 'alice', password: 'alicepw' });
  await c.call(c.auth, 'UserGrantRole', { user: 'alice', role: 'r1' });
  await c.call(c.auth, 'UserAdd', { name: 'bob', password: '', options: { no_password: true } });
  await c.call(c.auth, 'UserGrantRole', { user: 'root', role: 'root' });
  await c.call(c.auth, 'AuthEnable', {});
}

export async function rootToken(c: EtcdGrpcClient): Promise<grpc.Metadata> {
  const { token } = await c.call(c.auth, 'Authenticate', { name: 'root', password: ROOT_PW });
  const md = new grpc.Metadata();
  md.set('token', token);
  return md;
}

const digest = (v: Buffer) => (v.length > 64 ? `sha1:${createHash('sha1').update(v).digest('hex')}:${v.length}` : v.toString('hex'));
export const kvView = (kv: any) => ({ key: kv.key.toString('hex'), create: kv.create_revision, mod: kv.mod_revision, version: kv.version, value: digest(kv.value), lease: kv.lease });

/** Everything a client can see of the store, read as root. */
export async function everything(c: EtcdGrpcClient): Promise<any> {
  const md = await rootToken(c);
  const head = await c.call(c.kv, 'Range', ALL, md);
  const revision = Number(head.header.revision);
  const compact = Number((await c.call(c.maintenance, 'HashKV', { revision: 0 }, md)).compact_revision);
  const states: Record<number, unknown> = {};
  for (let rev = Math.max(compact, 1); rev <= revision; rev++) states[rev] = (await c.call(c.kv, 'Range', { ...ALL, revision: rev }, md)).kvs.map(kvView);
  const below = await c.outcome(c.kv, 'Range', { ...ALL, revision: compact - 1 }, md);
  const leases: unknown[] = [];
  for (const l of (await c.call(c.lease, 'LeaseLeases', {}, md)).leases) {
    const t = await c.call(c.lease, 'LeaseTimeToLive', { ID: l.ID, keys: true }, md);
    leases.push({ id: t.ID, granted: t.grantedTTL, keys: t.keys.map((k: Buffer) => k.toString()).sort() });
  }
  const users: Record<string, unknown> = {};
  for (const u of (await c.call(c.auth, 'UserList', {}, md)).users) users[u] = (await c.call(c.auth, 'UserGet', { name: u }, md)).roles;
  const roles: Record<string, unknown> = {};
  for (const r of (await c.call(c.auth, 'RoleList', {}, md)).roles) roles[r] = (await c.call(c.auth, 'RoleGet', { role: r }, md)).perm.map((p: any) => ({ type: p.permType, key: p.key.toString(), end: p.range_end.toString('hex') }));
  // etcd 3.4 has no AuthStatus: auth is on when an anonymous read is refused
  const anonymous = await c.outcome(c.kv, 'Range', ALL);
  const logins: Record<string, string> = {};
  for (const [name, password] of [['alice', 'alicepw'], ['alice', 'wrong'], ['bob', '']]) {
    const r = await c.outcome(c.auth, 'Authenticate', { name, password });
    logins[`${name}:${password}`] = 'ok' in r ? 'ok' : r.err.details;
  }
  const events = await watchAll(c, md, compact + 1, revision);
  return { revision, compact, states, below: 'err' in below ? below.err.code : 'served', leases: leases.sort((a: any, b: any) => (a.id < b.id ? -1 : 1)), users, roles, anonymous: 'err' in anonymous ? anonymous.err.details : 'served', logins, events };
}

/** Every event from `from` through `to`, with prev_kv. */
function watchAll(c: EtcdGrpcClient, md: grpc.Metadata, from: number, to: number): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const call = (c.watch as any).Watch(md) as grpc.ClientDuplexStream<object, any>;
    const events: unknown[] = [];
    call.on('data', (res) => {
      for (const e of res.events) events.push({ type: e.type, kv: kvView(e.kv), prev: e.prev_kv ? kvView(e.prev_kv) : null });
      const last = res.events[res.events.length - 1];
      if (last && Number(last.kv.mod_revision) >= to) {
        call.cancel();
        resolve(events);
      }
    });
    call.on('error', (err: grpc.ServiceError) => (err.code === grpc.status.CANCELLED ? undefined : reject(err)));
    call.write({ create_request: { ...ALL, start_revision: from, prev_kv: true } });
  });
}

/** A view with each lease id replaced by its granted TTL (ids are random; the TTLs here differ). */
export function leasesByTtl(view: any): any {
  const ttl = new Map<string, string>(view.leases.map((l: any) => [String(l.id), `ttl ${l.granted}`]));
  const out = JSON.parse(JSON.stringify(view, (k, v) => (k === 'lease' && v !== '0' ? ttl.get(String(v)) : k === 'id' ? ttl.get(String(v)) : v)));
  out.leases.sort((a: any, b: any) => a.granted.localeCompare(b.granted));
  return out;
}

