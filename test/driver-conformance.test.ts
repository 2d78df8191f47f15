// The driver contract (src/mvcc/driver.ts), one suite for every driver: what
// mvcc relies on when it stores, reads, tails and compacts.
import { describe, it, afterEach } from 'node:test';
import * as assert from 'node:assert/strict';
import type { Driver, WriteSet } from '../src/mvcc/driver';
import { tombstone, type KeyValue, type LogEntry } from '../src/mvcc/kv';
import { driverFactories } from './helpers/drivers';

const b = (s: string) => Buffer.from(s, 'latin1');
const kv = (key: string, rev: number, create = rev, version = 1, value = `${key}@${rev}`, lease = '0'): KeyValue => ({
  key: b(key),
  create_revision: create,
  mod_revision: rev,
  version,
  value: b(value),
  lease,
});
const put = (k: KeyValue, sub: number, prev = 0): LogEntry => ({ kv: k, sub, deleted: false, prev_revision: prev });
const del = (key: string, rev: number, sub: number, prev: number): LogEntry => ({ kv: tombstone(b(key), rev), sub, deleted: true, prev_revision: prev });
const keys = (kvs: KeyValue[]) => kvs.map((x) => x.key.toString('latin1'));
const all = { key: b('\0'), end: Buffer.alloc(0) };

/** A WriteSet with nothing but what is given. */
const set = (p: Partial<WriteSet> & { revision: number }): WriteSet => ({ entries: [], puts: [], deletes: [], leasePuts: [], leaseDeletes: [], docs: [], ...p });

async function commit(d: Driver, ws: WriteSet): Promise<void> {
  await d.write(async (tx) => {
    assert.equal(tx.revision, ws.revision - 1 - (new Set(ws.entries.map((e) => e.kv.mod_revision)).size - 1));
    await tx.apply(ws);
  });
}

/** Revision 2: a, b, c created; 3: b updated, c deleted; 4: d created, a deleted, a re-created. */
async function seed(d: Driver): Promise<void> {
  await commit(d, set({ entries: [put(kv('a', 2), 0), put(kv('b', 2), 1), put(kv('c', 2), 2)], puts: [kv('a', 2), kv('b', 2), kv('c', 2)], deletes: [], revision: 2 }));
  await commit(d, set({ entries: [put(kv('b', 3, 2, 2), 0, 2), del('c', 3, 1, 2)], puts: [kv('b', 3, 2, 2)], deletes: [b('c')], revision: 3 }));
  await commit(d, set({ entries: [put(kv('d', 4), 0), del('a', 4, 1, 2), put(kv('a', 4), 2)], puts: [kv('d', 4), kv('a', 4)], revision: 4 }));
}

