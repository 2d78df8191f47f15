// etcd_debugging_mvcc_keys_total kept by the log tail: one count, then the
// tail's creations and deletions; a count taken while entries arrive, and a
// tail that skipped revisions (a compaction it fell behind) counting again.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { LiveKeyCount } from '../src/server/key-count';
import type { LogEntry } from '../src/mvcc/kv';
import type { LogRead } from '../src/mvcc/driver';

const entry = (key: string, revision: number, kind: 'create' | 'update' | 'delete'): LogEntry => ({
  kv: { key: Buffer.from(key), value: Buffer.alloc(0), create_revision: revision, mod_revision: revision, version: kind === 'create' ? 1 : 2, lease: '0' },
  sub: 0,
  deleted: kind === 'delete',
  prev_revision: kind === 'create' ? 0 : revision - 1,
});

const read = (entries: LogEntry[], compactRevision = 0): LogRead => {
  const through = Math.max(0, ...entries.map((e) => e.kv.mod_revision));
  return { entries, through, revision: through, compactRevision };
};

describe('live key count', () => {
  it('counts once, then follows creations and deletions; updates and entries already counted change nothing', async () => {
    let tail = 10;
    const counts: number[] = [];
    const c = new LiveKeyCount(
      () => tail,
      async (rev) => {
        counts.push(rev);
        return 5;
      },
    );
    c.onLog(read([entry('ignored', 9, 'create')]), 8); // before the first count: nothing to keep yet
    assert.equal(await c.get(), 5);
    assert.deepEqual(counts, [10]);
    c.onLog(read([entry('a', 10, 'create'), entry('b', 11, 'create'), entry('c', 12, 'update'), entry('d', 13, 'delete'), entry('e', 14, 'create')]), 9);
    tail = 14;
    assert.equal(await c.get(), 5 + 2 - 1, 'rev 10 was in the count; 11 and 14 created, 13 deleted');
    assert.deepEqual(counts, [10], 'counted once');
  });

  it('entries fanned out while the count runs are added to it', async () => {
    let release!: (n: number) => void;
    const c = new LiveKeyCount(
      () => 20,
      () => new Promise<number>((r) => (release = r)),
    );
    const first = c.get();
    const second = c.get(); // a scrape while counting shares the count
    c.onLog(read([entry('x', 21, 'create'), entry('y', 22, 'create')]), 20);
    release(3);
    assert.equal(await first, 5);
    assert.equal(await second, 5);
  });

  it('a tail read that skipped compacted revisions makes it count again', async () => {
    let tail = 5;
    let n = 1;
    const c = new LiveKeyCount(
      () => tail,
      async () => n,
    );
    assert.equal(await c.get(), 1);
    c.onLog(read([entry('a', 6, 'create')]), 5);
    assert.equal(await c.get(), 2);
    // the tail was at 6; the next read starts past a compaction at 50
    tail = 60;
    n = 40;
    c.onLog(read([entry('z', 60, 'create')], 50), 6);
    assert.equal(await c.get(), 40, 'counted again at the tail');
  });

  it('a failed count is not kept: the next read counts again', async () => {
    let fail = true;
    const c = new LiveKeyCount(
      () => 1,
      async () => {
        if (fail) throw new Error('database down');
        return 7;
      },
    );
    await assert.rejects(c.get(), /database down/);
    fail = false;
    assert.equal(await c.get(), 7);
  });
});
