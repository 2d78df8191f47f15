// Prometheus metrics, scraped and parsed: etcd's series exist with etcd's
// types and label names (compared with a real etcd 3.4 scraped in the same
// run), counters move by exactly the requests sent over gRPC and HTTP, the
// store's size and the watcher count follow the store, on every backend; and
// `etcdctl check datascale`, which reads process_resident_memory_bytes, passes.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { b } from './helpers/grpc-client';
import { startPair, type Pair } from './helpers/pair';
import { backendsUnderTest } from './helpers/backends';
import { grpcWatch, httpWatch } from './helpers/watch-client';
import { labelNames, scrape, value, type Family } from './helpers/prometheus';
import { waitFor } from './helpers/ports';
import { etcdctl } from './helpers/etcdctl';

/** Every series this server exports in etcd's name, with its type and label names. */
const ETCD_SERIES: [string, Family['type'], string[]][] = [
  ['etcd_server_has_leader', 'GAUGE', []],
  ['etcd_server_is_leader', 'GAUGE', []],
  ['etcd_server_leader_changes_seen_total', 'COUNTER', []],
  ['etcd_server_quota_backend_bytes', 'GAUGE', []],
  ['etcd_server_proposals_committed_total', 'GAUGE', []],
  ['etcd_server_proposals_applied_total', 'GAUGE', []],
  ['etcd_server_proposals_pending', 'GAUGE', []],
  ['etcd_server_proposals_failed_total', 'COUNTER', []],
  ['etcd_server_client_requests_total', 'COUNTER', ['client_api_version', 'type']],
  ['etcd_server_version', 'GAUGE', ['server_version']],
  ['etcd_cluster_version', 'GAUGE', ['cluster_version']],
  ['etcd_mvcc_db_total_size_in_bytes', 'GAUGE', []],
  ['etcd_mvcc_db_total_size_in_use_in_bytes', 'GAUGE', []],
  ['etcd_mvcc_range_total', 'COUNTER', []],
  ['etcd_mvcc_put_total', 'COUNTER', []],
  ['etcd_mvcc_delete_total', 'COUNTER', []],
  ['etcd_mvcc_txn_total', 'COUNTER', []],
  ['etcd_debugging_mvcc_keys_total', 'GAUGE', []],
  ['etcd_debugging_mvcc_current_revision', 'GAUGE', []],
  ['etcd_debugging_mvcc_compact_revision', 'GAUGE', []],
  ['etcd_debugging_mvcc_watcher_total', 'GAUGE', []],
  ['etcd_debugging_mvcc_slow_watcher_total', 'GAUGE', []],
  ['etcd_debugging_mvcc_events_total', 'COUNTER', []],
  ['etcd_debugging_mvcc_db_compaction_total_duration_milliseconds', 'HISTOGRAM', []],
  ['etcd_debugging_mvcc_db_compaction_keys_total', 'COUNTER', []],
  ['etcd_disk_backend_commit_duration_seconds', 'HISTOGRAM', []],
  ['etcd_network_client_grpc_received_bytes_total', 'COUNTER', []],
  ['etcd_network_client_grpc_sent_bytes_total', 'COUNTER', []],
  ['grpc_server_started_total', 'COUNTER', ['grpc_method', 'grpc_service', 'grpc_type']],
  ['grpc_server_handled_total', 'COUNTER', ['grpc_code', 'grpc_method', 'grpc_service', 'grpc_type']],
  ['grpc_server_msg_received_total', 'COUNTER', ['grpc_method', 'grpc_service', 'grpc_type']],
  ['grpc_server_msg_sent_total', 'COUNTER', ['grpc_method', 'grpc_service', 'grpc_type']],
  ['process_resident_memory_bytes', 'GAUGE', []],
  ['process_cpu_seconds_total', 'COUNTER', []],
  ['process_open_fds', 'GAUGE', []],
];

const b64 = (s: string) => Buffer.from(s).toString('base64');

