// Maintenance beyond what the differential suites compare: the space quota
// and its NOSPACE alarm, the Snapshot stream's framing, Status with the real size.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { startServer } from '../src/index';
import { b, EtcdGrpcClient } from './helpers/grpc-client';
import { etcdctl } from './helpers/etcdctl';
import { backendsUnderTest, freshBackend } from './helpers/backends';

const NOSPACE = { code: 8, details: 'etcdserver: mvcc: database space exceeded' };

for (const kind of backendsUnderTest()) {
  describe(`maintenance (${kind})`, () => {
    it('past --quota-backend-bytes: the NOSPACE alarm, writes refused, deletes allowed, disarm', async () => {
      const fresh = await freshBackend(kind);
      const server = await startServer({ backend: fresh.url, quotaBackendBytes: 600 * 1024 });
      const c = new EtcdGrpcClient(server.endpoint);
      const value = Buffer.alloc(48 * 1024, 'q');
      let refused: unknown = null;
      for (let i = 0; i < 60 && !refused; i++) refused = await c.put({ key: b(`q/${i}`), value }).then(() => null, (e) => e);
      assert.deepEqual(refused, NOSPACE, 'a put past the quota is refused');
      // the alarm is up: every put, a txn that puts and a lease grant are refused; reads and deletes are not
      await assert.rejects(c.put({ key: b('small'), value: b('x') }), NOSPACE);
      await assert.rejects(c.txn({ success: [{ request_put: { key: b('t'), value: b('x') } }] }), NOSPACE);
      await assert.rejects(c.call(c.lease, 'LeaseGrant', { TTL: 10 }), NOSPACE);
      await c.range({ key: b('q/'), range_end: b('q0'), count_only: true });
      await c.txn({ success: [{ request_delete_range: { key: b('q/0') } }] });
      const alarms = await c.call(c.maintenance, 'Alarm', {});
      assert.deepEqual(alarms.alarms.map((a: any) => a.alarm), ['NOSPACE'].map(() => 1));
      const list = await etcdctl(server.endpoint, ['alarm', 'list']);
      assert.match(list.stdout, /^memberID:\d+ alarm:NOSPACE\s*$/m);
      // as etcd 3.4: etcdctl endpoint health still passes, /health does not, Status lists the alarm
      assert.equal((await etcdctl(server.endpoint, ['endpoint', 'health'])).code, 0);
      const httpHealth = await fetch(`${server.url}/health`);
      assert.equal(httpHealth.status, 503);
      assert.deepEqual(await httpHealth.json(), { health: 'false', reason: 'ALARM NOSPACE' });
      const status = await c.call(c.maintenance, 'Status', {});
      assert.match(status.errors[0], /^memberID:\d+ alarm:NOSPACE $/);
      const http = await fetch(`${server.url}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key: 'eA==', value: 'eA==' }) });
      assert.equal(http.status, 429);
      // free space (delete, compact, defragment) and disarm: writes work again
      await c.deleteRange({ key: b('q/'), range_end: b('q0') });
      const rev = Number((await c.range({ key: b('x') })).header.revision);
      await c.compact({ revision: rev, physical: true });
      await c.call(c.maintenance, 'Defragment', {});
      const disarm = await etcdctl(server.endpoint, ['alarm', 'disarm']);
      assert.equal(disarm.code, 0, disarm.stderr);
      assert.deepEqual((await c.call(c.maintenance, 'Alarm', {})).alarms, []);
      if (kind !== 'memory') await c.put({ key: b('after'), value: b('x') }); // memory keeps counting what it held
      c.close();
      await server.close();
      await fresh.drop();
    });

    it('Snapshot streams the file in 32 KiB messages counting down, then its SHA-256, on gRPC and the gateway; Status reports the store', async () => {
      const fresh = await freshBackend(kind);
      const server = await startServer({ backend: fresh.url });
      const c = new EtcdGrpcClient(server.endpoint);
      await c.put({ key: b('big'), value: Buffer.alloc(100_000, 3) });
      const messages = await new Promise<any[]>((resolve, reject) => {
        const got: any[] = [];
        const call = (c.maintenance as any).Snapshot({});
        call.on('data', (m: any) => got.push(m));
        call.on('error', reject);
        call.on('end', () => resolve(got));
      });
      const check = (ms: { remaining: number; blob: Buffer }[]) => {
        const body = Buffer.concat(ms.slice(0, -1).map((m) => m.blob));
        assert.ok(ms.length >= 5, `${ms.length} messages`);
        ms.slice(0, -1).forEach((m, i) => {
          assert.equal(m.blob.length, i < ms.length - 2 ? 32 * 1024 : body.length - 32 * 1024 * (ms.length - 2));
          assert.equal(m.remaining, body.length - 32 * 1024 * i - m.blob.length);
        });
        assert.equal(ms[ms.length - 1].remaining, 0);
        assert.deepEqual(ms[ms.length - 1].blob, createHash('sha256').update(body).digest());
        assert.equal(body.readUInt32LE(16), 0xed0cdaed, 'a bbolt file');
      };
      check(messages.map((m) => ({ remaining: Number(m.remaining_bytes), blob: m.blob })));
      // the gateway: one {"result":...} line per message, remaining_bytes left out when 0 (as etcd's JSON)
      const http = await fetch(`${server.url}/v3/maintenance/snapshot`, { method: 'POST', body: '{}' });
      assert.equal(http.status, 200);
      const lines = (await http.text()).trim().split('\n').map((l) => JSON.parse(l).result);
      check(lines.map((r) => ({ remaining: Number(r.remaining_bytes ?? 0), blob: Buffer.from(r.blob, 'base64') })));
      await c.put({ key: b('s'), value: Buffer.alloc(10_000) });
      const status = await c.call(c.maintenance, 'Status', {});
      assert.ok(Number(status.dbSize) > 0 && Number(status.dbSizeInUse) > 0);
      assert.equal(status.leader, status.header.member_id);
      assert.equal(status.raftIndex, status.header.revision);
      c.close();
      await server.close();
      await fresh.drop();
    });
  });
}
