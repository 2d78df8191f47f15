// Leases (etcd-facts section 5) against a real etcd 3.4, over gRPC, etcdctl
// and the HTTP gateway: grant (chosen ids, minimum and too-large TTLs), put
// with leases, moving keys between leases, revoke (all keys in one revision),
// keepalive, time-to-live, listing, and expiry.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { b, type EtcdGrpcClient } from './helpers/grpc-client';
import { same, startPair, type Pair } from './helpers/pair';
import { byWatcher, grpcWatch } from './helpers/watch-client';
import { etcdctl, parseJsonBig } from './helpers/etcdctl';
import { normalize } from './helpers/normalize';
import { backendsUnderTest } from './helpers/backends';
import { waitFor } from './helpers/ports';

/** TTL values depend on when they are read: check them loosely, then compare the rest. */
const withoutTtl = (r: any) => ({ ...r, TTL: undefined });

for (const backend of backendsUnderTest()) {
  describe(`Lease against etcd 3.4 (${backend})`, () => {
    let pair: Pair;
    before(async () => {
      pair = await startPair({ backend });
    });
    after(async () => {
      await pair?.close();
    });
    const both = (fn: (c: EtcdGrpcClient) => Promise<unknown>, ignore?: string[]) => same(pair, fn, ignore);
    const grant = (c: EtcdGrpcClient, req: object) => c.call(c.lease, 'LeaseGrant', req);

    it('grant: chosen ids, the minimum TTL, too large TTLs, existing ids', async () => {
      await both((c) => grant(c, { ID: 100, TTL: 60 }));
      await both((c) => grant(c, { ID: 100, TTL: 60 })); // exists
      await both((c) => grant(c, { ID: 101, TTL: 1 })); // raised to the minimum
      await both((c) => grant(c, { ID: 102, TTL: 0 }));
      await both((c) => grant(c, { ID: 103, TTL: -5 }));
      // Raised to the minimum (2 s): left alone they would expire during later tests, at a moment
      // that differs between the servers by a check interval. Revoked now, so later lists compare.
      await both((c) => c.call(c.lease, 'LeaseRevoke', { ID: 102 }));
      await both((c) => c.call(c.lease, 'LeaseRevoke', { ID: 103 }));
      await both((c) => grant(c, { ID: 106, TTL: 60 }));
      await both((c) => grant(c, { ID: 104, TTL: '9000000001' }));
      await both((c) => grant(c, { ID: 105, TTL: '9000000000' }));
      await both((c) => grant(c, { ID: '-7', TTL: 60 }));
      await both((c) => grant(c, { ID: '7587862072817366026', TTL: 60 }));
      const chosen = await both((c) => grant(c, { TTL: 60 }), ['ID']);
      assert.ok(BigInt(chosen.ID) > 0n, 'a server-chosen id is positive');
      // its id differs between the servers: revoke it on each, so later lists compare
      const etcdChosen = (await pair.etcd.call(pair.etcd.lease, 'LeaseLeases', {})).leases.map((l: any) => l.ID).filter((id: string) => BigInt(id) > 1000n && id !== '7587862072817366026');
      for (const id of etcdChosen) await pair.etcd.call(pair.etcd.lease, 'LeaseRevoke', { ID: id });
      await pair.ours.call(pair.ours.lease, 'LeaseRevoke', { ID: chosen.ID });
    });

    it('put with a lease, move a key between leases, ignore_lease, time-to-live with keys', async () => {
      await both((c) => c.put({ key: b('l/a'), value: b('1'), lease: 100 }));
      await both((c) => c.put({ key: b('l/b'), value: b('2'), lease: 100 }));
      await both((c) => c.put({ key: b('l/c'), value: b('3'), lease: 101 }));
      await both((c) => c.put({ key: b('l/b'), value: b('2b'), lease: 105 })); // moves to 105
      await both((c) => c.put({ key: b('l/c'), value: b('3b'), ignore_lease: true })); // keeps 101
      await both((c) => c.put({ key: b('l/x'), value: b('x'), lease: 999 })); // unknown
      await both((c) => c.range({ key: b('l/'), range_end: b('l0') }));
      for (const id of [100, 101, 105, 999]) {
        const r = await both((c) => c.call(c.lease, 'LeaseTimeToLive', { ID: id, keys: true }).then(withoutTtl));
        void r;
      }
      const t = (await pair.ours.call(pair.ours.lease, 'LeaseTimeToLive', { ID: 100 })) as any;
      assert.ok(Number(t.TTL) >= 55 && Number(t.TTL) <= 60, `remaining TTL ${t.TTL}`);
      await both((c) => c.call(c.lease, 'LeaseTimeToLive', { ID: 999 }));
      // Lease 101 has the minimum TTL (2 s): left alone, it expires while a later test runs, and when
      // its expiry falls in the same check as another lease's, etcd revokes the two in either order.
      await both((c) => c.call(c.lease, 'LeaseRevoke', { ID: 101 }));
    });

    it('revoke deletes every attached key in one revision; watchers see the deletes together', async () => {
      const e = grpcWatch(pair.etcd);
      const o = grpcWatch(pair.ours);
      for (const w of [e, o]) w.send({ create_request: { key: b('l/'), range_end: b('l0') } });
      await Promise.all([e.waitFor(1), o.waitFor(1)]);
      await both((c) => c.put({ key: b('l/d'), value: b('4'), lease: 105 }));
      await both((c) => c.call(c.lease, 'LeaseRevoke', { ID: 105 }));
      await both((c) => c.call(c.lease, 'LeaseRevoke', { ID: 105 })); // gone
      await both((c) => c.call(c.lease, 'LeaseRevoke', { ID: 106 })); // no keys: no revision
      await both((c) => c.range({ key: b('l/'), range_end: b('l0') }));
      // created, then the put and the two deletions of the revoke (one response each server)
      const deletes = (rs: any[]) => rs.flatMap((r) => r.events ?? []).filter((ev: any) => ev.type === 1).length;
      await waitFor('both watchers to see the revoke', async () => (deletes(e.responses) >= 2 && deletes(o.responses) >= 2 ? true : undefined));
      const [er, or] = [e.responses, o.responses];
      e.close();
      o.close();
      assert.deepEqual(byWatcher(or), byWatcher(er));
      const revoke = or.find((r) => r.events?.length === 2);
      assert.ok(revoke && revoke.events.every((ev: any) => ev.type === 1), 'both keys deleted in one response');
    });

    it('keepalive answers the granted TTL; an unknown lease gets TTL 0', async () => {
      await both((c) => c.keepAliveOnce(100));
      await both((c) => c.keepAliveOnce(4242));
      await both((c) => c.call(c.lease, 'LeaseLeases', {}));
    });

    it('expiry: keys on a 2-second lease go in one revision; keepalives keep others', async () => {
      await both((c) => grant(c, { ID: 200, TTL: 2 }));
      await both((c) => grant(c, { ID: 201, TTL: 2 }));
      for (const k of ['e/1', 'e/2']) await both((c) => c.put({ key: b(k), value: b('v'), lease: 200 }));
      await both((c) => c.put({ key: b('e/kept'), value: b('v'), lease: 201 }));
      const e = grpcWatch(pair.etcd);
      const o = grpcWatch(pair.ours);
      for (const w of [e, o]) w.send({ create_request: { key: b('e/'), range_end: b('e0') } });
      // 201 kept alive on both all along; 200 left to expire
      let keeping = true;
      const keeper = (async () => {
        while (keeping) {
          await Promise.all([pair.etcd.keepAliveOnce(201), pair.ours.keepAliveOnce(201)]);
          await new Promise((r) => setTimeout(r, 300));
        }
      })();
      const deletes = (rs: any[]) => rs.flatMap((r) => r.events ?? []).filter((ev: any) => ev.type === 1).length;
      try {
        await waitFor('lease 200 to expire on both servers', async () => (deletes(e.responses) >= 2 && deletes(o.responses) >= 2 ? true : undefined), 30000);
      } finally {
        keeping = false;
        await keeper;
      }
      const [er, or] = [e.responses, o.responses];
      e.close();
      o.close();
      assert.deepEqual(normalize((await pair.ours.range({ key: b('e/'), range_end: b('e0') })).kvs.map((kv: any) => kv.key.toString())), ['e/kept']);
      assert.deepEqual(byWatcher(or).events, byWatcher(er).events);
      const expiry = or.find((r) => r.events?.length);
      assert.equal(expiry.events.length, 2, 'both keys of the expired lease in one response');
      await both((c) => c.call(c.lease, 'LeaseTimeToLive', { ID: 200 }));
      await both((c) => c.range({ key: b('e/'), range_end: b('e0'), keys_only: true }));
      // 201 would expire during a later test, at a moment that differs between the servers
      await both((c) => c.call(c.lease, 'LeaseRevoke', { ID: 201 }));
    });

    it('etcdctl lease grant, timetolive, keep-alive, list, revoke', async () => {
      const ctl = async (args: string[]) => [await etcdctl(pair.etcdServer.endpoint, args), await etcdctl(pair.oursServer.endpoint, args)];
      const [ge, go] = await ctl(['lease', 'grant', '30', '-w', 'json']);
      const ids = [parseJsonBig(ge.stdout).ID, parseJsonBig(go.stdout).ID];
      assert.deepEqual(normalize({ ...parseJsonBig(go.stdout), ID: 0 }, ['revision']), normalize({ ...parseJsonBig(ge.stdout), ID: 0 }, ['revision']));
      const hex = ids.map((id) => BigInt(id).toString(16).padStart(16, '0'));
      const each = async (args: (id: string) => string[]) =>
        Promise.all([etcdctl(pair.etcdServer.endpoint, args(hex[0])), etcdctl(pair.oursServer.endpoint, args(hex[1]))]);
      const [pe, po] = await each((id) => ['put', 'ctl/a', 'v', '--lease', id]);
      assert.equal(po.code, pe.code);
      const [te, to] = await each((id) => ['lease', 'timetolive', id, '--keys']);
      assert.equal(to.stdout.replace(hex[1], 'ID').replace(/remaining\(\d+s\)/, 'remaining'), te.stdout.replace(hex[0], 'ID').replace(/remaining\(\d+s\)/, 'remaining'));
      const [ke, ko] = await each((id) => ['lease', 'keep-alive', '--once', id]);
      assert.equal(ko.stdout.replace(hex[1], 'ID'), ke.stdout.replace(hex[0], 'ID'));
      const [le, lo] = await ctl(['lease', 'list']);
      assert.equal(lo.code, le.code);
      assert.match(lo.stdout, new RegExp(hex[1]));
      const [re, ro] = await each((id) => ['lease', 'revoke', id]);
      assert.equal(ro.stdout.replace(hex[1], 'ID'), re.stdout.replace(hex[0], 'ID'));
      const [ue, uo] = await each(() => ['lease', 'revoke', 'abcdef']);
      assert.equal(uo.stderr.split('\n').find((l) => l.startsWith('Error')), ue.stderr.split('\n').find((l) => l.startsWith('Error')));
    });

    it('over HTTP: grant with TTL and ID, the /v3/kv/lease aliases, the keepalive stream', async () => {
      const http = async (base: string, path: string, body: object | string) => {
        const res = await fetch(base + path, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body) });
        return { status: res.status, text: await res.text() };
      };
      const bothHttp = async (path: string, body: object | string) => {
        const e = await http(pair.etcdServer.url, path, body);
        const o = await http(pair.oursServer.url, path, body);
        const parse = (t: string) => t.trim().split('\n').map((l) => JSON.parse(l));
        assert.equal(o.status, e.status, `${path}: ${o.text}`);
        assert.deepEqual(normalize(parse(o.text)), normalize(parse(e.text)), path);
        return parse(o.text);
      };
      await bothHttp('/v3/lease/grant', { TTL: 60, ID: 300 });
      await bothHttp('/v3/lease/grant', { TTL: '60', ID: '300' });
      await bothHttp('/v3/kv/put', { key: Buffer.from('h/l').toString('base64'), value: 'dg==', lease: 300 });
      await bothHttp('/v3/lease/keepalive', { ID: 300 });
      await bothHttp('/v3/lease/keepalive', '{"ID":300}{"ID":301}');
      const ttl = await bothHttp('/v3/kv/lease/timetolive', { ID: 999, keys: true });
      void ttl;
      await bothHttp('/v3/lease/leases', {});
      await bothHttp('/v3/kv/lease/leases', {});
      await bothHttp('/v3/kv/lease/revoke', { ID: 300 });
      await bothHttp('/v3/lease/revoke', { ID: 300 });
      await bothHttp('/v3/kv/range', { key: Buffer.from('h/l').toString('base64') });
    });
  });
}
