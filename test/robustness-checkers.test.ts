// The robustness checkers on hand-made histories: each bug of the list below,
// put into a history by hand, must be caught; the correct histories beside
// them (concurrency, unknown outcomes, lease expiry, filters) must pass.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import type { History, KeyValue, Operation, Request, Response, WatchEvent, WatchRecord, WatchResponseRecord } from './robustness/history';
import { checkHistory } from './robustness/check';
import { checkLinearizable } from './robustness/linearizability';

let nextId = 0;
function op(client: number, call: number, ret: number | null, input: Request, output?: Response, extra: Partial<Operation> = {}): Operation {
  return { id: nextId++, client, instance: 0, transport: 'grpc', call, ret: ret ?? Infinity, input, ...(output ? { output } : { unknown: 'timeout' }), ...extra };
}
const kv = (key: string, value: string, create: number, mod: number, version: number, lease = '0'): KeyValue => ({ key, value, create, mod, version, lease });
const put = (key: string, value: string, lease?: string): Request => ({ type: 'put', key, value, ...(lease ? { lease } : {}) });
const get = (key: string, end?: string): Request => ({ type: 'range', key, ...(end ? { end } : {}) });
const read = (revision: number, kvs: KeyValue[]): Response => ({ revision, kvs, count: kvs.length });

function history(operations: Operation[], watches: WatchRecord[] = []): History {
  return { seed: 0, backend: 'hand-made', instances: 1, operations, watches, faults: [] };
}

function watch(responses: Partial<WatchResponseRecord>[], create: Partial<WatchRecord['create']> = {}): WatchRecord {
  return {
    id: nextId++,
    instance: 0,
    transport: 'grpc',
    create: { key: 'a', end: '\0', startRevision: 2, prevKv: false, filters: [], progressNotify: false, fragment: false, ...create },
    openedAt: 0,
    responses: [{ time: 0, revision: 1, created: true, events: [] }, ...responses.map((r) => ({ time: 1, revision: 0, events: [], ...r }))],
    ending: 'open',
  };
}
const putEv = (k: KeyValue, prev?: KeyValue): WatchEvent => ({ type: 'PUT', kv: k, ...(prev ? { prev } : {}) });

/** Three puts and a txn writing two keys: revisions 2..5. */
function writes(): Operation[] {
  return [
    op(1, 0, 1, put('a', '1'), { revision: 2 }),
    op(1, 2, 3, put('b', '1'), { revision: 3 }),
    op(1, 4, 5, put('a', '2'), { revision: 4 }),
    op(1, 6, 7, { type: 'txn', compare: [{ key: 'a', target: 'VALUE', result: 'EQUAL', value: '2' }], success: [{ put: { key: 'c', value: '1' } }, { put: { key: 'd', value: '1' } }], failure: [] }, { revision: 5, succeeded: true, results: [{ put: true }, { put: true }] }),
  ];
}
/** The events of writes(), as a watch of everything from revision 2 delivers them. */
const allEvents = () => ({
  r2: [putEv(kv('a', '1', 2, 2, 1))],
  r3: [putEv(kv('b', '1', 3, 3, 1))],
  r4: [putEv(kv('a', '2', 2, 4, 2), kv('a', '1', 2, 2, 1))],
  r5: [putEv(kv('c', '1', 5, 5, 1)), putEv(kv('d', '1', 5, 5, 1))],
});
function goodWatch(prevKv = false): WatchRecord {
  const e = allEvents();
  const strip = (evs: WatchEvent[]) => (prevKv ? evs : evs.map(({ type, kv }) => ({ type, kv })));
  return watch(
    [
      { revision: 2, events: strip(e.r2) },
      { revision: 3, events: strip(e.r3) },
      { revision: 4, events: strip(e.r4) },
      { revision: 5, events: strip(e.r5) },
    ],
    { prevKv },
  );
}

function violationsOf(h: History): string[] {
  return checkHistory(h).violations.map((v) => v.check);
}

