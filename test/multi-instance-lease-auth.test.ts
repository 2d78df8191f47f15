// Leases and auth shared by several instances on one MariaDB (and PostgreSQL) database: a
// keepalive sent to any instance keeps the lease for all, each expiry happens
// once (one DELETE per key, whichever instance watches), TTLs survive a
// restart of every instance, a token from one instance works on another, and
// auth changes made through one instance hold on the others. Also: the member
// list shows every instance, and Hash/HashKV agree across instances.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { spawnAdapter, type SpawnedAdapter } from './helpers/spawn';
import { b, EtcdGrpcClient } from './helpers/grpc-client';
import { grpcWatch } from './helpers/watch-client';
import { sharedBackendsUnderTest, type FreshBackend } from './helpers/backends';
import { waitFor } from './helpers/ports';
import { etcdctl } from './helpers/etcdctl';

const POLL = '50ms';

for (const shared of sharedBackendsUnderTest()) {
describe(`leases and auth across instances on one ${shared.label}`, () => {
  let db: FreshBackend;
  let servers: SpawnedAdapter[] = [];
  let clients: EtcdGrpcClient[] = [];
  const start = async () => {
    servers = await Promise.all([0, 1, 2].map((i) => spawnAdapter(['--backend', db.url, '--name', `sidecar-${i}`, '--poll-interval', POLL])));
    clients = servers.map((s) => new EtcdGrpcClient(s.endpoint));
  };
  const stop = async () => {
    for (const c of clients) c.close();
    await Promise.all(servers.map((s) => s.stop()));
  };
  before(async () => {
    db = await shared.create();
    await start();
  });
  after(async () => {
    await stop();
    await db?.drop();
  });

  it('a keepalive through one instance keeps the lease for all; expiry happens once; watchers everywhere see one DELETE per key', async () => {
    const [a, bb, c] = clients;
    await a.call(a.lease, 'LeaseGrant', { ID: 10, TTL: 2 });
    await a.call(a.lease, 'LeaseGrant', { ID: 11, TTL: 2 });
    for (const k of ['x/1', 'x/2', 'x/3']) await bb.put({ key: b(k), value: b('v'), lease: 10 });
    await c.put({ key: b('x/kept'), value: b('v'), lease: 11 });
    const watches = clients.map((cl) => {
      const w = grpcWatch(cl);
      w.send({ create_request: { key: b('x/'), range_end: b('x0') } });
      return w;
    });
    await Promise.all(watches.map((w) => w.waitFor(1)));
    // keep 11 alive through instance C only, all along
    let keeping = true;
    const keeper = (async () => {
      while (keeping) {
        await c.keepAliveOnce('11');
        await new Promise((r) => setTimeout(r, 300));
      }
    })();
    try {
      await waitFor('lease 10 to expire', async () => {
        const left = await a.range({ key: b('x/'), range_end: b('x0') });
        return left.kvs.length === 1 ? true : undefined;
      }, 30000);
      const left = await a.range({ key: b('x/'), range_end: b('x0') });
      assert.deepEqual(left.kvs.map((kv: any) => kv.key.toString()), ['x/kept'], 'lease 10 expired, 11 kept alive through another instance');
      const deletesOf = (w: (typeof watches)[number]) => w.responses.flatMap((r: any) => r.events ?? []).filter((e: any) => e.type === 1);
      await waitFor('every watcher to see the deletions', async () => (watches.every((w) => deletesOf(w).length >= 3) ? true : undefined), 30000);
      for (const [i, w] of watches.entries()) {
        const deletes = deletesOf(w);
        assert.deepEqual(deletes.map((e: any) => e.kv.key.toString()).sort(), ['x/1', 'x/2', 'x/3'], `instance ${i}: one DELETE per key`);
        assert.equal(new Set(deletes.map((e: any) => e.kv.mod_revision)).size, 1, `instance ${i}: in one revision`);
        w.close();
      }
    } finally {
      keeping = false;
      await keeper;
    }
    const ttl = await bb.call(bb.lease, 'LeaseTimeToLive', { ID: 10 });
    assert.equal(ttl.TTL, '-1', 'the expired lease is gone for every instance');
  });

  it('a restart of every instance does not reset the time a lease has left', async () => {
    const granted = Date.now();
    await clients[0].call(clients[0].lease, 'LeaseGrant', { ID: 20, TTL: 30 });
    // let some of the TTL pass, then restart everything
    await new Promise((r) => setTimeout(r, 3000));
    await stop();
    await start();
    const ttl = Number((await clients[1].call(clients[1].lease, 'LeaseTimeToLive', { ID: 20 })).TTL);
    const elapsed = (Date.now() - granted) / 1000;
    assert.ok(ttl <= 27, `remaining TTL after restart: ${ttl} (not reset to 30)`);
    assert.ok(ttl >= 30 - elapsed - 1, `remaining TTL after restart: ${ttl} (${elapsed.toFixed(1)} s since the grant)`);
  });

  it('a token from one instance works on another; auth changes on one hold on all', async () => {
    const [a, bb, c] = clients;
    await a.call(a.auth, 'UserAdd', { name: 'root', password: 'pw' });
    await a.call(a.auth, 'UserGrantRole', { user: 'root', role: 'root' });
    await a.call(a.auth, 'UserAdd', { name: 'carol', password: 'carolpw' });
    await a.call(a.auth, 'AuthEnable', {});
    // wait for every instance to see auth on
    for (const [i, cl] of [a, bb, c].entries()) {
      await waitFor(`auth on at instance ${i}`, async () => ((await cl.range({ key: b('k') }).catch((e) => e.code)) === 3 ? true : undefined));
    }
    const token = (await c.call(c.auth, 'Authenticate', { name: 'carol', password: 'carolpw' })).token as string;
    const m = new grpc.Metadata();
    m.set('token', token);
    await assert.rejects(a.call(a.kv, 'Range', { key: b('k') }, m), { code: 7 }, 'instance A accepts the token (and denies carol, who has no role)');
    const rootToken = (await a.call(a.auth, 'Authenticate', { name: 'root', password: 'pw' })).token as string;
    const rm = new grpc.Metadata();
    rm.set('token', rootToken);
    await bb.call(bb.kv, 'Range', { key: b('k') }, rm); // a token from A on B
    // a password change through B invalidates carol's token on A and C
    await bb.call(bb.auth, 'UserChangePassword', { name: 'carol', password: 'new' }, rm);
    await waitFor('the old token refused on A', async () => ((await a.call(a.kv, 'Range', { key: b('k') }, m).catch((e) => e.code)) === 16 ? true : undefined));
    // auth disabled through C is off on A and B
    await c.call(c.auth, 'AuthDisable', {}, rm);
    await waitFor('auth off on A', async () => ((await a.range({ key: b('k') }).then(() => 'ok', (e) => e.code)) === 'ok' ? true : undefined));
    await waitFor('auth off on B', async () => ((await bb.range({ key: b('k') }).then(() => 'ok', (e) => e.code)) === 'ok' ? true : undefined));
  });

  it('member list shows every instance; Hash and HashKV agree across instances', async () => {
    const out = await etcdctl(servers[0].endpoint, ['member', 'list']);
    for (let i = 0; i < 3; i++) assert.match(out.stdout, new RegExp(`sidecar-${i}`));
    for (const url of servers.map((s) => s.url)) assert.ok(out.stdout.includes(url), `member list names ${url}`);
    await clients[0].put({ key: b('h/1'), value: b('1') });
    const rev = Number((await clients[1].range({ key: b('h/1') })).header.revision);
    const hashes = await Promise.all(clients.map((cl) => cl.call(cl.maintenance, 'HashKV', { revision: rev })));
    assert.equal(new Set(hashes.map((h: any) => h.hash)).size, 1, `HashKV at ${rev} is the same everywhere`);
    await clients[2].put({ key: b('h/2'), value: b('2') });
    const later = await clients[0].call(clients[0].maintenance, 'HashKV', { revision: rev + 1 });
    assert.notEqual(later.hash, hashes[0].hash, 'the hash changes with the data');
  });
});

describe(`auth tokens across instances on one ${shared.label}: valid from their last use, wherever used`, () => {
  const TTL_S = 3;
  let db: FreshBackend;
  let servers: SpawnedAdapter[] = [];
  let clients: EtcdGrpcClient[] = [];
  before(async () => {
    db = await shared.create();
    servers = await Promise.all([0, 1].map((i) => spawnAdapter(['--backend', db.url, '--name', `t-${i}`, '--poll-interval', POLL, '--auth-token-ttl', String(TTL_S)])));
    clients = servers.map((s) => new EtcdGrpcClient(s.endpoint));
  });
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(servers.map((s) => s.stop()));
    await db?.drop();
  });

  it('a token in use on one instance outlives its TTL on the other; left unused, it expires', async () => {
    const [a, bb] = clients;
    await a.call(a.auth, 'UserAdd', { name: 'root', password: 'pw' });
    await a.call(a.auth, 'UserGrantRole', { user: 'root', role: 'root' });
    await a.call(a.auth, 'AuthEnable', {});
    for (const [i, cl] of clients.entries()) {
      await waitFor(`auth on at instance ${i}`, async () => ((await cl.range({ key: b('k') }).catch((e) => e.code)) === 3 ? true : undefined));
    }
    const token = (await a.call(a.auth, 'Authenticate', { name: 'root', password: 'pw' })).token as string;
    const md = new grpc.Metadata();
    md.set('token', token);
    // Used on A, every few hundred ms, for three TTLs: never refused.
    const issued = Date.now();
    while (Date.now() - issued < 3 * TTL_S * 1000) {
      await a.call(a.kv, 'Range', { key: b('k') }, md);
      await new Promise((r) => setTimeout(r, 300));
    }
    // B has never seen it used, and takes it: its last use on A was moments ago.
    await bb.call(bb.kv, 'Range', { key: b('k') }, md);
    // Left alone, tokens expire everywhere. A probe is a use, so each token issued on B is tried once, on A.
    const unused: string[] = [];
    for (let i = 0; i < 200; i++) unused.push((await bb.call(bb.auth, 'Authenticate', { name: 'root', password: 'pw' })).token as string);
    await waitFor('an unused token to expire', async () => {
      const probe = new grpc.Metadata();
      const t = unused.shift();
      if (!t) throw new Error('every probe token was used before any expired');
      probe.set('token', t);
      return (await a.call(a.kv, 'Range', { key: b('k') }, probe).then(() => 'ok', (e) => e.code)) === 16 ? true : undefined;
    }, 30000);
  });
});
}
