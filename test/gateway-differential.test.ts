// The HTTP/JSON gateway against a real etcd 3.4: the same HTTP requests to
// both servers; status codes and JSON bodies must match field by field (ids
// aside). Includes the request shapes Apache APISIX sends.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { startPair, type Pair } from './helpers/pair';
import { normalize } from './helpers/normalize';
import { backendsUnderTest } from './helpers/backends';

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');

interface HttpAnswer {
  status: number;
  json?: unknown;
  text?: string;
}

async function call(base: string, method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  const res = await fetch(base + path, { method, body, headers });
  const text = await res.text();
  try {
    return { status: res.status, json: JSON.parse(text) };
  } catch {
    return { status: res.status, text };
  }
}

for (const backend of backendsUnderTest()) {
  describe(`HTTP gateway against etcd 3.4 (${backend})`, () => {
    let pair: Pair;
    before(async () => {
      pair = await startPair({ backend });
    });
    after(async () => {
      await pair?.close();
    });

    /** Same request to both; status and body must match once ids (and `ignore`) are removed. */
    async function both(path: string, body?: object | string, opts: { method?: string; headers?: Record<string, string>; ignore?: string[] } = {}) {
      const text = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
      const method = opts.method ?? 'POST';
      const e = await call(pair.etcdServer.url, method, path, text, opts.headers);
      const o = await call(pair.oursServer.url, method, path, text, opts.headers);
      assert.equal(o.status, e.status, `status of ${method} ${path} ${text}: ours ${JSON.stringify(o)}`);
      assert.deepEqual(normalize(o.json ?? o.text, opts.ignore), normalize(e.json ?? e.text, opts.ignore), `${method} ${path} ${text}`);
      return o;
    }

    it('APISIX start-up: directory puts, then one sorted range over /apisix', async () => {
      for (const dir of ['routes', 'upstreams', 'services', 'plugins', 'consumers', 'ssls']) {
        await both('/v3/kv/put', { key: b64(`/apisix/${dir}/`), value: b64('init_dir') });
      }
      await both('/v3/kv/put', { key: b64('/apisix/routes/1'), value: b64('{"uri":"/hello"}') });
      // lua-resty-etcd sends every range field; zeros and falses included
      const full = {
        key: b64('/apisix'),
        range_end: b64('/apisix0'),
        limit: 0,
        revision: 0,
        sort_order: 0,
        sort_target: 0,
        serializable: false,
        keys_only: false,
        count_only: false,
        min_mod_revision: 0,
        max_mod_revision: 0,
        min_create_revision: 0,
        max_create_revision: 0,
      };
      const r = await both('/v3/kv/range', full);
      const keys = (r.json as any).kvs.map((kv: any) => Buffer.from(kv.key, 'base64').toString());
      assert.deepEqual(keys, [...keys].sort(), 'sorted by key');
      await both('/v3/kv/range', { ...full, sort_order: 'ASCEND', sort_target: 'KEY' });
      await both('/v3/kv/range', { ...full, sort_order: 'DESCEND', sort_target: 'MOD', limit: '3' });
      await both('/v3/kv/range', { key: b64('/apisix'), range_end: b64('/apisix0'), keys_only: true, count_only: false });
      await both('/v3/kv/range', { key: b64('/apisix'), range_end: b64('/apisix0'), count_only: true });
      await both('/v3beta/kv/range', { key: b64('/apisix/routes/1') });
    });

    it('APISIX Admin API: put with prev_kv, txn compare-and-swap in camelCase, prefix delete', async () => {
      await both('/v3/kv/put', { key: b64('/apisix/routes/2'), value: b64('{"uri":"/2"}'), prev_kv: true }); // new: no prev_kv
      const upd = await both('/v3/kv/put', { key: b64('/apisix/routes/2'), value: b64('{"uri":"/2b"}'), prev_kv: true });
      const mod = Number((upd.json as any).header.revision);
      // the txn APISIX sends for a conditional update: a MOD compare, a success put, no failure branch
      const cas = (rev: number) => ({
        compare: [{ key: b64('/apisix/routes/2'), target: 'MOD', result: 'EQUAL', mod_revision: rev }],
        success: [{ requestPut: { key: b64('/apisix/routes/2'), value: b64('{"uri":"/2c"}'), prev_kv: true } }],
      });
      await both('/v3/kv/txn', cas(mod)); // succeeds
      await both('/v3/kv/txn', cas(mod)); // stale revision: not succeeded, no responses
      await both('/v3/kv/txn', { compare: [{ key: b64('/apisix/routes/2'), target: 'VERSION', result: 'GREATER', version: '0' }], success: [{ requestRange: { key: b64('/apisix/routes/2') } }, { request_txn: {} }] });
      await both('/v3/kv/txn', { compare: [{ key: b64('/x'), target: 1, result: 3, create_revision: 0 }], success: [], failure: [{ requestDeleteRange: { key: b64('/x'), prevKv: true } }] });
      await both('/v3/kv/deleterange', { key: b64('/apisix/routes/'), range_end: b64('/apisix/routes0'), prev_kv: true });
      await both('/v3/kv/deleterange', { key: b64('/apisix/routes/') });
      await both('/v3/kv/range', { key: b64('/apisix'), range_end: b64('/apisix0'), keys_only: true });
    });

    it('errors: etcd status per code and {"error","message","code"} bodies', async () => {
      await both('/v3/kv/range', {});
      await both('/v3/kv/range', '');
      await both('/v3/kv/put', { value: b64('v') });
      await both('/v3/kv/range', { key: b64('a'), revision: 100000 });
      await both('/v3/kv/put', { key: b64('a'), value: b64('v'), lease: '7587862072817366026' });
      await both('/v3/kv/put', { key: b64('a'), ignore_value: true });
      await both('/v3/kv/txn', { success: Array.from({ length: 129 }, (_, i) => ({ request_put: { key: b64(`t${i}`) } })) });
      await both('/v3/kv/txn', { success: [{ request_put: { key: b64('d') } }, { request_put: { key: b64('d') } }] });
      await both('/v3/kv/compaction', { revision: 100000 });
      await both('/v3/kv/put', { key: b64('big'), value: Buffer.alloc(1.6 * 1024 * 1024).toString('base64') });
      const { json } = await both('/v3/kv/range', { key: b64('a') });
      await both('/v3/kv/compaction', { revision: (json as any).header.revision });
      await both('/v3/kv/compaction', { revision: 1 });
      await both('/v3/kv/range', { key: b64('a'), revision: 1 });
    });

    it('input: numbers or strings for int64, names or numbers for enums, camelCase, any content type', async () => {
      await both('/v3/kv/put', { key: b64('in/1'), value: b64('1') });
      await both('/v3/kv/range', { key: b64('in/'), rangeEnd: b64('in0'), limit: '1', sortOrder: 'DESCEND', keysOnly: true });
      await both('/v3/kv/range', { key: b64('in/1'), unknown_field: [1, { a: 2 }], another: null });
      await both('/v3/kv/range', { key: b64('in/1') }, { headers: { 'content-type': 'text/plain' } });
      await both('/v3/kv/range', { key: b64('in/1') }, { headers: { 'content-type': 'application/json' } });
      await both('/v3/kv/range', { key: null });
      await both('/v3/kv/range', { key: b64('in/1'), revision: -1 });
    });

    it('input of the wrong type is a 400 with code 3', async () => {
      const bad = [
        { key: b64('a'), limit: 1.5 },
        { key: b64('a'), serializable: 'true' },
        { key: b64('a'), count_only: 1 },
        { key: b64('a'), sort_order: 'BOGUS' },
        { key: 'not base64!' },
        { key: 5 },
      ];
      for (const body of bad) {
        const e = await call(pair.etcdServer.url, 'POST', '/v3/kv/range', JSON.stringify(body));
        const o = await call(pair.oursServer.url, 'POST', '/v3/kv/range', JSON.stringify(body));
        assert.equal(o.status, 400, JSON.stringify(body));
        assert.equal(e.status, 400);
        assert.equal((o.json as any).code, 3);
        assert.equal((e.json as any).code, 3);
      }
      for (const text of ['{bad json', '[]', '"x"', '{"key":']) {
        const o = await call(pair.oursServer.url, 'POST', '/v3/kv/range', text);
        const e = await call(pair.etcdServer.url, 'POST', '/v3/kv/range', text);
        assert.equal(o.status, e.status, text);
        assert.equal((o.json as any).code, 3);
      }
      // texts Go and this server word the same way
      await both('/v3/kv/range', { key: b64('a'), limit: 1.5 });
      await both('/v3/kv/range', { key: b64('a'), sort_order: 'BOGUS' });
      await both('/v3/kv/range', { key: b64('a'), serializable: 'true' });
      await both('/v3/kv/range', '{bad json');
      // a body cut short: Go's decoder says "unexpected EOF"
      for (const text of ['{', '{"key":', '{"key":"YQ=="', '"abc', '[1,', 'tru']) await both('/v3/kv/range', text);
    });

    it('paths and methods: 404 for unknown paths, 405 for a wrong method', async () => {
      await both('/v3/kv/range', undefined, { method: 'GET' });
      await both('/v3/kv/nope', {});
      await both('/nope', {});
      await both('/v3alpha/kv/range', {});
    });

    it('cluster and maintenance paths', async () => {
      const o = await both('/v3/cluster/member/list', {}, { ignore: ['ID', 'name', 'peerURLs', 'clientURLs'] });
      // the same fields as etcd's (OpenStack's etcd3gw reads peerURLs), ids as JSON strings of digits
      const e = await call(pair.etcdServer.url, 'POST', '/v3/cluster/member/list', '{}');
      const shape = (a: HttpAnswer) => (a.json as { members: object[] }).members.map((m) => Object.keys(m).sort());
      assert.deepEqual(shape(o), shape(e));
      const [member] = (o.json as { members: { ID: string; peerURLs: string[]; clientURLs: string[] }[] }).members;
      assert.match(member.ID, /^\d+$/);
      assert.deepEqual(member.peerURLs, member.clientURLs);
      await both('/v3/maintenance/status', {}, { ignore: ['version', 'dbSize', 'dbSizeInUse', 'leader', 'raftIndex', 'raftTerm', 'raftAppliedIndex'] });
      await both('/v3/maintenance/alarm', {});
      await both('/v3/maintenance/defragment', {});
    });

    it("CORS as etcd's default --cors: the headers on every answer, OPTIONS answered 200 on any path", async () => {
      const corsOf = async (base: string, method: string, path: string, body?: string) => {
        const res = await fetch(base + path, { method, body, headers: { origin: 'http://dashboard.example' } });
        const text = await res.text();
        const h = (n: string) => res.headers.get(n);
        return { status: res.status, headers: [h('access-control-allow-origin'), h('access-control-allow-methods'), h('access-control-allow-headers')], empty: method === 'OPTIONS' ? text : undefined };
      };
      for (const [method, path, body] of [
        ['OPTIONS', '/v3/kv/range', undefined],
        ['OPTIONS', '/no/such/path', undefined],
        ['POST', '/v3/kv/range', JSON.stringify({ key: b64('a') })],
        ['POST', '/v3/kv/put', '{bad'],
        ['GET', '/version', undefined],
        ['GET', '/health', undefined],
        ['POST', '/no/such/path', '{}'],
      ] as const) {
        const [e, o] = await Promise.all([corsOf(pair.etcdServer.url, method, path, body), corsOf(pair.oursServer.url, method, path, body)]);
        assert.deepEqual(o, e, `${method} ${path}`);
      }
    });

    it('/version and /health', async () => {
      const v = await call(pair.oursServer.url, 'GET', '/version');
      assert.deepEqual(v, { status: 200, json: { etcdserver: '3.5.16', etcdcluster: '3.5.0' } });
      const ev = await call(pair.etcdServer.url, 'GET', '/version');
      assert.deepEqual(Object.keys(ev.json as object), Object.keys(v.json as object));
      const h = await call(pair.oursServer.url, 'GET', '/health');
      const eh = await call(pair.etcdServer.url, 'GET', '/health');
      assert.equal(h.status, eh.status);
      assert.equal((h.json as any).health, (eh.json as any).health);
      assert.equal((h.json as any).reason, ''); // etcd 3.5 adds the reason
    });

    it('bodies too large once encoded: etcd\'s two refusals, and one for bodies too long to parse', async () => {
      const put = (bytes: number) => JSON.stringify({ key: b64('big'), value: Buffer.alloc(bytes, 0x78).toString('base64') });
      await both('/v3/kv/put', put(1.8 * 1024 * 1024)); // over --max-request-bytes: 400, request is too large
      await both('/v3/kv/put', put(2.1 * 1024 * 1024)); // over gRPC's limit: 429, received message larger than max
      // etcd reads any body whole; this server refuses one past the JSON of the largest request unread
      const e = await call(pair.etcdServer.url, 'POST', '/v3/kv/put', put(3 * 1024 * 1024));
      const o = await call(pair.oursServer.url, 'POST', '/v3/kv/put', put(3 * 1024 * 1024));
      assert.equal(o.status, e.status);
      assert.equal((o.json as any).code, (e.json as any).code);
      assert.match((o.json as any).error, /^etcd-adapter: request body larger than \d+ bytes$/);
    });

    it('a watch whose first message is JSON of the wrong type gets etcd\'s text, with 400 and code 3 (etcd: 500, code 2)', async () => {
      for (const body of ['{"create_request":{"key":5}}', '[1,2]', '{"create_request":{"start_revision":"x"}}']) {
        const e = await call(pair.etcdServer.url, 'POST', '/v3/watch', body);
        const o = await call(pair.oursServer.url, 'POST', '/v3/watch', body);
        assert.equal(e.status, 500, body);
        assert.equal(o.status, 400, body);
        assert.equal((o.json as any).error, (e.json as any).error, body);
        assert.equal((o.json as any).code, 3);
      }
    });

    it('a watch whose first message is not JSON is refused with 400 (etcd says 500; APISIX counts 5xx against the endpoint)', async () => {
      const o = await call(pair.oursServer.url, 'POST', '/v3/watch', '{bad');
      assert.equal(o.status, 400);
      assert.equal((o.json as any).code, 3);
      const e = await call(pair.etcdServer.url, 'POST', '/v3/watch', '{bad');
      assert.equal(e.status, 500);
    });
  });
}