describe('robustness checkers: correct histories pass', () => {
  it('sequential writes, reads and a watch with prev_kv', () => {
    const h = history([...writes(), op(2, 8, 9, get('a', '\0'), read(5, [kv('a', '2', 2, 4, 2), kv('b', '1', 3, 3, 1), kv('c', '1', 5, 5, 1), kv('d', '1', 5, 5, 1)]))], [goodWatch(true), goodWatch(false)]);
    const r = checkHistory(h);
    assert.equal(r.ok, true, r.text);
    assert.equal(r.linearizable, true);
  });

  it('concurrent operations linearize in the order their revisions say, not the order they were called', () => {
    const h = history([
      op(1, 0, 10, put('a', 'x'), { revision: 3 }),
      op(2, 1, 5, put('a', 'y'), { revision: 2 }),
      op(3, 6, 7, get('a'), read(2, [kv('a', 'y', 2, 2, 1)])), // before the slow put took effect
      op(3, 11, 12, get('a'), read(3, [kv('a', 'x', 2, 3, 2)])),
    ]);
    assert.equal(checkHistory(h).ok, true, checkHistory(h).text);
  });

  it('an unknown outcome may have taken effect (seen by a read) or not (never seen)', () => {
    const h = history([
      op(1, 0, null, put('a', 'lost?')), // took effect: a later read sees it
      op(2, 0, null, put('b', 'never')), // did not
      op(3, 5, 6, get('a', 'c'), read(2, [kv('a', 'lost?', 2, 2, 1)])),
    ]);
    const r = checkHistory(h);
    assert.equal(r.ok, true, r.text);
  });

  it('a lease expiring: its keys vanish with no request to delete them', () => {
    const h = history([
      op(1, 0, 1, { type: 'leaseGrant', ttl: 1 }, { revision: 1, id: '7' }),
      op(1, 2, 3, put('a', '1', '7'), { revision: 2 }),
      op(2, 4, 5, get('a'), read(2, [kv('a', '1', 2, 2, 1, '7')])),
      op(2, 1500, 1501, get('a'), read(3, [])),
      op(1, 1502, 1503, put('a', '2', '7'), { error: { code: 5, message: 'etcdserver: requested lease not found' } }),
    ]);
    const r = checkHistory(h);
    assert.equal(r.ok, true, r.text);
  });

  it('two writes of unknown outcome that no read orders are ordered by what the full-keyspace watch saw', () => {
    const ops = [op(1, 0, null, put('a', '1')), op(2, 0, null, put('b', '1')), op(3, 5, 6, get('a', 'c'), read(3, [kv('a', '1', 3, 3, 1), kv('b', '1', 2, 2, 1)]))];
    const all = watch([{ revision: 2, events: [putEv(kv('b', '1', 2, 2, 1))] }, { revision: 3, events: [putEv(kv('a', '1', 3, 3, 1))] }], { key: '\0', end: '\0' });
    const onlyA = watch([{ revision: 3, events: [putEv(kv('a', '1', 3, 3, 1))] }], { key: 'a', end: undefined });
    const r = checkHistory(history(ops, [all, onlyA]));
    assert.equal(r.ok, true, r.text);
  });

  it("a watch from a compaction's revision without that revision's DELETE and prev_kv, as etcd 3.4 serves it", () => {
    const ops = [
      op(1, 0, 1, put('a', '1'), { revision: 2 }),
      op(1, 2, 3, put('b', '1'), { revision: 3 }),
      op(1, 4, 5, { type: 'txn', compare: [], success: [{ del: { key: 'a' } }, { put: { key: 'b', value: '2' } }], failure: [] }, { revision: 4, succeeded: true, results: [{ deleted: 1 }, { put: true }] }),
      op(1, 6, 7, { type: 'compact', revision: 4 }, { revision: 4 }),
    ];
    const w = watch([{ time: 8, revision: 4, events: [putEv(kv('b', '2', 3, 4, 2))] }], { startRevision: 4, prevKv: true });
    const r = checkHistory(history(ops, [w]));
    assert.equal(r.ok, true, r.text);
    // the same watch without the compaction misses an event
    assert.deepEqual(violationsOf(history(ops.slice(0, 3), [w])), ['reliable']);
  });

  it('a watch with a NOPUT filter and progress notifications', () => {
    const ops = [op(1, 0, 1, put('a', '1'), { revision: 2 }), op(1, 2, 3, { type: 'delete', key: 'a' }, { revision: 3, deleted: 1 }), op(1, 4, 5, put('b', '1'), { revision: 4 })];
    const del: WatchEvent = { type: 'DELETE', kv: kv('a', '', 0, 3, 0) };
    const w = watch([{ revision: 2 }, { revision: 3, events: [del] }, { revision: 4 }], { filters: ['NOPUT'] });
    const r = checkHistory(history(ops, [w]));
    assert.equal(r.ok, true, r.text);
  });
});

