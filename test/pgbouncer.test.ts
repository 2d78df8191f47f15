// PostgreSQL behind PgBouncer, as managed PostgreSQL is often reached. A
// private PgBouncer (its own port and directory) in transaction mode, the
// hardest of its modes, in front of the machine's PostgreSQL:
// - it refuses the `options` startup parameter: each transaction sets what it
//   needs itself (SET LOCAL);
// - a session advisory lock and its unlock may run on different server
//   connections: instances starting together migrate under a transaction-level lock;
// - LISTEN succeeds and no notification is ever delivered: each instance
//   notices that it does not hear its own, and instances wake each other over
//   HTTP instead (polls here are an hour apart, so nothing else could deliver).
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { backendsUnderTest, createPostgresDatabase, type FreshBackend } from './helpers/backends';
import { startPgBouncer, type PrivatePgBouncer } from './helpers/pgbouncer';
import { spawnAdapter, type SpawnedAdapter } from './helpers/spawn';
import { b, EtcdGrpcClient } from './helpers/grpc-client';
import { increment } from './helpers/cas';
import { writesWakeOtherInstance } from './helpers/woken';

const skip = !backendsUnderTest().includes('postgres') && 'postgres is not under test';

describe('PostgreSQL behind PgBouncer in transaction mode', { skip }, () => {
  let bouncer: PrivatePgBouncer;
  let db: FreshBackend;
  let url: string;
  let servers: SpawnedAdapter[] = [];
  before(async () => {
    bouncer = await startPgBouncer('transaction');
    db = await createPostgresDatabase();
    url = bouncer.urlFor(new URL(db.url).pathname.slice(1));
  });
  after(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    // PgBouncer first: it holds server connections to the database
    await bouncer?.stop();
    await db?.drop();
  });

  it('instances starting together migrate one at a time, and one started later finds no lock left behind', async () => {
    servers = await Promise.all([0, 1, 2].map((i) => spawnAdapter(['--backend', url, '--name', `pooled-${i}`, '--poll-interval', '1h'])));
    const late = await spawnAdapter(['--backend', url, '--name', 'pooled-late', '--poll-interval', '1h']);
    servers.push(late);
    const c = new EtcdGrpcClient(late.endpoint);
    const headers = await Promise.all(servers.map(async (s) => {
      const x = new EtcdGrpcClient(s.endpoint);
      try {
        return (await x.range({ key: b('none') })).header;
      } finally {
        x.close();
      }
    }));
    assert.equal(new Set(headers.map((h) => h.cluster_id)).size, 1);
    c.close();
  });

  it('compare-and-swap counters across instances come out exact', async () => {
    const clients = servers.map((s) => new EtcdGrpcClient(s.endpoint));
    await Promise.all(clients.map(async (c) => {
      for (let i = 0; i < 10; i++) await increment(c, 'pooled/counter');
    }));
    for (const c of clients) assert.equal((await c.range({ key: b('pooled/counter') })).kvs[0].value.toString(), String(10 * clients.length));
    for (const c of clients) c.close();
  });

  it("a commit on one instance wakes the other's watchers although NOTIFY does not get through", async () => {
    const [a, c] = [servers[0], servers[1]].map((s) => new EtcdGrpcClient(s.endpoint));
    await writesWakeOtherInstance(a, c);
    assert.match(servers[0].log(), /commit announcements \(NOTIFY\) are not heard back: waking the other instances over HTTP instead/);
    a.close();
    c.close();
  });
});
