// The read lease (drivers/sql/read-lease.ts, drivers/sql/lease-fence.ts): an
// instance alone on its database answers linearizable reads without a query,
// and that must never let a read miss a write that finished before it began,
// whichever instance took the write, even when the holder is killed.
import { describe, it, afterEach } from 'node:test';
import * as assert from 'node:assert/strict';
import type { WriteSet } from '../src/mvcc/driver';
import type { KeyValue } from '../src/mvcc/kv';
import { createDriver } from '../drivers/registry';
import { ReadCachedDriver } from '../drivers/sql/read-cache';
import type { SqlDriver } from '../drivers/sql/sql-driver';
import { LeaseFence } from '../drivers/sql/lease-fence';
import { backendsUnderTest, freshBackend, type FreshBackend } from './helpers/backends';
import { spawnAdapter } from './helpers/spawn';
import { waitFor } from './helpers/ports';

const LEASE_MS = 300;
const b = (s: string) => Buffer.from(s, 'latin1');

/** A put of `key` = `value` at the next revision, as mvcc would stage it. */
async function put(d: ReadCachedDriver | SqlDriver, key: string, value: string): Promise<number> {
  return d.write(async (tx) => {
    const revision = tx.revision + 1;
    const [old] = await tx.getMany([b(key)]);
    const kv: KeyValue = { key: b(key), value: b(value), create_revision: old?.create_revision ?? revision, mod_revision: revision, version: (old?.version ?? 0) + 1, lease: '0' };
    const ws: WriteSet = { revision, entries: [{ kv, sub: 0, deleted: false, prev_revision: old?.mod_revision ?? 0 }], puts: [kv], deletes: [], leasePuts: [], leaseDeletes: [], docs: [] };
    await tx.apply(ws);
    return revision;
  });
}

/** A linearizable read (which also asks for the lease), then whether the lease is held. */
async function holds(d: ReadCachedDriver): Promise<boolean> {
  await get(d, 'any');
  return d.leaseHeld;
}

async function get(d: ReadCachedDriver, key: string): Promise<string | null> {
  const { kvs } = await d.read((view) => view.range({ key: b(key), end: null, revision: view.revision, limit: 0, countOnly: false, keysOnly: false }));
  return kvs[0] ? kvs[0].value.toString() : null;
}

describe('read lease: the writers\' fence', () => {
  const row = (holder: string | null, seq: number) => ({ holder, seq, ms: 100 });
  it('lets writes through when the lease is free or ours, holds them for the length of an unrenewed lease, then clears it', () => {
    const f = new LeaseFence();
    f.self = 'me';
    assert.equal(f.check(row(null, 1), 0), 'free');
    assert.equal(f.check(row('me', 1), 0), 'free');
    assert.equal(f.check(row('other', 4), 1000), 'wait', 'first sight');
    assert.equal(f.check(row('other', 4), 1099), 'wait', 'not yet its whole length');
    assert.equal(f.check(row('other', 5), 1100), 'wait', 'renewed: counts again from here');
    assert.equal(f.check(row('other', 5), 1199), 'wait');
    assert.equal(f.check(row('other', 5), 1200), 'clear');
    assert.equal(f.check(row('third', 5), 1300), 'wait', 'another holder, even with the same number');
  });
});

