// The space quota against a live etcd 3.4 started with a small
// --quota-backend-bytes: the same writes until one is refused, then the same
// requests to both while the NOSPACE alarm is up, then freeing space and
// disarming. Where the two stores count bytes differently (how many puts fit
// under the quota) only the answers are compared, not the counts.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { startServer } from '../src/index';
import { b, EtcdGrpcClient } from './helpers/grpc-client';
import { etcdctl } from './helpers/etcdctl';
import { backendsUnderTest, freshBackend } from './helpers/backends';
import { startRealEtcd } from './helpers/real-etcd';

const QUOTA = 600 * 1024;

type Outcome = { ok: true } | { code: number; details: string };
const outcome = (p: Promise<unknown>): Promise<Outcome> =>
  p.then(
    () => ({ ok: true }),
    (e: { code: number; details: string }) => ({ code: e.code, details: e.details }),
  );
/** Member ids differ between the two servers; everything else must not. */
const normal = (s: string) => s.replace(/memberID:\d+/g, 'memberID:N');

async function scenario(endpoint: string, url: string, withPutAfter: boolean): Promise<Record<string, unknown>> {
  const c = new EtcdGrpcClient(endpoint);
  const out: Record<string, unknown> = {};
  try {
    const value = Buffer.alloc(48 * 1024, 'q');
    let refused: Outcome = { ok: true };
    for (let i = 0; i < 200 && 'ok' in refused; i++) refused = await outcome(c.put({ key: b(`q/${i}`), value }));
    out.refused = refused;
    out.smallPut = await outcome(c.put({ key: b('small'), value: b('x') }));
    out.txnPut = await outcome(c.txn({ success: [{ request_put: { key: b('t'), value: b('x') } }] }));
    out.leaseGrant = await outcome(c.call(c.lease, 'LeaseGrant', { TTL: 10 }));
    out.range = await outcome(c.range({ key: b('q/'), range_end: b('q0'), count_only: true }));
    out.txnDelete = await outcome(c.txn({ success: [{ request_delete_range: { key: b('q/0') } }] }));
    const alarms = async (req: object) => (await c.call(c.maintenance, 'Alarm', req)).alarms.map((a: { alarm: number }) => a.alarm);
    out.alarms = await alarms({});
    out.alarmsOfType = { nospace: await alarms({ alarm: 1 }), corrupt: await alarms({ alarm: 2 }), ofAnotherMember: await alarms({ memberID: '12345' }) };
    const list = await etcdctl(endpoint, ['alarm', 'list']);
    out.alarmList = { code: list.code, stdout: normal(list.stdout) };
    out.endpointHealth = (await etcdctl(endpoint, ['endpoint', 'health'])).code;
    const health = await fetch(`${url}/health`);
    // Without etcd 3.5's "reason" (3.4 has none; we answer as the 3.5 we report to be).
    const { reason: _reason, ...body } = (await health.json()) as Record<string, unknown>;
    out.health = { status: health.status, body };
    const status = await c.call(c.maintenance, 'Status', {});
    out.statusErrors = (status.errors as string[]).map(normal);
    const httpPut = await fetch(`${url}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key: 'eA==', value: 'eA==' }) });
    out.httpPut = { status: httpPut.status, body: await httpPut.json() };
    // Free the space (delete, compact, defragment), then disarm.
    out.deleteAll = await outcome(c.deleteRange({ key: b('q/'), range_end: b('q0') }));
    const rev = Number((await c.range({ key: b('x') })).header.revision);
    out.compact = await outcome(c.compact({ revision: rev, physical: true }));
    out.defragment = await outcome(c.call(c.maintenance, 'Defragment', {}));
    const disarm = await etcdctl(endpoint, ['alarm', 'disarm']);
    out.disarm = { code: disarm.code, stdout: normal(disarm.stdout) };
    out.alarmsAfter = (await c.call(c.maintenance, 'Alarm', {})).alarms;
    if (withPutAfter) out.putAfter = await outcome(c.put({ key: b('after'), value: b('x') }));
  } finally {
    c.close();
  }
  return out;
}

for (const kind of backendsUnderTest()) {
  describe(`space quota against etcd 3.4 (${kind})`, () => {
    it(`--quota-backend-bytes ${QUOTA}: the refusal, the alarm, what is refused and allowed, disarm`, async () => {
      const etcd = await startRealEtcd(['--quota-backend-bytes', String(QUOTA)]);
      let want: Record<string, unknown>;
      try {
        want = await scenario(etcd.endpoint, etcd.url, kind !== 'memory');
      } finally {
        await etcd.stop();
      }
      const fresh = await freshBackend(kind);
      const server = await startServer({ backend: fresh.url, quotaBackendBytes: QUOTA });
      try {
        // The memory store does not give back what it held (there is no file to shrink): no put after.
        const got = await scenario(server.endpoint, server.url, kind !== 'memory');
        assert.deepEqual(got, want);
        assert.equal((want.refused as { code: number }).code, 8, 'etcd refused a put: the scenario reached the quota');
      } finally {
        await server.close();
        await fresh.drop();
      }
    });
  });
}
