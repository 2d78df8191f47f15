// An APISIX-like deployment against this server: several workers, each with
// its own long watch over the HTTP gateway; changes through the gateway and
// through gRPC; idle closes and reopens; a compaction that forces a reload.
// Every change must reach every worker.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { startServer, type RunningServer } from '../src/index';
import { ApisixWorker, post } from './helpers/apisix-sim';
import { b, EtcdGrpcClient } from './helpers/grpc-client';
import { waitFor } from './helpers/ports';
import { backendsUnderTest, freshBackend, type FreshBackend } from './helpers/backends';

const b64 = (s: string) => Buffer.from(s).toString('base64');

for (const backend of backendsUnderTest()) {
  describe(`an APISIX-like client (${backend})`, () => {
    let server: RunningServer;
    let grpc: EtcdGrpcClient;
    let fresh: FreshBackend;
    before(async () => {
      fresh = await freshBackend(backend);
      server = await startServer({ backend: fresh.url });
      grpc = new EtcdGrpcClient(server.endpoint);
    });
    after(async () => {
      grpc?.close();
      await server?.close();
      await fresh?.drop();
    });

    async function truth(): Promise<Map<string, string>> {
      const r = await grpc.range({ key: b('/apisix/'), range_end: b('/apisix0') });
      return new Map(r.kvs.map((kv: any) => [kv.key.toString(), kv.value.toString()]));
    }

    async function converged(workers: ApisixWorker[]): Promise<void> {
      const want = await truth();
      await waitFor('every worker to see every change', async () => (workers.every((w) => sameMap(w.config, want)) ? true : undefined), 20000).catch(() => undefined);
      for (const [i, w] of workers.entries()) assert.deepEqual([...w.config].sort(), [...want].sort(), `worker ${i}`);
      for (const w of workers) assert.deepEqual(w.applied, [...w.applied].sort((x, y) => x - y), 'revisions applied in order');
    }

    it('start-up, changes through both APIs, idle reopen, compaction reload', async () => {
      const version = (await (await fetch(`${server.url}/version`)).json()) as { etcdcluster: string };
      assert.ok(version.etcdcluster >= '3.4.0');
      for (const dir of ['routes', 'upstreams', 'services', 'plugins', 'ssls']) {
        await post(server.url, '/v3/kv/put', { key: b64(`/apisix/${dir}/`), value: b64('init_dir') });
      }
      const workers = Array.from({ length: 6 }, () => new ApisixWorker(server.url, '/apisix/', 400));
      await Promise.all(workers.map((w) => w.start()));

      // changes through the gateway (Admin API style) and through gRPC
      for (let i = 0; i < 30; i++) {
        await post(server.url, '/v3/kv/put', { key: b64(`/apisix/routes/${i}`), value: b64(`{"uri":"/r${i}"}`), prev_kv: true });
        if (i % 3 === 0) await grpc.put({ key: b(`/apisix/upstreams/${i}`), value: b(`{"nodes":${i}}`) });
      }
      await post(server.url, '/v3/kv/txn', {
        compare: [{ key: b64('/apisix/routes/1'), target: 'VERSION', result: 'GREATER', version: 0 }],
        success: [{ requestPut: { key: b64('/apisix/routes/1'), value: b64('{"uri":"/changed"}') } }, { requestDeleteRange: { key: b64('/apisix/routes/2') } }],
      });
      await post(server.url, '/v3/kv/deleterange', { key: b64('/apisix/routes/2'), range_end: b64('/apisix/routes/3') });
      await converged(workers);

      // idle: every watch closes after 400 ms without events and reopens from the same revision
      await waitFor('every worker to reopen its idle watch', async () => (workers.every((w) => w.reopens >= 1) ? true : undefined));
      await grpc.put({ key: b('/apisix/services/after-idle'), value: b('s') });
      await converged(workers);

      // a worker is away while history is compacted past it: its reopen gets compact_revision and it reloads
      const away = workers[0];
      away.stop();
      for (let i = 0; i < 5; i++) await grpc.put({ key: b(`/apisix/plugins/p${i}`), value: b('p') });
      const rev = Number((await grpc.range({ key: b('x') })).header.revision);
      await post(server.url, '/v3/kv/compaction', { revision: rev, physical: true });
      assert.ok(away.revision < rev);
      away.resume();
      await waitFor('a reload after compaction', async () => (away.reloads === 1 ? true : undefined));
      await grpc.deleteRange({ key: b('/apisix/routes/'), range_end: b('/apisix/routes0') });
      await converged(workers);
      assert.equal(away.reloads, 1);
      for (const w of workers.slice(1)) assert.equal(w.reloads, 0, 'the others never needed a reload');
      for (const w of workers) w.stop();
    });
  });
}

function sameMap(a: Map<string, string>, b: Map<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}
