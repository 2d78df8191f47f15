// Differential tests of the KV service: every request goes to a real etcd
// 3.4 and to this server, in the same order, so both stores hold the same
// history and every answer (revisions included) must be identical.
// Covers etcd-facts sections 1-3 and the KV errors of section 7.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { b, type EtcdGrpcClient } from './helpers/grpc-client';
import { same, startPair, type Pair } from './helpers/pair';
import { backendsUnderTest } from './helpers/backends';

const EQUAL = 0, GREATER = 1, LESS = 2, NOT_EQUAL = 3;
const VERSION = 0, CREATE = 1, MOD = 2, VALUE = 3, LEASE = 4;
const ASCEND = 1, DESCEND = 2;
const S_KEY = 0, S_VERSION = 1, S_CREATE = 2, S_MOD = 3, S_VALUE = 4;

const put = (key: string, value = '', extra: object = {}) => ({ request_put: { key: b(key), value: b(value), ...extra } });
const get = (key: string, extra: object = {}) => ({ request_range: { key: b(key), ...extra } });
const del = (key: string, extra: object = {}) => ({ request_delete_range: { key: b(key), ...extra } });
const txnOp = (t: object) => ({ request_txn: t });
const cmp = (key: string, target: number, result: number, field: string, value: unknown, extra: object = {}) => ({
  key: b(key),
  target,
  result,
  [field]: value,
  ...extra,
});

