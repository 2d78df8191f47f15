// Differential tests of Watch (etcd-facts section 4) over gRPC and over the
// HTTP gateway: the same watches and the same writes on a real etcd 3.4 and
// on this server; every answer must match (ids aside). Each watcher's events
// are compared in order; so are the other answers of a stream.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { b, type EtcdGrpcClient } from './helpers/grpc-client';
import { same, startPair, type Pair } from './helpers/pair';
import { agreed, byWatcher, grpcWatch, httpWatch } from './helpers/watch-client';
import { waitFor } from './helpers/ports';
import { parseJsonBig } from './helpers/etcdctl';
import { spawn } from 'node:child_process';
import { backendsUnderTest } from './helpers/backends';

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');
const NOPUT = 0;
const NODELETE = 1;

for (const backend of backendsUnderTest()) {
  describe(`Watch against etcd 3.4 (${backend})`, () => {
    let pair: Pair;
    before(async () => {
      // A small request limit makes fragmenting testable with small values.
      pair = await startPair({ backend, maxRequestBytes: 64 * 1024 }, ['--max-request-bytes', String(64 * 1024)]);
    });
    after(async () => {
      await pair?.close();
    });
    const write = (fn: (c: EtcdGrpcClient) => Promise<unknown>) => same(pair, fn);
    const revision = async () => Number((await same(pair, (c) => c.range({ key: b('-') }))).header.revision);

    /** Runs the same watch scenario on both servers over gRPC and compares. */
    async function grpcScenario(requests: object[], writes: () => Promise<void>, expect?: (r: any[]) => void): Promise<void> {
      const e = grpcWatch(pair.etcd);
      const o = grpcWatch(pair.ours);
      for (const r of requests) {
        e.send(r);
        o.send(r);
      }
      await agreed(e, o);
      await writes();
      const [er, or] = await agreed(e, o);
      e.close();
      o.close();
      assert.deepEqual(byWatcher(or), byWatcher(er));
      expect?.(or);
    }

    it('live events on a prefix, with puts and deletes inside and outside it', async () => {
      await grpcScenario([{ create_request: { key: b('w/'), range_end: b('w0') } }], async () => {
        await write((c) => c.put({ key: b('w/a'), value: b('1') }));
        await write((c) => c.put({ key: b('x/a'), value: b('1') }));
        await write((c) => c.put({ key: b('w/b'), value: b('2') }));
        await write((c) => c.put({ key: b('w/a'), value: b('3') }));
        await write((c) => c.deleteRange({ key: b('w/'), range_end: b('w0') }));
        await write((c) => c.txn({ success: [{ request_put: { key: b('w/t1'), value: b('t') } }, { request_put: { key: b('w/t2'), value: b('t') } }, { request_put: { key: b('y'), value: b('t') } }] }));
      }, (r) => assert.ok(r.filter((x) => x.events?.length).length >= 5, 'events arrived'));
    });

    it('history replay from a past revision, then live', async () => {
      const rev = await revision();
      await grpcScenario([{ create_request: { key: b('w/'), range_end: b('w0'), start_revision: rev - 5 } }], async () => {
        await write((c) => c.put({ key: b('w/live'), value: b('1') }));
      });
      await grpcScenario([{ create_request: { key: b('w/'), range_end: b('w0'), start_revision: 1 } }], async () => undefined);
    });

    it('single keys, from-key, all keys, the empty key, an empty range', async () => {
      await grpcScenario(
        [
          { create_request: { key: b('k1') } },
          { create_request: { key: b('k2'), range_end: b('\0') } },
          { create_request: { key: b('\0'), range_end: b('\0') } },
          { create_request: { key: b('') } },
          { create_request: { key: b('k9'), range_end: b('k1') } },
          { create_request: { key: b('k5'), range_end: b('k5') } },
        ],
        async () => {
          await write((c) => c.put({ key: b('k1'), value: b('1') }));
          await write((c) => c.put({ key: b('k3'), value: b('3') }));
          await write((c) => c.put({ key: b('a'), value: b('a') }));
          await write((c) => c.put({ key: Buffer.from([0]), value: b('zero') }));
        },
      );
    });

    it('filters and prev_kv', async () => {
      await write((c) => c.put({ key: b('f/a'), value: b('before') }));
      await grpcScenario(
        [
          { create_request: { key: b('f/'), range_end: b('f0'), filters: [NOPUT] } },
          { create_request: { key: b('f/'), range_end: b('f0'), filters: [NODELETE] } },
          { create_request: { key: b('f/'), range_end: b('f0'), filters: [NOPUT, NODELETE] } },
          { create_request: { key: b('f/'), range_end: b('f0'), prev_kv: true } },
        ],
        async () => {
          await write((c) => c.put({ key: b('f/a'), value: b('after') }));
          await write((c) => c.put({ key: b('f/b'), value: b('new') }));
          await write((c) => c.deleteRange({ key: b('f/a') }));
          await write((c) => c.put({ key: b('f/a'), value: b('again') }));
          await write((c) => c.deleteRange({ key: b('f/'), range_end: b('f0') }));
        },
      );
    });

    it('client-chosen watch ids, duplicates, automatic ids around them, cancel', async () => {
      await grpcScenario(
        [
          { create_request: { key: b('i/a'), watch_id: 1 } },
          { create_request: { key: b('i/b') } },
          { create_request: { key: b('i/c') } },
          { create_request: { key: b('i/d'), watch_id: 1 } },
          { create_request: { key: b('i/e'), watch_id: '9007199254740993' } },
          { cancel_request: { watch_id: 0 } },
          { cancel_request: { watch_id: 42 } },
          {},
        ],
        async () => {
          for (const k of ['i/a', 'i/b', 'i/c', 'i/d', 'i/e']) await write((c) => c.put({ key: b(k), value: b('v') }));
        },
      );
    });

    it('a start revision in the future delivers from that revision on', async () => {
      const rev = await revision();
      await grpcScenario([{ create_request: { key: b('u/'), range_end: b('u0'), start_revision: rev + 3 } }], async () => {
        for (let i = 0; i < 5; i++) await write((c) => c.put({ key: b(`u/${i}`), value: b('v') }));
      });
    });

    it('progress_request answers with the current revision when every watcher is caught up', async () => {
      await grpcScenario([{ create_request: { key: b('p/') } }], async () => undefined);
      const e = grpcWatch(pair.etcd);
      const o = grpcWatch(pair.ours);
      for (const w of [e, o]) w.send({ create_request: { key: b('p/x') } });
      await Promise.all([e.waitFor(1), o.waitFor(1)]);
      await write((c) => c.put({ key: b('p/x'), value: b('v') }));
      await Promise.all([e.waitFor(2), o.waitFor(2)]);
      for (const w of [e, o]) w.send({ progress_request: {} });
      const [er, or] = await Promise.all([e.waitFor(3), o.waitFor(3)]);
      e.close();
      o.close();
      assert.deepEqual(byWatcher(or), byWatcher(er));
      assert.equal(or[2].watch_id, '-1');
    });

    it('a compacted start revision: created, then compact_revision and canceled', async () => {
      await write((c) => c.put({ key: b('c/a'), value: b('1') }));
      await write((c) => c.put({ key: b('c/a'), value: b('2') }));
      const rev = await revision();
      await write((c) => c.compact({ revision: rev }));
      await grpcScenario(
        [
          { create_request: { key: b('c/'), range_end: b('c0'), start_revision: rev - 1 } },
          { create_request: { key: b('c/'), range_end: b('c0'), start_revision: rev } },
        ],
        async () => {
          await write((c) => c.put({ key: b('c/a'), value: b('3') }));
        },
        (r) => assert.ok(r.some((x) => x.compact_revision === String(rev) && x.canceled)),
      );
    });

    it('fragments a response larger than --max-request-bytes + 512 KiB when asked', async () => {
      const big = Buffer.alloc(50 * 1024, 'v');
      for (let i = 0; i < 14; i++) await write((c) => c.put({ key: b(`g/${i}`), value: big }));
      await grpcScenario(
        [
          { create_request: { key: b('g/'), range_end: b('g0'), prev_kv: true, fragment: true } },
          { create_request: { key: b('g/'), range_end: b('g0'), prev_kv: true } },
        ],
        async () => {
          await write((c) => c.deleteRange({ key: b('g/'), range_end: b('g0') }));
        },
        (r) => assert.ok(r.some((x) => x.fragment), `some response was a fragment: ${JSON.stringify(r.map((x) => [x.watch_id, x.created, x.fragment, x.events.length]))}`),
      );
    });

    it('over HTTP: the same answers, JSON lines as etcd writes them', async () => {
      const rev = await revision();
      const body = [
        { create_request: { key: b64('h/'), range_end: b64('h0') } },
        { create_request: { key: b64('h/'), range_end: b64('h0'), start_revision: rev - 3, prev_kv: true } },
        { create_request: { key: b64('h/a'), watch_id: 7, filters: ['NOPUT'] } },
        { create_request: { key: b64('h/b'), watch_id: 7 } },
        { create_request: { key: b64('h/c'), range_end: b64('h/a') } },
      ];
      const e = httpWatch(pair.etcdServer.url, body);
      const o = httpWatch(pair.oursServer.url, body);
      await agreed(e, o);
      await write((c) => c.put({ key: b('h/a'), value: b('1') }));
      await write((c) => c.deleteRange({ key: b('h/a'), prev_kv: true }));
      const [er, or] = await agreed(e, o);
      e.close();
      o.close();
      assert.equal(o.status(), 200);
      assert.deepEqual(byWatcher(or), byWatcher(er));
      assert.ok(or.every((l) => 'result' in l));
    });

    it('over HTTP: a compacted watch and APISIX\'s exact watch shape', async () => {
      const rev = await revision();
      await write((c) => c.put({ key: b('/apisix/routes/1'), value: b('{"uri":"/a"}') }));
      // APISIX: a watch on /apisix/ from revision + 1, filters and prev_kv absent
      const apisix = [{ create_request: { key: b64('/apisix'), range_end: b64('/apisix0'), start_revision: String(rev + 1) } }];
      const e = httpWatch(pair.etcdServer.url, apisix);
      const o = httpWatch(pair.oursServer.url, apisix);
      await Promise.all([e.waitFor(2), o.waitFor(2)]); // created, then the replayed put
      await write((c) => c.put({ key: b('/apisix/routes/2'), value: b('{"uri":"/b"}') }));
      const [er, or] = await Promise.all([e.waitFor(3), o.waitFor(3)]);
      e.close();
      o.close();
      assert.deepEqual(byWatcher(or), byWatcher(er));
      const compacted = [{ create_request: { key: b64('/apisix'), range_end: b64('/apisix0'), start_revision: 2 } }];
      const ce = httpWatch(pair.etcdServer.url, compacted);
      const co = httpWatch(pair.oursServer.url, compacted);
      const [cer, cor] = await Promise.all([ce.waitFor(2), co.waitFor(2)]);
      ce.close();
      co.close();
      assert.deepEqual(byWatcher(cor), byWatcher(cer));
      assert.ok(cor[1].result.canceled && cor[1].result.compact_revision);
    });

    it('etcdctl watch prints the same', async () => {
      const rev = await revision();
      await write((c) => c.put({ key: b('e/1'), value: b('one') }));
      await write((c) => c.put({ key: b('e/2'), value: b('two') }));
      await write((c) => c.deleteRange({ key: b('e/1') }));
      const args = ['watch', 'e/', '--prefix', '--rev', String(rev + 1), '--prev-kv', '-w', 'json'];
      // etcdctl watch runs until interrupted: until it has printed the three events
      const [e, o] = await Promise.all([runUntil(pair.etcdServer.endpoint, args, 3), runUntil(pair.oursServer.endpoint, args, 3)]);
      assert.ok(e.length > 0);
      assert.deepEqual(o.map(normalizeCtl), e.map(normalizeCtl));
    });
  });
}

/** etcdctl watch, until it has printed `events` events (or 20 s): its JSON lines. */
async function runUntil(endpoint: string, args: string[], events: number): Promise<any[]> {
  const child = spawn('etcdctl', ['--endpoints', endpoint, ...args], { env: { ...process.env, ETCDCTL_API: '3' } });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const lines = () =>
    out
      .split('\n')
      .filter((l) => l.trim().startsWith('{') && l.trim().endsWith('}'))
      .map(parseJsonBig);
  await waitFor(`etcdctl watch to print ${events} events`, async () => (lines().reduce((n, l) => n + (l.Events?.length ?? 0), 0) >= events ? true : undefined)).catch(() => undefined);
  child.kill('SIGKILL'); // SIGINT may be ignored when the tests run in the background
  await new Promise((r) => child.once('close', r));
  return lines();
}

function normalizeCtl(x: any): unknown {
  const { Header, ...rest } = x;
  return { ...rest, Header: { revision: Header?.revision } };
}

