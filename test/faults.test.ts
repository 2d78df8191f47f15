// Faults: the adapter killed with SIGKILL during writes (SQLite and MariaDB),
// and MariaDB itself stopped during writes and watches. Acknowledged writes
// are never lost, revisions keep going up, watchers elsewhere never notice,
// and while the database is away requests answer UNAVAILABLE (HTTP 503) and
// watches stay open, then resume without losing an event.
import { after, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnAdapter, type SpawnedAdapter } from './helpers/spawn';
import { b, EtcdGrpcClient } from './helpers/grpc-client';
import { grpcWatch, httpWatch, type Collected } from './helpers/watch-client';
import { backendsUnderTest, createMysqlDatabase, freshBackend, type FreshBackend } from './helpers/backends';
import { startMariadb, stopMariadb } from './helpers/mariadb';

interface Acked {
  key: string;
  revision: number;
}

/** `n` concurrent writers of unique keys until stopped; records what was acknowledged and the error codes seen. */
function writers(client: EtcdGrpcClient, n: number, prefix: string, pauseMs = 0) {
  const acked: Acked[] = [];
  const errors: number[] = [];
  let stop = false;
  let seq = 0;
  const loops = Array.from({ length: n }, async () => {
    while (!stop) {
      const key = `${prefix}${seq++}`;
      try {
        const r = await client.put({ key: b(key), value: b(key) });
        acked.push({ key, revision: Number(r.header.revision) });
      } catch (err) {
        errors.push((err as { code: number }).code);
        await new Promise((r) => setTimeout(r, 50));
      }
      if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs));
    }
  });
  return {
    acked,
    errors,
    stop: async () => {
      stop = true;
      await Promise.all(loops);
    },
  };
}

/** Every acknowledged write is there, at the revision it was acknowledged with. */
async function assertDurable(client: EtcdGrpcClient, prefix: string, acked: Acked[]): Promise<void> {
  const r = await client.range({ key: b(prefix), range_end: b(prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1)) });
  const found = new Map<string, number>(r.kvs.map((kv: any) => [kv.key.toString(), Number(kv.mod_revision)]));
  const missing = acked.filter((a) => found.get(a.key) !== a.revision);
  assert.deepEqual(missing.slice(0, 5), [], `${missing.length} of ${acked.length} acknowledged writes missing or changed`);
  const next = await client.put({ key: b('after-restart'), value: b('x') });
  assert.ok(Number(next.header.revision) > Math.max(...acked.map((a) => a.revision)), 'revisions continue upward');
}

/** The events of a watch: in order, gapless, and including every acknowledged write. */
function assertGapless(w: Collected, acked: Acked[], label: string): void {
  const revs: number[] = [];
  const keys = new Set<string>();
  for (const r of w.responses) {
    const res = r.result ?? r;
    assert.ok(!res.canceled, `${label}: the watch was not canceled`);
    for (const ev of res.events ?? []) {
      revs.push(Number(ev.kv.mod_revision));
      keys.add(Buffer.isBuffer(ev.kv.key) ? ev.kv.key.toString() : Buffer.from(ev.kv.key, 'base64').toString());
    }
  }
  for (let i = 1; i < revs.length; i++) assert.equal(revs[i], revs[i - 1] + 1, `${label}: events gapless at ${revs[i - 1]}`);
  const lost = acked.filter((a) => !keys.has(a.key));
  assert.deepEqual(lost.slice(0, 5), [], `${label}: ${lost.length} acknowledged writes never reached the watcher`);
}