for (const backend of backendsUnderTest()) {
  describe(`KV against etcd 3.4 (${backend})`, () => {
    let pair: Pair;
    before(async () => {
      pair = await startPair({ backend });
    });
    after(async () => {
      await pair?.close();
    });
    const both = (fn: (c: EtcdGrpcClient) => Promise<unknown>, ignore?: string[]) => same(pair, fn, ignore);

    it('section 1: revisions, versions, tombstones', async () => {
      const r = await both((c) => c.range({ key: b('a') }));
      assert.equal(r.header.revision, '1', 'an empty store is at revision 1');
      await both((c) => c.put({ key: b('a'), value: b('1') }));
      await both((c) => c.put({ key: b('a'), value: b('1') })); // same value still bumps
      await both((c) => c.put({ key: b('a'), value: b('2'), prev_kv: true }));
      await both((c) => c.range({ key: b('a') }));
      await both((c) => c.deleteRange({ key: b('a'), prev_kv: true }));
      await both((c) => c.deleteRange({ key: b('a') })); // deletes nothing: no new revision
      await both((c) => c.range({ key: b('a') }));
      await both((c) => c.put({ key: b('a'), value: b('3') })); // version 1, new create_revision
      await both((c) => c.range({ key: b('a') }));
      await both((c) => c.range({ key: b('a'), revision: 3 })); // historical, header = current
      await both((c) => c.range({ key: b('a'), revision: 5 })); // at the deletion: absent
      await both((c) => c.range({ key: b('a'), revision: -1 })); // <= 0 means latest
    });

    it('section 2: range intervals, limit, count, more', async () => {
      for (const k of ['r/a', 'r/b', 'r/c', 'r/d', 'r/e', 'r0', 'r/\xff', 'q']) await both((c) => c.put({ key: Buffer.from(k, 'latin1'), value: b(`v-${k}`) }));
      await both((c) => c.put({ key: b('r/c'), value: b('c2') }));
      await both((c) => c.put({ key: b('r/c'), value: b('a3') }));
      await both((c) => c.put({ key: b('r/d'), value: b('d2') }));
      const ranges: [string, string][] = [
        ['r/a', ''], // one key
        ['r/b', 'r/d'], // [key, end)
        ['r/', 'r0'], // prefix
        ['r/c', '\0'], // every key >= r/c
        ['\0', '\0'], // all keys
        ['r/d', 'r/b'], // key > end: empty
        ['r/b', 'r/b'], // key == end: empty
        ['zzz', ''], // missing key
        ['r/\xff', '\0'],
      ];
      for (const [key, end] of ranges) {
        await both((c) => c.range({ key: Buffer.from(key, 'latin1'), range_end: Buffer.from(end, 'latin1') }));
      }
      const prefix = { key: b('r/'), range_end: b('r0') };
      for (const limit of [1, 2, 5, 6, 100, -1]) await both((c) => c.range({ ...prefix, limit }));
      await both((c) => c.range({ ...prefix, count_only: true }));
      await both((c) => c.range({ ...prefix, count_only: true, limit: 2 }));
      await both((c) => c.range({ ...prefix, keys_only: true }));
      await both((c) => c.range({ ...prefix, keys_only: true, limit: 2 }));
      await both((c) => c.range({ ...prefix, serializable: true }));
      await both((c) => c.range({ ...prefix, revision: 14 }));
      await both((c) => c.range({ ...prefix, revision: 14, limit: 1 }));
    });

    it('section 2: sort orders and targets', async () => {
      const prefix = { key: b('r/'), range_end: b('r0') };
      for (const target of [S_KEY, S_VERSION, S_CREATE, S_MOD, S_VALUE]) {
        for (const order of [0, ASCEND, DESCEND]) {
          await both((c) => c.range({ ...prefix, sort_target: target, sort_order: order }));
          await both((c) => c.range({ ...prefix, sort_target: target, sort_order: order, limit: 2 }));
        }
      }
    });

    it('section 2: min/max mod and create revision filters', async () => {
      const prefix = { key: b('r/'), range_end: b('r0') };
      await both((c) => c.range({ ...prefix, min_mod_revision: 15 }));
      await both((c) => c.range({ ...prefix, max_mod_revision: 15 }));
      await both((c) => c.range({ ...prefix, min_create_revision: 13 }));
      await both((c) => c.range({ ...prefix, max_create_revision: 13 }));
      await both((c) => c.range({ ...prefix, min_mod_revision: 12, max_mod_revision: 18, limit: 2 }));
      await both((c) => c.range({ ...prefix, min_create_revision: 12, limit: 1, sort_order: DESCEND }));
    });

    it('section 2 and 7: range errors', async () => {
      await both((c) => c.range({ key: b('') }));
      await both((c) => c.range({ key: b(''), range_end: b('\0') }));
      await both((c) => c.range({ key: b('a'), revision: 1000 }));
    });

    it('invalid sort options: etcd 3.5 refuses them (3.4 crashes on a bad target, so ours alone)', async () => {
      for (const req of [{ sort_order: 7 }, { sort_target: 9 }, { sort_target: -1, sort_order: 1 }]) {
        await assert.rejects(pair.ours.range({ key: b('a'), ...req }), { code: 3, details: 'etcdserver: invalid sort option' });
      }
      await assert.rejects(pair.ours.txn({ success: [get('a', { sort_order: 3 })] }), { code: 3, details: 'etcdserver: invalid sort option' });
    });

    it('a present but empty range_end: to the end on reads, one key on writes, as in etcd', async () => {
      const empty = Buffer.alloc(0);
      await both((c) => c.range({ key: b('r/c'), range_end: empty }));
      await both((c) => c.txn({ compare: [cmp('r/', VERSION, GREATER, 'version', 0, { range_end: empty })], success: [get('r/d', { range_end: empty, count_only: true })] }));
      await both((c) => c.put({ key: b('z/1'), value: b('1') }));
      await both((c) => c.put({ key: b('z/2'), value: b('2') }));
      // writes go through raft in etcd, which drops the empty field: one key
      await both((c) => c.deleteRange({ key: b('z/1'), range_end: empty, prev_kv: true }));
      await both((c) => c.txn({ compare: [cmp('r/', VERSION, GREATER, 'version', 0, { range_end: empty })], success: [put('z/3', '3')] }));
      await both((c) => c.range({ key: b('z/'), range_end: b('z0') }));
    });

    it('section 3: put options', async () => {
      await both((c) => c.put({ key: b('p/new'), value: b('x'), prev_kv: true })); // no prev_kv: it did not exist
      await both((c) => c.put({ key: b('p/new'), value: b('y'), prev_kv: true }));
      await both((c) => c.put({ key: b('p/missing'), ignore_value: true }));
      await both((c) => c.put({ key: b('p/missing'), ignore_lease: true }));
      await both((c) => c.put({ key: b('p/new'), value: b('v'), ignore_value: true }));
      await both((c) => c.put({ key: b('p/new'), lease: 5, ignore_lease: true }));
      await both((c) => c.put({ key: b('p/new'), ignore_value: true, prev_kv: true })); // keeps the value
      await both((c) => c.put({ key: b('p/new'), value: b('z'), ignore_lease: true }));
      await both((c) => c.put({ key: b('p/lease'), value: b('z'), lease: '7587862072817366026' }));
      await both((c) => c.put({ key: b(''), value: b('z') }));
      await both((c) => c.range({ key: b('p/'), range_end: b('p0') }));
      await both((c) => c.put({ key: Buffer.from([0, 1, 0xff]), value: Buffer.from([0xff, 0]) })); // binary keys and values
      await both((c) => c.range({ key: Buffer.from([0, 1, 0xff]) }));
    });

    it('section 3: delete range', async () => {
      for (const k of ['d/a', 'd/b', 'd/c', 'd/d']) await both((c) => c.put({ key: b(k), value: b(k) }));
      await both((c) => c.deleteRange({ key: b('d/a'), range_end: b('d/c'), prev_kv: true }));
      await both((c) => c.deleteRange({ key: b('d/c'), range_end: b('\0') }));
      await both((c) => c.deleteRange({ key: b('d/'), range_end: b('d0') })); // nothing left
      await both((c) => c.deleteRange({ key: b('') }));
    });

    it('section 3: txn compares on every target and result', async () => {
      await both((c) => c.put({ key: b('t/k'), value: b('m') }));
      await both((c) => c.put({ key: b('t/k'), value: b('m') }));
      const fields: [number, string, unknown[]][] = [
        [VERSION, 'version', [0, 1, 2, 3]],
        [CREATE, 'create_revision', [0, 35, 36, 1000]],
        [MOD, 'mod_revision', [0, 36, 37, 1000]],
        [VALUE, 'value', [b(''), b('a'), b('m'), b('z')]],
        [LEASE, 'lease', [0, 1, '-1']],
      ];
      for (const key of ['t/k', 't/missing']) {
        for (const [target, field, values] of fields) {
          for (const value of values) {
            for (const result of [EQUAL, GREATER, LESS, NOT_EQUAL]) {
              await both((c) => c.txn({ compare: [cmp(key, target, result, field, value)], success: [get(key)], failure: [] }));
            }
          }
        }
      }
      // the operand counts only when the oneof matches the target
      await both((c) => c.txn({ compare: [cmp('t/k', MOD, GREATER, 'version', 1000)], success: [get('t/k')] }));
    });

    it('section 3: txn compares over ranges', async () => {
      for (const k of ['c/a', 'c/b', 'c/c']) await both((c) => c.put({ key: b(k), value: b('same') }));
      const range = { range_end: b('c0') };
      await both((c) => c.txn({ compare: [cmp('c/', VALUE, EQUAL, 'value', b('same'), range)], success: [get('c/a')] }));
      await both((c) => c.put({ key: b('c/b'), value: b('other') }));
      await both((c) => c.txn({ compare: [cmp('c/', VALUE, EQUAL, 'value', b('same'), range)], success: [get('c/a')] }));
      await both((c) => c.txn({ compare: [cmp('c/', VERSION, GREATER, 'version', 0, range)], success: [get('c/a')] }));
      await both((c) => c.txn({ compare: [cmp('c/', VERSION, EQUAL, 'version', 1, range)], success: [get('c/a')] }));
      await both((c) => c.txn({ compare: [cmp('e/', VERSION, EQUAL, 'version', 0, { range_end: b('e0') })], success: [get('c/a')] }));
      await both((c) => c.txn({ compare: [cmp('e/', VALUE, NOT_EQUAL, 'value', b('x'), { range_end: b('e0') })], success: [get('c/a')] }));
      await both((c) => c.txn({ compare: [cmp('c/a', MOD, LESS, 'mod_revision', 1000, { range_end: b('\0') })], success: [get('c/a')] }));
    });

    it('section 3: txn ops run in order and see earlier writes', async () => {
      await both((c) =>
        c.txn({
          compare: [cmp('o/x', VERSION, EQUAL, 'version', 0)],
          success: [put('o/x', '1'), get('o/x'), put('o/y', '2', { prev_kv: true }), get('o/', { range_end: b('o0'), count_only: true }), del('o/z')],
          failure: [get('o/x')],
        }),
      );
      await both((c) =>
        c.txn({
          compare: [cmp('o/x', VERSION, EQUAL, 'version', 0)],
          success: [put('o/x', 'never')],
          failure: [del('o/x', { prev_kv: true }), get('o/x'), get('o/', { range_end: b('o0') }), put('o/w', 'w'), get('o/', { range_end: b('o0'), limit: 1 })],
        }),
      );
      await both((c) => c.txn({ compare: [], success: [], failure: [] }));
      await both((c) => c.txn({ compare: [], success: [get('o/y'), get('o/', { range_end: b('o0') })] })); // read-only
      await both((c) => c.txn({ compare: [cmp('o/y', VALUE, EQUAL, 'value', b('nope'))], success: [put('o/q', 'q')] })); // no failure branch
      await both((c) => c.txn({ success: [get('o/y', { revision: 3 }), del('o/none')] })); // deletes nothing: no revision
    });

    it('section 3: nested txns', async () => {
      await both((c) =>
        c.txn({
          compare: [],
          success: [
            put('n/a', '1'),
            // compares of nested txns see the state before the whole txn
            txnOp({ compare: [cmp('n/a', VERSION, EQUAL, 'version', 0)], success: [put('n/b', 'then'), get('n/a')], failure: [put('n/b', 'else')] }),
            txnOp({ compare: [cmp('n/a', VERSION, GREATER, 'version', 0)], success: [put('n/c', 'then')], failure: [put('n/c', 'else'), txnOp({ success: [put('n/d', 'deep')] })] }),
            get('n/', { range_end: b('n0') }),
          ],
        }),
      );
      await both((c) => c.txn({ success: [txnOp({ success: [get('n/a')] })] }));
      await both((c) => c.txn({ success: [txnOp({})] }));
    });

    it('section 3 and 7: txn op limits', async () => {
      const ops = (n: number, p: string) => Array.from({ length: n }, (_, i) => put(`${p}/${i}`, 'v'));
      await both((c) => c.txn({ success: ops(128, 'l') }));
      await both((c) => c.txn({ success: ops(129, 'l') }));
      await both((c) => c.txn({ failure: ops(129, 'l') }));
      await both((c) => c.txn({ compare: Array.from({ length: 129 }, () => cmp('l/0', VERSION, GREATER, 'version', 0)), success: [] }));
      await both((c) => c.txn({ success: [...ops(100, 'm'), txnOp({ success: ops(28, 'mn') })] })); // nested budget 28: fits
      await both((c) => c.txn({ success: [...ops(100, 'm2'), txnOp({ success: ops(29, 'mo') })] })); // 29: too many
      await both((c) => c.txn({ compare: [{ key: b('') }], success: [] }));
      await both((c) => c.txn({ success: [put('')] }));
      await both((c) => c.txn({ success: [get('')] }));
      await both((c) => c.txn({ success: [{}] })); // an empty op
    });

    it('section 3 and 7: duplicate keys in a txn', async () => {
      await both((c) => c.txn({ success: [put('u/a'), put('u/a')] }));
      await both((c) => c.txn({ success: [put('u/a'), del('u/a')] }));
      await both((c) => c.txn({ success: [del('u/a'), put('u/a')] }));
      await both((c) => c.txn({ success: [put('u/b'), del('u/a', { range_end: b('u/c') })] }));
      await both((c) => c.txn({ success: [put('u/b'), del('u/a', { range_end: b('\0') })] })); // etcd takes "\0" literally here
      await both((c) => c.txn({ success: [txnOp({ success: [put('u/d')], failure: [put('u/d')] })] })); // then/else: fine
      await both((c) => c.txn({ success: [txnOp({ success: [put('u/e')] }), txnOp({ success: [put('u/e')] })] }));
      await both((c) => c.txn({ success: [put('u/f'), txnOp({ success: [put('u/f')] })] }));
      await both((c) => c.txn({ success: [del('u/g'), txnOp({ success: [put('u/g')] })] }));
      await both((c) => c.txn({ success: [txnOp({ success: [del('u/h')] }), put('u/h')] }));
      await both((c) => c.txn({ success: [put('u/i'), txnOp({ success: [del('u/i')] })] }));
      await both((c) => c.txn({ success: [put('u/j')], failure: [put('u/j')] }));
      await both((c) => c.range({ key: b('u/'), range_end: b('u0') }));
    });

    it('section 3 and 7: pre-checks fail the whole txn before anything is applied', async () => {
      await both((c) => c.txn({ success: [put('x/1', 'a'), put('x/2', '', { ignore_value: true })] }));
      await both((c) => c.txn({ success: [put('x/1', 'a'), put('x/3', 'v', { lease: 99 })] }));
      await both((c) => c.txn({ success: [put('x/1', 'a'), get('x/1', { revision: 100000 })] }));
      await both((c) => c.txn({ success: [put('x/1', 'a'), txnOp({ success: [put('x/4', '', { ignore_lease: true })] })] }));
      await both((c) => c.txn({ success: [put('x/1', 'a'), put('x/2', 'v', { ignore_value: true })] }));
      await both((c) => c.range({ key: b('x/'), range_end: b('x0') }));
      // checks only the chosen branch
      await both((c) => c.txn({ compare: [cmp('x/1', VERSION, EQUAL, 'version', 0)], success: [put('x/2', '', { ignore_value: true })], failure: [put('x/1', 'b')] }));
    });

    it('section 3 and 7: compaction', async () => {
      const { header } = await both((c) => c.range({ key: b('a') }));
      const current = Number(header.revision);
      await both((c) => c.compact({ revision: current + 1 }));
      await both((c) => c.compact({ revision: 10 }));
      await both((c) => c.compact({ revision: 10 }));
      await both((c) => c.compact({ revision: 5 }));
      await both((c) => c.range({ key: b('r/'), range_end: b('r0'), revision: 9 }));
      await both((c) => c.range({ key: b('r/'), range_end: b('r0'), revision: 10 }));
      await both((c) => c.range({ key: b('a'), revision: 10 }));
      await both((c) => c.txn({ success: [get('a', { revision: 9 })] }));
      await both((c) => c.compact({ revision: 20, physical: true }));
      await both((c) => c.range({ key: b('r/'), range_end: b('r0'), revision: 20 }));
      await both((c) => c.range({ key: b('\0'), range_end: b('\0'), revision: 25 }));
      await both((c) => c.compact({ revision: current }));
      await both((c) => c.range({ key: b('\0'), range_end: b('\0'), revision: current }));
      await both((c) => c.range({ key: b('a') })); // compaction did not bump the revision
    });

    it('section 7: request size limit', async () => {
      const big = Buffer.alloc(1.5 * 1024 * 1024, 'x');
      await both((c) => c.put({ key: b('big'), value: big }));
      await both((c) => c.put({ key: b('big'), value: big.subarray(0, big.length - 1024) }));
      await both((c) => c.txn({ success: [put('big2', big.toString())] }));
      await both((c) => c.range({ key: b('big'), keys_only: true }));
      await both((c) => c.deleteRange({ key: b('big') }));
    });
  });
}
