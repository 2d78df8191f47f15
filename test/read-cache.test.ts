// The read cache of SQL backends (drivers/sql/read-cache.ts) beyond the driver
// contract, which it passes like any driver: a write committed through it is
// in the cache and in its copy of the log at once, so local reads and the
// watch hub's tail need no query; another instance's write is found through
// the database; reads at or below the compact revision go to the database.
import { describe, it, afterEach } from 'node:test';
import * as assert from 'node:assert/strict';
import type { Driver, LogRead, WriteSet } from '../src/mvcc/driver';
import type { KeyRange } from '../src/mvcc/key-range';
import { tombstone, type KeyValue, type LogEntry } from '../src/mvcc/kv';
import { createDriver } from '../drivers/registry';
import { ReadCachedDriver } from '../drivers/sql/read-cache';
import { RecentLog } from '../drivers/sql/recent-log';
import { freshBackend, type FreshBackend } from './helpers/backends';

const b = (s: string) => Buffer.from(s, 'latin1');
const kv = (key: string, rev: number, create = rev, version = 1): KeyValue => ({ key: b(key), create_revision: create, mod_revision: rev, version, value: b(`${key}@${rev}`), lease: '0' });
const put = (k: KeyValue, sub: number, prev = 0): LogEntry => ({ kv: k, sub, deleted: false, prev_revision: prev });
const set = (p: Partial<WriteSet> & { revision: number }): WriteSet => ({ entries: [], puts: [], deletes: [], leasePuts: [], leaseDeletes: [], docs: [], ...p });
const summary = (log: LogRead) => ({ through: log.through, entries: log.entries.map((e) => `${e.kv.mod_revision}:${e.kv.key}${e.deleted ? '-' : ''}`) });
const all = { key: b('\0'), end: Buffer.alloc(0) };

/** A SQLite driver that counts the log reads it serves. */
function counted(d: Driver): Driver & { logReads: number } {
  const c = d as Driver & { logReads: number };
  c.logReads = 0;
  const readLog = d.readLog.bind(d);
  c.readLog = (after: number, max: number, range?: KeyRange) => {
    c.logReads++;
    return readLog(after, max, range);
  };
  return c;
}