for (const factory of driverFactories()) {
  describe(`driver contract: ${factory.name}`, () => {
    let d: Driver;
    const open = async () => (d = await factory.create());
    afterEach(async () => {
      await d?.close();
    });

    it('an empty store is at revision 1, never compacted', async () => {
      await open();
      const v = await d.read(async (view) => ({ rev: view.revision, compact: view.compactRevision, r: await view.range({ ...all, revision: 1, limit: 0, countOnly: false, keysOnly: false }) }));
      assert.deepEqual(v, { rev: 1, compact: -1, r: { kvs: [], count: 0 } });
    });

    it('reads the current view: single keys, intervals, limit, count', async () => {
      await open();
      await seed(d);
      await d.read(async (view) => {
        assert.equal(view.revision, 4);
        const q = (key: string, end: Buffer | null, limit = 0, countOnly = false) => view.range({ key: b(key), end, revision: 4, limit, countOnly, keysOnly: false });
        assert.deepEqual(await q('a', null), { kvs: [kv('a', 4)], count: 1 });
        assert.deepEqual(await q('c', null), { kvs: [], count: 0 });
        assert.deepEqual(keys((await q('a', b('d'))).kvs), ['a', 'b']);
        assert.deepEqual(await q('\0', Buffer.alloc(0), 2), { kvs: [kv('a', 4), kv('b', 3, 2, 2)], count: 3 });
        assert.equal((await q('\0', Buffer.alloc(0), 0, true)).count, 3);
        assert.deepEqual(keys((await q('b', Buffer.alloc(0))).kvs), ['b', 'd']);
        assert.deepEqual(await q('d', b('a')), { kvs: [], count: 0 });
      });
    });

    it('reads history at any revision down to the compact revision', async () => {
      await open();
      await seed(d);
      await d.read(async (view) => {
        const at = async (rev: number) => (await view.range({ ...all, revision: rev, limit: 0, countOnly: false, keysOnly: false })).kvs;
        assert.deepEqual(await at(1), []);
        assert.deepEqual(await at(2), [kv('a', 2), kv('b', 2), kv('c', 2)]);
        assert.deepEqual(await at(3), [kv('a', 2), kv('b', 3, 2, 2)]);
        assert.deepEqual(await at(4), [kv('a', 4), kv('b', 3, 2, 2), kv('d', 4)]);
        const one = await view.range({ key: b('c'), end: null, revision: 2, limit: 0, countOnly: false, keysOnly: false });
        assert.deepEqual(one, { kvs: [kv('c', 2)], count: 1 });
        const limited = await view.range({ ...all, revision: 2, limit: 1, countOnly: false, keysOnly: false });
        assert.deepEqual(limited, { kvs: [kv('a', 2)], count: 3 });
      });
    });

    it('a read snapshot does not move while writes commit', async () => {
      await open();
      await seed(d);
      await d.read(async (view) => {
        await commit(d, set({ entries: [put(kv('e', 5), 0)], puts: [kv('e', 5)], deletes: [], revision: 5 }));
        assert.equal(view.revision, 4);
        const r = await view.range({ ...all, revision: view.revision, limit: 0, countOnly: false, keysOnly: false });
        assert.deepEqual(keys(r.kvs), ['a', 'b', 'd']);
      });
    });

    it('a write transaction that throws leaves nothing behind', async () => {
      await open();
      await seed(d);
      await assert.rejects(
        d.write(async (tx) => {
          await tx.apply(set({ entries: [put(kv('z', 5), 0)], puts: [kv('z', 5)], revision: 5 }));
          throw new Error('boom');
        }),
        /boom/,
      );
      const log = await d.readLog(0, 100);
      assert.equal(log.revision, 4);
      assert.equal(log.entries.length, 8);
      await d.read(async (view) => assert.deepEqual(await view.range({ key: b('z'), end: null, revision: 4, limit: 0, countOnly: false, keysOnly: false }), { kvs: [], count: 0 }));
    });

    it('getMany reads the live values inside a write', async () => {
      await open();
      await seed(d);
      await d.write(async (tx) => {
        assert.deepEqual(await tx.getMany([b('a'), b('c'), b('zz'), b('d')]), [kv('a', 4), null, null, kv('d', 4)]);
      });
    });

    it('the log returns whole revisions in order, filtered by range, bounded', async () => {
      await open();
      await seed(d);
      const log = await d.readLog(0, 100);
      assert.equal(log.through, 4);
      assert.deepEqual(
        log.entries.map((e) => [e.kv.mod_revision, e.sub, e.kv.key.toString(), e.deleted, e.prev_revision]),
        [
          [2, 0, 'a', false, 0],
          [2, 1, 'b', false, 0],
          [2, 2, 'c', false, 0],
          [3, 0, 'b', false, 2],
          [3, 1, 'c', true, 2],
          [4, 0, 'd', false, 0],
          [4, 1, 'a', true, 2],
          [4, 2, 'a', false, 0],
        ],
      );
      assert.deepEqual(log.entries[4].kv, tombstone(b('c'), 3));
      const empty = await d.readLog(0, 1); // revision 1 is the empty store
      assert.deepEqual([empty.through, empty.entries.length], [1, 0]);
      const first = await d.readLog(1, 1);
      assert.deepEqual([first.through, first.entries.length], [2, 3]);
      const tail = await d.readLog(3, 10, { key: b('a'), end: null });
      assert.deepEqual(tail.entries.map((e) => [e.kv.mod_revision, e.sub]), [[4, 1], [4, 2]]);
      assert.equal(tail.through, 4);
      const none = await d.readLog(4, 10);
      assert.deepEqual([none.entries.length, none.through, none.revision], [0, 4, 4]);
    });

    it('getVersions finds earlier live versions for prev_kv', async () => {
      await open();
      await seed(d);
      const got = await d.getVersions([{ key: b('b'), revision: 2 }, { key: b('c'), revision: 2 }, { key: b('a'), revision: 4 }, { key: b('x'), revision: 2 }]);
      assert.deepEqual(got, [kv('b', 2), kv('c', 2), kv('a', 4), null]);
    });

    it('compaction keeps what reads at or above the compact revision need', async () => {
      await open();
      await seed(d);
      await commit(d, set({ entries: [del('b', 5, 0, 3)], puts: [], deletes: [b('b')], revision: 5 }));
      await d.write(async (tx) => tx.setCompactRevision(4));
      await d.compact(4);
      await d.read(async (view) => {
        assert.equal(view.compactRevision, 4);
        const at = async (rev: number) => (await view.range({ ...all, revision: rev, limit: 0, countOnly: false, keysOnly: false })).kvs;
        assert.deepEqual(await at(4), [kv('a', 4), kv('b', 3, 2, 2), kv('d', 4)]);
        assert.deepEqual(await at(5), [kv('a', 4), kv('d', 4)]);
      });
      // Watchers may resume from revision 4: its surviving entries and everything after.
      const log = await d.readLog(3, 100);
      assert.deepEqual(log.entries.map((e) => [e.kv.mod_revision, e.kv.key.toString(), e.deleted]), [
        [4, 'd', false],
        [4, 'a', false],
        [5, 'b', true],
      ]);
      // prev_kv of events after the compact revision still resolves
      assert.deepEqual(await d.getVersions([{ key: b('b'), revision: 3 }]), [kv('b', 3, 2, 2)]);
      assert.deepEqual(await d.getVersions([{ key: b('b'), revision: 2 }]), [null]);
      await d.write(async (tx) => tx.setCompactRevision(5));
      await d.compact(5);
      await d.read(async (view) => {
        const r = await view.range({ ...all, revision: 5, limit: 0, countOnly: false, keysOnly: false });
        assert.deepEqual(keys(r.kvs), ['a', 'd']);
      });
    });

    it('compaction in steps: a revision with more rows than a step, a key with more versions than a step', async () => {
      await open();
      const N = 1200; // more than one compaction step of the SQL driver (500 rows)
      const name = (i: number) => `m/${String(i).padStart(5, '0')}`;
      const many = Array.from({ length: N }, (_, i) => kv(name(i), 2));
      await commit(d, set({ entries: many.map((x, i) => put(x, i)), puts: many, revision: 2 }));
      // revision 3: every one of them deleted at once; 4: the even ones back
      await commit(d, set({ entries: many.map((x, i) => del(x.key.toString('latin1'), 3, i, 2)), deletes: many.map((x) => x.key), revision: 3 }));
      const back = many.filter((_, i) => i % 2 === 0).map((x) => kv(x.key.toString('latin1'), 4));
      await commit(d, set({ entries: back.map((x, i) => put(x, i)), puts: back, revision: 4 }));
      // revisions 5 .. 5+N-1: one key overwritten N times
      for (let r = 5; r < 5 + N; r++) {
        const hot = kv('hot', r, 5, r - 4);
        await commit(d, set({ entries: [put(hot, 0, r > 5 ? r - 1 : 0)], puts: [hot], revision: r }));
      }
      const last = 4 + N;
      const middle = 5 + N / 2;
      await d.write(async (tx) => tx.setCompactRevision(middle));
      await d.compact(middle);
      const at = (rev: number) => d.read(async (view) => view.range({ ...all, revision: rev, limit: 0, countOnly: false, keysOnly: false }));
      const atMiddle = await at(middle);
      assert.equal(atMiddle.count, N / 2 + 1);
      const hotIn = (kvs: KeyValue[]) => kvs.find((x) => x.key.toString('latin1') === 'hot');
      assert.deepEqual(hotIn(atMiddle.kvs), kv('hot', middle, 5, middle - 4));
      assert.deepEqual(hotIn((await at(last)).kvs), kv('hot', last, 5, last - 4));
      // gone: the versions superseded at or below the compact revision, and the deletions there
      assert.deepEqual(await d.getVersions([{ key: b(name(0)), revision: 2 }, { key: b('hot'), revision: middle - 1 }, { key: b('hot'), revision: 5 }]), [null, null, null]);
      // kept: the latest version at or below it, and everything above it
      assert.deepEqual(await d.getVersions([{ key: b(name(0)), revision: 4 }, { key: b('hot'), revision: middle }, { key: b('hot'), revision: middle + 1 }]), [
        kv(name(0), 4),
        kv('hot', middle, 5, middle - 4),
        kv('hot', middle + 1, 5, middle - 3),
      ]);
      // the deleted odd keys left no trace below the compact revision
      const log = await d.readLog(middle - 1, N);
      assert.ok(log.entries.every((e) => !e.deleted && e.kv.key.toString('latin1') === 'hot'), 'only the hot key is left in the log from there');
      await d.write(async (tx) => tx.setCompactRevision(last));
      await d.compact(last);
      assert.deepEqual(await d.getVersions([{ key: b('hot'), revision: last - 1 }, { key: b('hot'), revision: last }]), [null, kv('hot', last, 5, last - 4)]);
      assert.equal((await at(last)).count, N / 2 + 1);
    });

    it('leases: stored with their TTL and expiry; the keys attached to each are found', async () => {
      await open();
      const now = await d.now();
      assert.ok(Math.abs(now - Date.now()) < 60_000, 'the store clock is about now');
      const l1 = { id: '7587862072817366026', ttl: 30, expiresAt: now + 30_000 };
      const l2 = { id: '-5', ttl: 2, expiresAt: now + 2_000 };
      const withLease = (key: string, rev: number, lease: string) => kv(key, rev, rev, 1, `${key}@${rev}`, lease);
      await commit(d, set({ entries: [put(withLease('a', 2, l1.id), 0), put(withLease('b', 2, l1.id), 1), put(withLease('c', 2, l2.id), 2)], puts: [withLease('a', 2, l1.id), withLease('b', 2, l1.id), withLease('c', 2, l2.id)], revision: 2, leasePuts: [l1, l2] }));
      assert.deepEqual(await d.getLease(l1.id), l1);
      assert.deepEqual((await d.listLeases()).sort((x, y) => x.ttl - y.ttl), [l2, l1]);
      assert.deepEqual((await d.keysWithLease(l1.id)).map(String), ['a', 'b']);
      // b moves to l2, a is deleted: the index follows
      await commit(d, set({ entries: [put(withLease('b', 3, l2.id), 0, 2), del('a', 3, 1, 2)], puts: [withLease('b', 3, l2.id)], deletes: [b('a')], revision: 3, leasePuts: [{ ...l1, expiresAt: now + 60_000 }] }));
      assert.deepEqual((await d.keysWithLease(l1.id)).map(String), []);
      assert.deepEqual((await d.keysWithLease(l2.id)).map(String), ['b', 'c']);
      await d.write(async (tx) => {
        assert.equal((await tx.getLease(l1.id))!.expiresAt, now + 60_000);
        assert.deepEqual((await tx.keysWithLease(l2.id)).map((x) => x.key.toString()), ['b', 'c']);
        assert.ok(Math.abs((await tx.now()) - Date.now()) < 60_000);
        await tx.apply(set({ revision: 3, leaseDeletes: [l1.id] }));
      });
      assert.equal(await d.getLease(l1.id), null);
      assert.equal((await d.readLog(0, 100)).revision, 3, 'lease changes alone do not make a revision');
    });

    it('shared documents and members', async () => {
      await open();
      assert.equal(await d.getDoc('auth'), null);
      await d.write(async (tx) => tx.apply(set({ revision: 1, docs: [{ name: 'auth', doc: { version: 1, value: { enabled: true, users: { root: {} } } } }] })));
      assert.deepEqual(await d.getDoc('auth'), { version: 1, value: { enabled: true, users: { root: {} } } });
      await d.write(async (tx) => {
        assert.equal((await tx.getDoc('auth'))!.version, 1);
        await tx.apply(set({ revision: 1, docs: [{ name: 'auth', doc: { version: 2, value: { enabled: false } } }] }));
      });
      assert.deepEqual(await d.getDoc('auth'), { version: 2, value: { enabled: false } });
      await d.heartbeat({ id: '42', name: 'one', clientUrls: ['http://127.0.0.1:2379'], peerUrls: [] });
      await d.heartbeat({ id: '43', name: 'two', clientUrls: ['http://127.0.0.1:2380'], peerUrls: ['http://10.0.0.2:2380'] });
      await d.heartbeat({ id: '42', name: 'one', clientUrls: ['http://127.0.0.1:2379'], peerUrls: ['http://10.0.0.1:2380', 'https://one:2380'] });
      const members = await d.members(60_000);
      assert.deepEqual(members.map((m) => [m.id, m.name, m.clientUrls, m.peerUrls]).sort(), [
        ['42', 'one', ['http://127.0.0.1:2379'], ['http://10.0.0.1:2380', 'https://one:2380']],
        ['43', 'two', ['http://127.0.0.1:2380'], ['http://10.0.0.2:2380']],
      ]);
    });

    it('stats report a size that grows with data', async () => {
      await open();
      const before = await d.stats();
      await seed(d);
      const after = await d.stats();
      assert.ok(after.dbSize >= before.dbSize);
      assert.ok(after.dbSizeInUse > 0);
    });
  });
}
