// etcdctl (3.4) against a real etcd and against this server: the same
// commands, the same output (-w json parsed, ids removed; plain output as text).
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { startServer, type RunningServer } from '../src/index';
import { ctlError, etcdctl, parseJsonBig } from './helpers/etcdctl';
import { normalize } from './helpers/normalize';
import { startRealEtcd, type RealEtcd } from './helpers/real-etcd';
import { backendsUnderTest, freshBackend, type FreshBackend } from './helpers/backends';

for (const backend of backendsUnderTest()) {
  describe(`etcdctl against etcd 3.4 (${backend})`, () => {
    let etcd: RealEtcd;
    let ours: RunningServer;
    let fresh: FreshBackend;
    before(async () => {
      fresh = await freshBackend(backend);
      [etcd, ours] = await Promise.all([startRealEtcd(), startServer({ backend: fresh.url })]);
    });
    after(async () => {
      await Promise.all([etcd?.stop(), ours?.close()]);
      await fresh?.drop();
    });

    /** Runs the command on both; compares exit code, stdout (JSON-aware) and the error line. */
    async function both(args: string[], opts: { stdin?: string; ignore?: string[] } = {}) {
      const [e, o] = [await etcdctl(etcd.endpoint, args, opts.stdin), await etcdctl(ours.endpoint, args, opts.stdin)];
      assert.equal(o.code, e.code, `exit code of etcdctl ${args.join(' ')}: ours ${o.stderr}`);
      assert.equal(ctlError(o), ctlError(e), `error of etcdctl ${args.join(' ')}`);
      if (args.includes('json')) {
        // etcdctl prints its usage text instead of JSON when it rejects the arguments
        const parse = (s: string) => (s.trim().startsWith('{') || s.trim().startsWith('[') ? parseJsonBig(s) : s);
        assert.deepEqual(normalize(parse(o.stdout), opts.ignore), normalize(parse(e.stdout), opts.ignore), `etcdctl ${args.join(' ')}`);
      } else {
        assert.equal(o.stdout, e.stdout, `etcdctl ${args.join(' ')}`);
      }
      return o;
    }

    it('endpoint status of the empty store: dbSize is there, as etcd never reports 0', async () => {
      const sizes = async (endpoint: string) => {
        const [st] = parseJsonBig((await etcdctl(endpoint, ['endpoint', 'status', '-w', 'json'])).stdout);
        return [st.Status.dbSize, st.Status.dbSizeInUse].map(Number);
      };
      for (const [size, inUse] of [await sizes(etcd.endpoint), await sizes(ours.endpoint)]) {
        assert.ok(size > 0 && inUse > 0, `dbSize ${size}, dbSizeInUse ${inUse}`);
      }
    });

    it('put, get and del with their flags', async () => {
      await both(['put', 'foo', 'bar', '-w', 'json']);
      await both(['put', 'foo', 'baz', '--prev-kv', '-w', 'json']);
      await both(['put', 'foo', 'baz', '--prev-kv']);
      for (const k of ['k1', 'k2', 'k3', 'k4']) await both(['put', k, `value of ${k}`]);
      await both(['get', 'foo', '-w', 'json']);
      await both(['get', 'foo']);
      await both(['get', 'k', '--prefix', '-w', 'json']);
      await both(['get', 'k', '--prefix', '--limit', '2', '-w', 'json']);
      await both(['get', 'k2', '--from-key', '--keys-only']);
      await both(['get', 'k', '--prefix', '--sort-by', 'MODIFY', '--order', 'DESCEND', '-w', 'json']);
      await both(['get', 'k', '--prefix', '--count-only', '-w', 'json']);
      await both(['get', 'k', '--prefix', '--print-value-only']);
      await both(['get', 'foo', '--rev', '2', '-w', 'json']);
      await both(['get', 'k1', 'k3', '-w', 'json']);
      await both(['get', 'nothing-here', '-w', 'json']);
      await both(['del', 'k1', '--prev-kv', '-w', 'json']);
      await both(['del', 'k', '--prefix']);
      await both(['del', 'nothing-here']);
      await both(['get', '', '-w', 'json']);
      await both(['get', 'foo', '--rev', '1000']);
      await both(['put', 'foo', '--ignore-value', '-w', 'json']);
      await both(['put', 'missing', '--ignore-value']);
      await both(['put', 'foo', 'x', '--lease', '1234abcd']);
    });

    it('txn from stdin, both branches', async () => {
      await both(['txn', '-w', 'json'], { stdin: 'mod("foo") > "0"\n\nput foo txn-then\nget foo\n\nput foo txn-else\n\n' });
      await both(['txn', '-w', 'json'], { stdin: 'value("foo") = "nope"\n\nput foo then\n\nget foo\ndel foo\n\n' });
      await both(['txn'], { stdin: 'version("foo") = "0"\n\nput foo again\n\n\n' });
      await both(['txn', '-w', 'json'], { stdin: 'create("foo") > "0"\nvalue("foo") = "again"\n\nget foo --prefix\n\n\n' });
    });

    it('compact and its errors', async () => {
      const status = parseJsonBig((await etcdctl(ours.endpoint, ['get', 'x', '-w', 'json'])).stdout);
      const rev = Number(status.header.revision);
      await both(['compact', String(rev - 2)]);
      await both(['compact', String(rev - 2)]);
      await both(['compact', String(rev + 100)]);
      await both(['compact', String(rev), '--physical']);
      await both(['get', 'foo', '--rev', String(rev - 3)]);
    });

    it('endpoint status, endpoint health and member list', async () => {
      const varying = ['Endpoint', 'version', 'dbSize', 'dbSizeInUse', 'leader', 'raftIndex', 'raftAppliedIndex', 'raftTerm', 'took', 'endpoint'];
      await both(['endpoint', 'status', '-w', 'json'], { ignore: varying });
      await both(['endpoint', 'health', '-w', 'json'], { ignore: varying });
      const o = await both(['member', 'list', '-w', 'json'], { ignore: ['ID', 'name', 'peerURLs', 'clientURLs'] });
      const members = parseJsonBig(o.stdout).members;
      assert.deepEqual(members[0].clientURLs, [ours.url]);
      // the same fields as etcd's (clients such as etcd3gw read peerURLs); ours are the client URLs by default
      const shape = (out: string) => parseJsonBig(out).members.map((m: object) => Object.keys(m).sort());
      assert.deepEqual(shape(o.stdout), shape((await etcdctl(etcd.endpoint, ['member', 'list', '-w', 'json'])).stdout));
      assert.deepEqual(members[0].peerURLs, [ours.url]);
      const table = await etcdctl(ours.endpoint, ['endpoint', 'status', '-w', 'table']);
      assert.equal(table.code, 0);
      assert.match(table.stdout, /3\.5\.\d+/);
    });
  });
}
