// Gathering in group commit (src/mvcc/write-batcher.ts): a busy store's next
// batch waits for the writers of the last one, a write after a pause or a lone
// writer does not wait, and nothing is lost when the transaction fails to open.
// The batcher's clock is stopped and moved by hand, and each batch's transaction
// lets the test act at the moment the batch is taken, so nothing here depends
// on how fast the machine is.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { MemoryDriver } from '../drivers/memory/memory-driver';
import type { Driver, WriteTxn } from '../src/mvcc/driver';
import { WriteBatcher, type WriteOp } from '../src/mvcc/write-batcher';
import { StorageUnavailableError } from '../src/errors';

/** A put of `key` that answers with the revision it got. */
function put(key: string): WriteOp<number> {
  return {
    bytes: 16,
    run: async (view) => {
      const k = Buffer.from(key);
      const prev = await view.get(k);
      const rev = view.writeRevision;
      view.put({ key: k, value: Buffer.from('v'), create_revision: prev?.create_revision ?? rev, mod_revision: rev, version: (prev?.version ?? 0) + 1, lease: '0' }, prev);
      return rev;
    },
  };
}

interface Harness {
  batcher: WriteBatcher;
  /** Sizes of the batches committed, in order. */
  sizes: number[];
  /** The batcher's clock (ms); moved only by the test. */
  clock: { now: number };
  /** Runs once a transaction has started taking its batch (the batch's wait, if any, is under way). */
  onTake(fn: () => void): void;
  /** Each transaction moves the clock by this much (how long a batch "takes"). */
  batchMs: number;
}

async function harness(wrap?: (inner: Driver) => Partial<Driver>): Promise<Harness> {
  const memory: Driver = new MemoryDriver();
  await memory.open();
  const clock = { now: 0 };
  const sizes: number[] = [];
  const hooks: (() => void)[] = [];
  const h = {} as Harness;
  h.batchMs = 3;
  h.clock = clock;
  h.sizes = sizes;
  h.onTake = (fn) => void hooks.push(fn);
  const driver = Object.create(memory) as Driver;
  driver.write = <T>(fn: (tx: WriteTxn) => Promise<T>, opts?: { deadline?: number }) =>
    memory.write(async (tx) => {
      clock.now += h.batchMs;
      // fn takes its batch synchronously, or starts waiting for more: the hook sees which
      const result = fn(tx);
      hooks.shift()?.();
      return result;
    }, opts);
  Object.assign(driver, wrap?.(memory) ?? {});
  h.batcher = new WriteBatcher(driver, { maxRequests: 256, maxBytes: 1 << 20, clock: () => clock.now, observer: { committed: (n) => void sizes.push(n), failed: () => undefined } }, () => undefined);
  return h;
}

describe('group commit gathers the writers of a busy store', () => {
  it("a busy store's next batch waits for the writers the last one answered", async () => {
    const h = await harness();
    // 8 writers; the batch takes 3 ms of the batcher's clock
    await Promise.all(Array.from({ length: 8 }, (_, i) => h.batcher.submit(put(`a${i}`))));
    assert.deepEqual(h.sizes, [8]);
    // 2 of them write again at once; when their batch is taken the other 6 are still on their way
    let pendingAtTake = -1;
    const late: Promise<number>[] = [];
    h.onTake(() => {
      pendingAtTake = h.batcher.pending;
      for (let i = 2; i < 8; i++) late.push(h.batcher.submit(put(`b${i}`)));
    });
    const early = [h.batcher.submit(put('b0')), h.batcher.submit(put('b1'))];
    const revisions = await Promise.all(early);
    revisions.push(...(await Promise.all(late)));
    assert.equal(pendingAtTake, 2, 'the batch waits, its two requests still queued');
    assert.deepEqual(h.sizes, [8, 8], 'the 6 that came while it waited joined it');
    assert.deepEqual(revisions, [10, 11, 12, 13, 14, 15, 16, 17]);
  });

  it('the wait ends when the expected writers do not come', async () => {
    const h = await harness();
    await Promise.all(Array.from({ length: 8 }, (_, i) => h.batcher.submit(put(`a${i}`))));
    // only 2 of 8 write again: they are answered once the wait (at most a batch's time) is over
    assert.deepEqual(await Promise.all([h.batcher.submit(put('b0')), h.batcher.submit(put('b1'))]), [10, 11]);
    assert.deepEqual(h.sizes, [8, 2]);
  });

  it('a write after a pause does not wait', async () => {
    const h = await harness();
    await Promise.all(Array.from({ length: 8 }, (_, i) => h.batcher.submit(put(`a${i}`))));
    h.clock.now += 10; // longer than a batch takes: the last batch's writers are not expected now
    let pendingAtTake = -1;
    h.onTake(() => (pendingAtTake = h.batcher.pending));
    await h.batcher.submit(put('b'));
    assert.equal(pendingAtTake, 0, 'taken at once');
    assert.deepEqual(h.sizes, [8, 1]);
  });

  it('a lone writer never waits', async () => {
    const h = await harness();
    const seen: number[] = [];
    for (let i = 0; i < 5; i++) {
      h.onTake(() => seen.push(h.batcher.pending));
      await h.batcher.submit(put(`k${i}`));
    }
    assert.deepEqual(seen, [0, 0, 0, 0, 0]);
    assert.deepEqual(h.sizes, [1, 1, 1, 1, 1]);
  });

  it('a fast store does not wait (a batch shorter than a timer can time)', async () => {
    const h = await harness();
    h.batchMs = 0.2;
    await Promise.all(Array.from({ length: 8 }, (_, i) => h.batcher.submit(put(`a${i}`))));
    let pendingAtTake = -1;
    h.onTake(() => (pendingAtTake = h.batcher.pending));
    await h.batcher.submit(put('b'));
    assert.equal(pendingAtTake, 0);
  });

  it('a transaction that fails to open fails the requests it would have taken, and the next ones commit', async () => {
    let failures = 1;
    const h = await harness((memory) => ({
      write: async (fn, opts) => {
        if (failures-- > 0) throw new StorageUnavailableError(new Error('connection refused'));
        return memory.write(fn, opts);
      },
    }));
    const failed = await Promise.allSettled([h.batcher.submit(put('a')), h.batcher.submit(put('b'))]);
    assert.deepEqual(
      failed.map((r) => r.status === 'rejected' && (r.reason as Error).message),
      ['etcdserver: storage unavailable: connection refused', 'etcdserver: storage unavailable: connection refused'],
    );
    assert.equal(h.batcher.pending, 0);
    assert.equal(await h.batcher.submit(put('c')), 2);
  });

  it('a transaction run again after a conflict keeps the batch it took', async () => {
    let extra: Promise<number> | null = null;
    let h: Harness | null = null;
    h = await harness((memory) => ({
      write: <T>(fn: (tx: WriteTxn) => Promise<T>, opts?: { deadline?: number }) =>
        memory.write(async (tx) => {
          if (!extra) {
            // the first run's changes are thrown away (as a rolled-back attempt's), and a request
            // arrives before the second run
            const discarded = Object.create(tx) as WriteTxn;
            discarded.apply = async () => undefined;
            await fn(discarded);
            extra = h!.batcher.submit(put('late'));
          }
          return fn(tx);
        }, opts),
    }));
    const first = await Promise.all([h.batcher.submit(put('a')), h.batcher.submit(put('b'))]);
    assert.deepEqual(first, [2, 3]);
    assert.equal(await extra, 4);
    assert.deepEqual(h.sizes, [2, 1]);
  });
});
