// Group commit must be invisible: random writes submitted all at once (so
// they share database transactions) give exactly the answers, revisions and
// log that the same writes give one at a time. Seeded, so a failure replays.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { MvccStore } from '../src/mvcc/store';
import type { RequestOp, TxnRequest, Compare } from '../src/mvcc/requests';
import { driverFactories } from './helpers/drivers';
import { normalize } from './helpers/normalize';

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const E = Buffer.alloc(0);

class Gen {
  constructor(private readonly rnd: () => number) {}
  int(n: number): number {
    return Math.floor(this.rnd() * n);
  }
  pick<T>(xs: T[]): T {
    return xs[this.int(xs.length)];
  }
  key(): Buffer {
    return Buffer.from(`${this.pick(['a', 'b'])}/${this.int(6)}`);
  }
  rangeEnd(): Buffer {
    return this.pick([E, E, Buffer.from('a0'), Buffer.from('b0'), Buffer.from([0]), Buffer.from('a/3')]);
  }
  range(maxRev: number) {
    return {
      key: this.key(),
      range_end: this.rangeEnd(),
      limit: this.pick([0, 0, 1, 2]),
      revision: this.pick([0, 0, 0, Math.max(1, maxRev - this.int(3))]),
      sort_order: this.pick([0, 0, 1, 2]),
      sort_target: this.pick([0, 0, 1, 3]),
      serializable: false,
      keys_only: this.rnd() < 0.2,
      count_only: this.rnd() < 0.1,
      min_mod_revision: 0,
      max_mod_revision: 0,
      min_create_revision: 0,
      max_create_revision: 0,
    };
  }
  put() {
    return {
      key: this.key(),
      value: Buffer.from(`v${this.int(1000)}`),
      lease: 0,
      prev_kv: this.rnd() < 0.5,
      ignore_value: this.rnd() < 0.1,
      ignore_lease: this.rnd() < 0.1,
    };
  }
  del() {
    return { key: this.key(), range_end: this.rangeEnd(), prev_kv: this.rnd() < 0.5 };
  }
  compare(): Compare {
    const target = this.int(4);
    const field = ['version', 'create_revision', 'mod_revision', 'value'][target] as Compare['target_union'];
    return {
      key: this.key(),
      range_end: this.pick([E, E, Buffer.from('a0')]),
      target,
      result: this.int(4),
      target_union: field,
      [field!]: target === 3 ? Buffer.from(`v${this.int(1000)}`) : this.int(8),
    } as Compare;
  }
  op(depth: number, maxRev: number): RequestOp {
    const r = this.rnd();
    if (r < 0.3) return { request: 'request_put', request_put: this.put() };
    if (r < 0.5) return { request: 'request_delete_range', request_delete_range: this.del() };
    if (r < 0.85 || depth > 1) return { request: 'request_range', request_range: this.range(maxRev) };
    return { request: 'request_txn', request_txn: this.txn(depth + 1, maxRev) };
  }
  txn(depth: number, maxRev: number): TxnRequest {
    const ops = (n: number) => Array.from({ length: n }, () => this.op(depth, maxRev));
    return { compare: Array.from({ length: this.int(3) }, () => this.compare()), success: ops(this.int(4)), failure: ops(this.int(3)) };
  }
  write(maxRev: number): [string, object] {
    const r = this.rnd();
    if (r < 0.4) return ['put', this.put()];
    if (r < 0.55) return ['deleteRange', this.del()];
    const t = this.txn(0, maxRev);
    t.success.push({ request: 'request_put', request_put: this.put() }); // make it a write
    return ['txn', t];
  }
}

type Method = 'put' | 'deleteRange' | 'txn' | 'range';

async function call(store: MvccStore, method: Method, req: object): Promise<unknown> {
  try {
    return { ok: await (store[method] as (r: object) => Promise<unknown>)(req) };
  } catch (err) {
    return { err: (err as Error).message };
  }
}

for (const factory of driverFactories()) {
  describe(`group commit is invisible (${factory.name})`, () => {
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      it(`seed ${seed}: concurrent writes answer as sequential ones`, async () => {
        const sequential = new MvccStore(await factory.create(), { maxTxnOps: 128 });
        const batched = new MvccStore(await factory.create(), { maxTxnOps: 128, maxBatch: 7 });
        let batches = 0;
        batched.on('commit', () => batches++);
        const gen = new Gen(prng(seed));
        let rev = 1;
        for (let wave = 0; wave < 12; wave++) {
          const writes = Array.from({ length: 1 + gen.int(20) }, () => gen.write(rev));
          const expected: unknown[] = [];
          for (const [m, req] of writes) expected.push(await call(sequential, m as Method, req));
          const actual = await Promise.all(writes.map(([m, req]) => call(batched, m as Method, req)));
          assert.deepEqual(normalize(actual), normalize(expected), `wave ${wave}`);
          rev = (await sequential.revisions()).revision;
          for (let i = 0; i < 5; i++) {
            const q = gen.range(rev);
            assert.deepEqual(normalize(await call(batched, 'range', q)), normalize(await call(sequential, 'range', q)));
          }
        }
        const logA = await sequential.driver.readLog(0, 1e6);
        const logB = await batched.driver.readLog(0, 1e6);
        assert.deepEqual(normalize(logB), normalize(logA));
        assert.ok(logA.revision > 20, 'the workload wrote something');
        assert.ok(batches < logA.revision / 2, `writes shared batches (${batches} batches for ${logA.revision - 1} revisions)`);
        await sequential.driver.close();
        await batched.driver.close();
      });
    }
  });
}