describe('read cache', () => {
  let backend: FreshBackend;
  const open: Driver[] = [];
  afterEach(async () => {
    for (const d of open.splice(0)) await d.close();
    await backend?.drop();
  });
  const instance = async () => {
    const inner = counted(createDriver(backend.url, { dataDir: '/nonexistent', readCacheBytes: 0 }));
    const cached = new ReadCachedDriver(inner, { maxBytes: 64 << 20 });
    await cached.open();
    open.push(cached);
    return { inner, cached };
  };

  it('a local commit is read back, and tailed, without a query to the log', async () => {
    backend = await freshBackend('sqlite');
    const { inner, cached } = await instance();
    await cached.write(async (tx) => tx.apply(set({ entries: [put(kv('a', 2), 0), put(kv('b', 2), 1)], puts: [kv('a', 2), kv('b', 2)], revision: 2 })));
    await cached.write(async (tx) => tx.apply(set({ entries: [put(kv('a', 3, 2, 2), 0, 2), { kv: tombstone(b('b'), 3), sub: 1, deleted: true, prev_revision: 2 }], puts: [kv('a', 3, 2, 2)], deletes: [b('b')], revision: 3 })));
    const reads = await cached.read((view) => view.range({ ...all, revision: view.revision, limit: 0, countOnly: false, keysOnly: false }));
    assert.deepEqual(reads.kvs, [kv('a', 3, 2, 2)]);
    assert.deepEqual(summary(await cached.readLog(1, 100)), { through: 3, entries: ['2:a', '2:b', '3:a', '3:b-'] });
    assert.deepEqual(summary(await cached.readLog(2, 100, { key: b('b'), end: null })), { through: 3, entries: ['3:b-'] });
    assert.deepEqual(summary(await cached.readLog(1, 1)), { through: 2, entries: ['2:a', '2:b'] });
    assert.equal(inner.logReads, 0, 'answered from the copy of the log');
    // Nothing newer known here: the database is asked (another instance may have written).
    assert.deepEqual(summary(await cached.readLog(3, 100)), { through: 3, entries: [] });
    assert.equal(inner.logReads, 1);
  });

  it("another instance's commit is found in the database, then served like a local one", async () => {
    backend = await freshBackend('sqlite');
    const a = await instance();
    const other = await instance();
    await a.cached.write(async (tx) => tx.apply(set({ entries: [put(kv('a', 2), 0)], puts: [kv('a', 2)], revision: 2 })));
    await other.cached.write(async (tx) => {
      assert.equal(tx.revision, 2);
      await tx.apply(set({ entries: [put(kv('b', 3), 0)], puts: [kv('b', 3)], revision: 3 }));
    });
    // a has not seen revision 3: a linearizable read pulls it; the log read for it went to the database.
    const r = await a.cached.read((view) => view.range({ ...all, revision: view.revision, limit: 0, countOnly: false, keysOnly: false }));
    assert.deepEqual(r.kvs.map((x) => x.key.toString()), ['a', 'b']);
    assert.equal(a.inner.logReads, 1);
    // a's next commit lands after the pulled revision, and all of it is now in memory.
    await a.cached.write(async (tx) => tx.apply(set({ entries: [put(kv('c', 4), 0)], puts: [kv('c', 4)], revision: 4 })));
    assert.deepEqual(summary(await a.cached.readLog(1, 100)), { through: 4, entries: ['2:a', '3:b', '4:c'] });
    assert.equal(a.inner.logReads, 1);
  });

  it("a write holding the lock at the cache's revision reads the current view from the cache; otherwise from the database", async () => {
    backend = await freshBackend('sqlite');
    const a = await instance();
    const other = await instance();
    let queried = 0;
    const write = a.inner.write.bind(a.inner);
    a.inner.write = (fn) =>
      write((tx) =>
        fn({
          ...tx,
          getMany: (keys) => (queried++, tx.getMany(keys)),
          range: (q) => (queried++, tx.range(q)),
        }),
      );
    const current = (tx: { revision: number; range(q: any): Promise<{ kvs: KeyValue[] }> }) => tx.range({ ...all, revision: tx.revision, limit: 0, countOnly: false, keysOnly: false });
    await a.cached.write(async (tx) => tx.apply(set({ entries: [put(kv('a', 2), 0)], puts: [kv('a', 2)], revision: 2 })));
    await a.cached.write(async (tx) => {
      assert.deepEqual(await tx.getMany([b('a'), b('zz')]), [kv('a', 2), null]);
      assert.deepEqual((await current(tx)).kvs, [kv('a', 2)]);
    });
    assert.equal(queried, 0, 'answered from the cache');
    // another instance writes: under the lock the store is ahead of the cache, so the database answers
    await other.cached.write(async (tx) => tx.apply(set({ entries: [put(kv('b', 3), 0)], puts: [kv('b', 3)], revision: 3 })));
    await a.cached.write(async (tx) => {
      assert.equal(tx.revision, 3);
      assert.deepEqual(await tx.getMany([b('b')]), [kv('b', 3)]);
      assert.deepEqual((await current(tx)).kvs.map((x) => x.key.toString()), ['a', 'b']);
    });
    assert.equal(queried, 2);
  });

  it('log reads that reach the compact revision go to the database, which pruned it', async () => {
    backend = await freshBackend('sqlite');
    const { inner, cached } = await instance();
    await cached.write(async (tx) => tx.apply(set({ entries: [put(kv('a', 2), 0)], puts: [kv('a', 2)], revision: 2 })));
    await cached.write(async (tx) => tx.apply(set({ entries: [{ kv: tombstone(b('a'), 3), sub: 0, deleted: true, prev_revision: 2 }], deletes: [b('a')], revision: 3 })));
    await cached.write(async (tx) => tx.apply(set({ entries: [put(kv('z', 4), 0)], puts: [kv('z', 4)], revision: 4 })));
    await cached.write((tx) => tx.setCompactRevision(3));
    await cached.compact(3);
    // The deletion at the compact revision is gone from the log, as in etcd.
    assert.deepEqual(summary(await cached.readLog(2, 100)), { through: 4, entries: ['4:z'] });
    assert.equal(inner.logReads, 1);
    assert.deepEqual(summary(await cached.readLog(3, 100)), { through: 4, entries: ['4:z'] });
    assert.equal(inner.logReads, 1, 'above the compact revision: from memory');
  });
});

describe('the recent log', () => {
  const entry = (rev: number, key: string) => put(kv(key, rev), 0);

  it('keeps whole revisions, dropping the oldest past its size', () => {
    const log = new RecentLog(3);
    log.reset(1);
    log.append([entry(2, 'a'), entry(2, 'b')], 2);
    log.append([entry(3, 'c')], 3);
    assert.deepEqual(log.read(1, 10)?.entries.map((e) => e.kv.key.toString()), ['a', 'b', 'c']);
    log.append([entry(4, 'd')], 4); // 4 entries: revision 2 goes, whole
    assert.equal(log.read(1, 10), null, 'revision 2 is no longer complete here');
    assert.deepEqual(log.read(2, 10)?.entries.map((e) => e.kv.key.toString()), ['c', 'd']);
    assert.deepEqual(log.read(2, 1), { entries: [entry(3, 'c')], through: 3 });
    assert.equal(log.read(4, 10), null, 'nothing after the newest revision');
  });

  it('a revision larger than the limit leaves nothing older behind', () => {
    const log = new RecentLog(2);
    log.reset(1);
    log.append([entry(2, 'a')], 2);
    log.append([entry(3, 'a'), entry(3, 'b'), entry(3, 'c')], 3);
    assert.equal(log.read(1, 10), null);
    assert.deepEqual(log.read(2, 10), null, 'revision 3 was dropped too: it is not complete here');
  });
});