describe('faults', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  after(async () => {
    await startMariadb();
    for (const c of cleanup.reverse()) await c().catch(() => undefined);
  });

  for (const kind of backendsUnderTest().filter((k) => k !== 'memory')) {
    it(`kill -9 during writes loses no acknowledged write (${kind})`, async () => {
      const fresh: FreshBackend = kind === 'mysql' ? await createMysqlDatabase() : await freshBackend(kind);
      cleanup.push(() => fresh.drop());
      const a = await spawnAdapter(['--backend', fresh.url]);
      // On MariaDB, a second instance with a watcher that must not notice.
      const b2: SpawnedAdapter | null = kind === 'mysql' ? await spawnAdapter(['--backend', fresh.url, '--poll-interval', '50ms']) : null;
      cleanup.push(async () => b2?.stop());
      const ca = new EtcdGrpcClient(a.endpoint);
      const start = Number((await ca.range({ key: b('x') })).header.revision) + 1;
      const cb = b2 ? new EtcdGrpcClient(b2.endpoint) : null;
      const watch = cb ? grpcWatch(cb) : null;
      watch?.send({ create_request: { key: b('k/'), range_end: b('k0'), start_revision: start } });

      const w = writers(ca, 8, 'k/');
      await new Promise((r) => setTimeout(r, 1500));
      a.child.kill('SIGKILL');
      await a.stop();
      await w.stop();
      ca.close();
      assert.ok(w.acked.length > 20, `writes were acknowledged before the kill (${w.acked.length})`);

      const again = await spawnAdapter(['--backend', fresh.url]);
      cleanup.push(() => again.stop());
      const c2 = new EtcdGrpcClient(again.endpoint);
      await assertDurable(c2, 'k/', w.acked);
      if (watch && cb) {
        await new Promise((r) => setTimeout(r, 500));
        assertGapless(watch, w.acked, 'watcher on the other instance');
        watch.close();
        cb.close();
      }
      c2.close();
    });
  }

  it('MariaDB stopped during writes and watches: UNAVAILABLE while down, full recovery, no event lost', { skip: !backendsUnderTest().includes('mysql') && 'mysql is not under test' }, async () => {
    const fresh = await createMysqlDatabase();
    cleanup.push(() => fresh.drop());
    const s = await spawnAdapter(['--backend', fresh.url, '--poll-interval', '50ms']);
    cleanup.push(() => s.stop());
    const c = new EtcdGrpcClient(s.endpoint);
    const start = Number((await c.range({ key: b('x') })).header.revision) + 1;
    const gw = grpcWatch(c);
    gw.send({ create_request: { key: b('o/'), range_end: b('o0'), start_revision: start } });
    const hw = httpWatch(s.url, [{ create_request: { key: Buffer.from('o/').toString('base64'), range_end: Buffer.from('o0').toString('base64'), start_revision: start } }]);
    await Promise.all([gw.waitFor(1), hw.waitFor(1)]);

    const w = writers(c, 4, 'o/', 20);
    await new Promise((r) => setTimeout(r, 800));
    await stopMariadb();
    try {
      await new Promise((r) => setTimeout(r, 1500));
      const health = await fetch(`${s.url}/health`);
      assert.equal(health.status, 503, '/health says unhealthy');
      const put = await fetch(`${s.url}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key: 'eA==', value: 'eA==' }) });
      assert.equal(put.status, 503, 'an HTTP write answers 503');
      assert.equal(((await put.json()) as { code: number }).code, 14);
    } finally {
      await startMariadb();
    }
    const before = w.acked.length;
    const deadline = Date.now() + 30000;
    while (w.acked.length < before + 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await w.stop();
    assert.ok(w.acked.length >= before + 20, 'writes succeed again after the database is back');
    assert.ok(w.errors.length > 0, 'writes failed while the database was down');
    assert.deepEqual([...new Set(w.errors)], [14], 'every failure was UNAVAILABLE');
    assert.equal(s.child.exitCode, null, 'the adapter never exited');

    await new Promise((r) => setTimeout(r, 1000));
    assertGapless(gw, w.acked, 'gRPC watcher');
    assertGapless(hw, w.acked, 'HTTP watcher');
    await assertDurable(c, 'o/', w.acked);
    gw.close();
    hw.close();
    c.close();
  });
});