for (const kind of backendsUnderTest().filter((k) => k !== 'memory')) {
  describe(`read lease (${kind})`, () => {
    let backend: FreshBackend;
    const open: ReadCachedDriver[] = [];
    afterEach(async () => {
      for (const d of open.splice(0)) await d.close();
      await backend?.drop();
    });

    /** One instance in this process: a SQL driver, its cache and (once it has a member id) its lease. */
    const instance = async (member: string | null) => {
      const inner = createDriver(backend.url, { dataDir: '/nonexistent', readCacheBytes: 0 }) as SqlDriver;
      const cached = new ReadCachedDriver(inner, { maxBytes: 64 << 20, readLeaseMs: LEASE_MS, leaseStore: inner });
      await cached.open();
      open.push(cached);
      if (member) await cached.heartbeat({ id: member, name: member, clientUrls: [], peerUrls: [] });
      return { inner, cached };
    };

    it('alone, an instance takes it; a write through another instance waits for it to end and is then read by the holder', async () => {
      backend = await freshBackend(kind);
      const a = await instance('a');
      await put(a.cached, 'k', 'one');
      await waitFor('the lease to be taken', async () => ((await holds(a.cached)) ? true : undefined));
      assert.equal(await get(a.cached, 'k'), 'one');
      // b writes without being a live member: a does not know of it, only the fence stops the write.
      const b = await instance(null);
      await put(b.inner, 'k', 'two');
      assert.ok(b.inner.fence.waits > 0, 'the write waited for the lease');
      assert.equal(a.cached.leaseHeld, false, 'the holder gave it up');
      // Linearizable: the write finished before this read began. Under the lease, with no poll
      // having run, a's cache could only know it by asking the database.
      assert.equal(await get(a.cached, 'k'), 'two');
      // And a stays away from it afterwards (though it reads on), so b's next write does not wait.
      assert.equal(await holds(a.cached), false);
      const waits = b.inner.fence.waits;
      await put(b.inner, 'k', 'three');
      assert.equal(b.inner.fence.waits, waits);
      assert.equal(await get(a.cached, 'k'), 'three');
    });

    it('is given up by an instance that stops reading', async () => {
      backend = await freshBackend(kind);
      const a = await instance('a');
      await waitFor('the lease to be taken', async () => ((await holds(a.cached)) ? true : undefined));
      await waitFor('the lease to be given up', async () => ((await a.inner.leaseHolder()) === null ? true : undefined));
      assert.equal(a.cached.leaseHeld, false);
    });

    it('is not held while another instance is alive', async () => {
      backend = await freshBackend(kind);
      const a = await instance('a');
      await waitFor('the lease to be taken', async () => ((await holds(a.cached)) ? true : undefined));
      const b = await instance('b');
      await waitFor('the lease to be given up', async () => (!(await holds(a.cached)) && (await a.inner.leaseHolder()) === null ? true : undefined));
      // Two live members, both reading: neither takes it (each sees the other), so writes never wait.
      for (const until = Date.now() + LEASE_MS; Date.now() < until; ) {
        assert.equal(await holds(a.cached), false);
        assert.equal(await holds(b.cached), false);
        await new Promise((r) => setTimeout(r, 10));
      }
      await put(b.inner, 'k', 'v');
      await put(a.inner, 'k', 'w');
      assert.equal(a.inner.fence.waits + b.inner.fence.waits, 0);
      assert.equal(await get(b.cached, 'k'), 'w');
    });

    it('two adapter processes: a write through the second is read through the holder at once', async () => {
      backend = await freshBackend(kind);
      const enc = (t: string) => Buffer.from(t).toString('base64');
      const call = async (url: string, path: string, body: object) => (await fetch(`${url}/v3/kv/${path}`, { method: 'POST', body: JSON.stringify(body) })).json() as Promise<any>;
      const read = async (url: string) => {
        const r = await call(url, 'range', { key: enc('k') });
        return r.kvs ? Buffer.from(r.kvs[0].value, 'base64').toString() : null;
      };
      const a = await spawnAdapter(['--backend', backend.url, '--read-lease', `${LEASE_MS}ms`, '--log-level', 'debug']);
      let b: Awaited<ReturnType<typeof spawnAdapter>> | null = null;
      try {
        await call(a.url, 'put', { key: enc('k'), value: enc('from a') });
        await waitFor('a to take the lease', async () => {
          await read(a.url);
          return a.log().includes('read lease taken') ? true : undefined;
        });
        b = await spawnAdapter(['--backend', backend.url, '--read-lease', `${LEASE_MS}ms`, '--log-level', 'debug']);
        // Each write through b, then at once a read through a: linearizable reads see it every time.
        for (let i = 0; i < 20; i++) {
          await call(b.url, 'put', { key: enc('k'), value: enc(`from b ${i}`) });
          assert.equal(await read(a.url), `from b ${i}`);
        }
      } finally {
        await b?.stop();
        await a.stop();
      }
    });

    it('a holder killed with SIGKILL holds writes elsewhere only until its lease runs out', async () => {
      backend = await freshBackend(kind);
      const holder = await spawnAdapter(['--backend', backend.url, '--read-lease', `${LEASE_MS}ms`, '--log-level', 'debug']);
      try {
        // Linearizable reads through the gateway make it want the lease.
        await waitFor('the adapter to take the lease', async () => {
          await fetch(`${holder.url}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: Buffer.from('k').toString('base64') }) });
          return holder.log().includes('read lease taken') ? true : undefined;
        });
        holder.child.kill('SIGKILL');
        await holder.stop();
        const b = await instance(null);
        assert.notEqual(await b.inner.leaseHolder(), null, 'the dead holder still has it');
        await put(b.inner, 'k', 'after');
        assert.ok(b.inner.fence.waits > 0, 'the write waited');
        assert.equal(await b.inner.leaseHolder(), null, 'the write took the lease away');
        assert.equal(await get(b.cached, 'k'), 'after');
      } finally {
        await holder.stop();
      }
    });
  });
}