describe('robustness checkers: each bug is caught', () => {
  it('a stale read (an old value after a newer write was acknowledged)', () => {
    const h = history([...writes(), op(2, 8, 9, get('a'), read(5, [kv('a', '1', 2, 2, 1)]))]);
    assert.deepEqual(violationsOf(h), ['linearizable']);
  });

  it('a read at an old revision after a newer write was acknowledged', () => {
    const h = history([...writes(), op(2, 8, 9, get('a'), read(3, [kv('a', '1', 2, 2, 1)]))]);
    assert.deepEqual(violationsOf(h), ['linearizable']);
  });

  it('a revision reused after a restart', () => {
    const h = history([op(1, 0, 1, put('a', '1'), { revision: 2 }), op(1, 2, 3, put('b', '1'), { revision: 2 })]);
    assert.deepEqual(violationsOf(h), ['linearizable']);
  });

  it('an acknowledged write lost (the store came back without it)', () => {
    const h = history([op(1, 0, 1, put('a', '1'), { revision: 2 }), op(2, 5, 6, get('a'), read(1, []), { final: true })]);
    assert.deepEqual(violationsOf(h), ['linearizable']);
  });

  it('a lease gone before its TTL ran out', () => {
    const h = history([op(1, 0, 1, { type: 'leaseGrant', ttl: 60 }, { revision: 1, id: '7' }), op(1, 2, 3, put('a', '1', '7'), { error: { code: 5, message: 'etcdserver: requested lease not found' } })]);
    assert.deepEqual(violationsOf(h), ['linearizable']);
  });

  it('keys deleted by a lease expiry before the lease could expire', () => {
    const h = history([
      op(1, 0, 1, { type: 'leaseGrant', ttl: 60 }, { revision: 1, id: '7' }),
      op(1, 2, 3, put('a', '1', '7'), { revision: 2 }),
      op(2, 10, 11, get('a'), read(3, [])),
    ]);
    assert.deepEqual(violationsOf(h), ['linearizable']);
  });

  it('a txn that took the wrong branch', () => {
    const h = history([
      op(1, 0, 1, put('a', '1'), { revision: 2 }),
      op(1, 2, 3, { type: 'txn', compare: [{ key: 'a', target: 'VERSION', result: 'EQUAL', value: 0 }], success: [{ put: { key: 'a', value: 'x' } }], failure: [] }, { revision: 3, succeeded: true, results: [{ put: true }] }),
    ]);
    assert.deepEqual(violationsOf(h), ['linearizable']);
  });

  it('a key still there after its lease was revoked', () => {
    const h = history([
      op(1, 0, 1, { type: 'leaseGrant', ttl: 60 }, { revision: 1, id: '7' }),
      op(1, 2, 3, put('a', '1', '7'), { revision: 2 }),
      op(1, 4, 5, { type: 'leaseRevoke', id: '7' }, { revision: 3 }),
      op(2, 6, 7, get('a'), read(3, [kv('a', '1', 2, 2, 1, '7')])),
    ]);
    assert.deepEqual(violationsOf(h), ['linearizable']);
  });

  it('a lost watch event', () => {
    const w = goodWatch();
    w.responses.splice(2, 1); // revision 3
    assert.deepEqual(violationsOf(history(writes(), [goodWatch(), w])), ['reliable']);
  });

  it('a full-keyspace watch whose event no order of the KV history makes', () => {
    const w = goodWatch();
    w.create.key = '\0';
    w.create.end = '\0';
    w.responses[2] = { ...w.responses[2], events: [putEv(kv('b', 'other', 3, 3, 1))] };
    assert.deepEqual(violationsOf(history(writes(), [w])), ['watch matches KV', 'event']);
  });

  it('a duplicated watch event', () => {
    const w = goodWatch();
    w.responses.splice(3, 0, w.responses[2]);
    assert.ok(violationsOf(history(writes(), [w])).includes('unique'));
  });

  it('events out of order', () => {
    const w = goodWatch();
    [w.responses[2], w.responses[3]] = [w.responses[3], w.responses[2]];
    assert.ok(violationsOf(history(writes(), [w])).includes('ordered'));
  });

  it("a revision's events split over two responses", () => {
    const w = goodWatch();
    const [c, d] = w.responses[4].events;
    w.responses.splice(4, 1, { time: 1, revision: 5, events: [c] }, { time: 1, revision: 5, events: [d] });
    assert.deepEqual(violationsOf(history(writes(), [w])), ['atomic']);
  });

  it('a progress notification ahead of the events', () => {
    const w = goodWatch();
    w.responses.splice(2, 0, { time: 1, revision: 4, events: [] });
    assert.ok(violationsOf(history(writes(), [w])).includes('bookmarkable'));
  });

  it('a wrong prev_kv', () => {
    const w = goodWatch(true);
    w.responses[3] = { ...w.responses[3], events: [putEv(kv('a', '2', 2, 4, 2), kv('a', 'zzz', 2, 2, 1))] };
    assert.deepEqual(violationsOf(history(writes(), [w])), ['prev_kv']);
  });

  it('a create not marked as one (version 2 on a new key)', () => {
    const w = goodWatch();
    w.responses[2] = { ...w.responses[2], events: [putEv(kv('b', '1', 3, 3, 2))] };
    assert.deepEqual(violationsOf(history(writes(), [w])), ['event']);
  });

  it('a filter not obeyed (a PUT on a NOPUT watch)', () => {
    const w = goodWatch();
    w.create.filters = ['NOPUT'];
    assert.deepEqual(violationsOf(history(writes(), [w])), ['reliable']);
  });

  it('a watch that misses the last events although it reported progress past them', () => {
    const w = goodWatch();
    w.responses.splice(4, 1, { time: 1, revision: 5, events: [] });
    assert.ok(violationsOf(history(writes(), [w])).includes('bookmarkable'));
  });

  it('a read at a past revision that returns another revision\'s state', () => {
    const h = history([...writes(), op(2, 8, 9, { type: 'range', key: 'a', revision: 3 }, read(5, [kv('a', '2', 2, 4, 2)]))]);
    assert.deepEqual(violationsOf(h), ['historical read']);
  });

  it('a compacted revision served after the compaction finished', () => {
    const h = history([...writes(), op(3, 8, 9, { type: 'compact', revision: 4 }, { revision: 5 }), op(2, 10, 11, { type: 'range', key: 'a', revision: 3 }, read(5, [kv('a', '1', 2, 2, 1)]))]);
    assert.deepEqual(violationsOf(h), ['compaction']);
  });

  it('a serializable read of a state the store never had', () => {
    const h = history([...writes(), op(2, 8, 9, { type: 'range', key: 'a', serializable: true }, read(3, [kv('a', '2', 2, 4, 2)]))]);
    assert.deepEqual(violationsOf(h), ['serializable read']);
  });

  it('an unknown outcome cannot explain two effects of one write', () => {
    const h = history([op(1, 0, null, put('a', 'x')), op(2, 5, 6, get('a'), read(3, [kv('a', 'x', 2, 3, 2)]))]);
    assert.deepEqual(violationsOf(h), ['linearizable']);
  });

  it('the report names the failing operation and a short failing sub-history', () => {
    const h = history([...writes(), op(2, 8, 9, get('a'), read(5, [kv('a', '1', 2, 2, 1)]))]);
    const r = checkHistory(h);
    assert.match(r.text, /cannot be placed before it returned/);
    assert.match(r.text, /Shortest failing sub-history found \(1 operations/);
  });

  it('the search is bounded: past its step budget it says inconclusive', () => {
    // Twelve leases revoked concurrently with unknown outcomes: every subset is a state of its own.
    const grants = Array.from({ length: 12 }, (_, i) => op(i, i, i + 0.5, { type: 'leaseGrant', ttl: 600 }, { revision: 1, id: String(100 + i) }));
    const revokes = Array.from({ length: 12 }, (_, i) => op(i, 20, null, { type: 'leaseRevoke', id: String(100 + i) }));
    assert.equal(checkLinearizable([...grants, ...revokes], { maxSteps: 10 }).ok, 'inconclusive');
    assert.equal(checkLinearizable([...grants, ...revokes]).ok, true);
  });
});