for (const backend of backendsUnderTest()) {
  describe(`metrics (${backend})`, () => {
    let pair: Pair;
    before(async () => {
      pair = await startPair({ backend });
    });
    after(async () => {
      await pair?.close();
    });
    const ours = () => scrape(pair.oursServer.url);

    it('etcd\'s series are there, with etcd\'s types and label names', async () => {
      await pair.ours.put({ key: b('m'), value: b('v') });
      await pair.ours.range({ key: b('m') });
      const w = grpcWatch(pair.ours);
      w.send({ create_request: { key: b('m') } });
      await w.waitFor(1);
      w.close();
      const m = await ours();
      for (const [name, type, labels] of ETCD_SERIES) {
        const f = m.get(name);
        assert.ok(f, `${name} is exported`);
        assert.equal(f.type, type, `${name} is a ${type}`);
        if (f.metrics.length > 0 && labels.length > 0) assert.deepEqual(labelNames(f), labels, `${name}'s labels`);
      }
      assert.equal(value(m, 'etcd_server_has_leader'), 1);
      assert.ok(value(m, 'process_resident_memory_bytes') > 0);
    });

    it('counters move by exactly the requests sent, over gRPC and over HTTP', async () => {
      const before = await ours();
      for (let i = 0; i < 7; i++) await pair.ours.put({ key: b(`c/${i}`), value: b('v') });
      for (let i = 0; i < 5; i++) {
        const res = await fetch(`${pair.oursServer.url}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: b64(`c/${i}`) }) });
        assert.equal(res.status, 200);
      }
      await pair.ours.txn({ success: [{ request_put: { key: b('c/t'), value: b('v') } }, { request_range: { key: b('c/0') } }] });
      await pair.ours.deleteRange({ key: b('c/0') });
      await assert.rejects(pair.ours.put({ key: b(''), value: b('v') })); // refused: empty key
      const now = await ours();
      const moved = (name: string, match?: Record<string, string>) => value(now, name, match) - value(before, name, match);
      assert.equal(moved('etcd_mvcc_put_total'), 7 + 1, 'puts: 7, and the one in the txn');
      assert.equal(moved('etcd_mvcc_range_total'), 5 + 1, 'ranges: 5 over HTTP, and the one in the txn');
      assert.equal(moved('etcd_mvcc_txn_total'), 1);
      assert.equal(moved('etcd_mvcc_delete_total'), 1);
      const kv = (method: string, code = 'OK') => ({ grpc_service: 'etcdserverpb.KV', grpc_method: method, grpc_type: 'unary', grpc_code: code });
      assert.equal(moved('grpc_server_handled_total', kv('Put')), 7);
      assert.equal(moved('grpc_server_handled_total', kv('Put', 'InvalidArgument')), 1);
      assert.equal(moved('grpc_server_handled_total', kv('Range')), 5, 'gateway calls count as the gRPC calls they are');
      assert.equal(moved('grpc_server_started_total', { grpc_method: 'Put' }), 8);
      assert.equal(moved('grpc_server_msg_received_total', { grpc_method: 'Range' }), 5);
      assert.equal(moved('grpc_server_msg_sent_total', { grpc_method: 'Put' }), 7);
      assert.equal(moved('etcd_server_proposals_committed_total'), 7 + 1 + 1, 'writes committed: the puts, the txn, the delete');
      assert.ok(moved('etcd_network_client_grpc_received_bytes_total') > 0);
      assert.ok(moved('etcd_network_client_grpc_sent_bytes_total') > 0);
      assert.equal(moved('etcd_debugging_mvcc_current_revision'), 7 + 1 + 1);
    });

    it('the store\'s size and keys follow what is stored', async () => {
      const before = await ours();
      // random bytes: PostgreSQL compresses long values (TOAST), repeated bytes would take no room
      for (let i = 0; i < 20; i++) await pair.ours.put({ key: b(`big/${i}`), value: randomBytes(100_000) });
      const after = await ours();
      assert.equal(value(after, 'etcd_debugging_mvcc_keys_total') - value(before, 'etcd_debugging_mvcc_keys_total'), 20);
      // MySQL's table sizes come from InnoDB's statistics, which catch up in the background
      const grown = async () => value(await ours(), 'etcd_mvcc_db_total_size_in_bytes') >= value(before, 'etcd_mvcc_db_total_size_in_bytes') + 20 * 100_000 * 0.9;
      await waitFor('the size to grow by what was written', async () => ((await grown()) ? true : undefined), 60000).catch(() => undefined);
      assert.ok(await grown(), 'the size grew by what was written');
      assert.ok(value(after, 'etcd_mvcc_db_total_size_in_use_in_bytes') > 0);
    });

    it('the watcher count follows watchers opened and closed, on both transports', async () => {
      const watchers = async () => value(await ours(), 'etcd_debugging_mvcc_watcher_total');
      const base = await watchers();
      const g = grpcWatch(pair.ours);
      for (let i = 0; i < 3; i++) g.send({ create_request: { key: b(`w/${i}`) } });
      const h = httpWatch(pair.oursServer.url, [{ create_request: { key: b64('w/h') } }]);
      await Promise.all([g.waitFor(3), h.waitFor(1)]);
      assert.equal(await watchers(), base + 4);
      g.send({ cancel_request: { watch_id: 0 } });
      await g.waitFor(4);
      assert.equal(await watchers(), base + 3);
      g.close();
      h.close();
      await waitFor('closed streams to drop their watchers', async () => ((await watchers()) === base ? true : undefined));
    });
  });
}

describe('metrics against etcd 3.4', () => {
  let pair: Pair;
  before(async () => {
    pair = await startPair();
  });
  after(async () => {
    await pair?.close();
  });

  it('every metric both export has the same type and label names in both', async () => {
    // The same traffic to both, so that labelled series exist on both sides.
    for (const c of [pair.etcd, pair.ours]) {
      await c.put({ key: b('d'), value: b('v') });
      await c.range({ key: b('d') });
      await c.compact({ revision: 2, physical: true });
      await c.keepAliveOnce(1).catch(() => undefined);
      const w = grpcWatch(c);
      w.send({ create_request: { key: b('d') } });
      await w.waitFor(1);
      w.close();
    }
    await etcdctl(pair.etcdServer.endpoint, ['get', 'd']);
    await etcdctl(pair.oursServer.endpoint, ['get', 'd']);
    const [e, o] = await Promise.all([scrape(pair.etcdServer.url), scrape(pair.oursServer.url)]);
    const shared = [...o.keys()].filter((n) => e.has(n));
    assert.ok(shared.length >= 30, `${shared.length} metrics in common`);
    const differences: string[] = [];
    for (const name of shared) {
      const [ef, of] = [e.get(name)!, o.get(name)!];
      if (ef.type !== of.type) differences.push(`${name}: type ${of.type}, etcd ${ef.type}`);
      if (ef.metrics.length > 0 && of.metrics.length > 0 && labelNames(ef).join() !== labelNames(of).join()) {
        differences.push(`${name}: labels ${labelNames(of)}, etcd ${labelNames(ef)}`);
      }
    }
    assert.deepEqual(differences, []);
    // etcd's names we export that etcd 3.4 does not have (3.5+ or ours): none of etcd's prefixes
    const onlyOurs = [...o.keys()].filter((n) => n.startsWith('etcd_') && !n.startsWith('etcd_adapter_') && !e.has(n));
    assert.deepEqual(onlyOurs, [], 'every etcd_ metric we export, etcd 3.4 exports too');
  });

  it('etcdctl check datascale passes (it reads process_resident_memory_bytes)', async () => {
    const out = await etcdctl(pair.oursServer.endpoint, ['check', 'datascale']);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /PASS: Approximate system memory used/);
  });
});
