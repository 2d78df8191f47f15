// Snapshots in etcd's own format, judged by a real etcd 3.4.23 both ways:
//  - ours -> etcd: a history written to us, `etcdctl snapshot save` from us,
//    `etcdctl snapshot restore`, etcd started on it: the same keys at every
//    revision since the compaction, the same watch events, leases, users,
//    roles and auth state, and our users' passwords work in etcd;
//  - etcd -> ours: the same history written to etcd, its snapshot loaded into
//    each backend (`etcd-adapter snapshot restore`, or --initial-snapshot for
//    memory), compared with the etcd it came from;
//  - a snapshot taken while writes go on is one revision's state;
//  - damaged, cut-short or unhashed files and non-empty stores are refused
//    with a clear error and nothing loaded.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startServer } from '../src/index';
import { MemoryDriver } from '../drivers/memory/memory-driver';
import { historyBatch, importSnapshot } from '../src/snapshot/import';
import type { LogEntry } from '../src/mvcc/kv';
import { writeSnapshotFile } from '../src/snapshot/export';
import { BoltWriter, type BoltEntry } from '../src/snapshot/bbolt-writer';
import { BoltReader } from '../src/snapshot/bbolt-reader';
import { backendsUnderTest, freshBackend } from './helpers/backends';
import { b, EtcdGrpcClient } from './helpers/grpc-client';
import { ctlError, etcdctl, parseJsonBig } from './helpers/etcdctl';
import { startRealEtcd, type RealEtcd } from './helpers/real-etcd';
import { waitFor } from './helpers/ports';
import { ALL, everything, kvView, leasesByTtl, ROOT_PW, rootToken, writeHistory } from './helpers/history-view';

const BIN = path.resolve(__dirname, '..', '..', 'bin', 'etcd-adapter');

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'snapshot-test-'));
}

async function saveSnapshot(endpoint: string, file: string, user = `root:${ROOT_PW}`): Promise<void> {
  const r = await etcdctl(endpoint, ['--user', user, 'snapshot', 'save', file]);
  assert.equal(r.code, 0, `snapshot save: ${r.stderr}`);
}

function snapshotStatus(file: string): { revision: number; totalKey: number } {
  const r = spawnSync('etcdctl', ['snapshot', 'status', file, '-w', 'json'], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' } });
  assert.equal(r.status, 0, r.stderr);
  return parseJsonBig(r.stdout);
}

/**
 * POST /v3/maintenance/snapshot as root: the fields of each line (runs of equal
 * lines as one), and whether the last blob is the SHA-256 of the others.
 */
async function gatewaySnapshotShape(url: string): Promise<{ lines: string[]; hashLast: boolean }> {
  const auth = await fetch(`${url}/v3/auth/authenticate`, { method: 'POST', body: JSON.stringify({ name: 'root', password: ROOT_PW }) });
  const { token } = (await auth.json()) as { token: string };
  const res = await fetch(`${url}/v3/maintenance/snapshot`, { method: 'POST', headers: { authorization: token }, body: '{}' });
  assert.equal(res.status, 200);
  const results = (await res.text()).trim().split('\n').map((l) => JSON.parse(l).result as Record<string, string>);
  const blobs = results.map((r) => Buffer.from(r.blob, 'base64'));
  const lines = results.map((r) => Object.keys(r).sort().join(',')).filter((k, i, all) => i === 0 || all[i - 1] !== k);
  return { lines, hashLast: createHash('sha256').update(Buffer.concat(blobs.slice(0, -1))).digest().equals(blobs[blobs.length - 1]) };
}

function runCli(args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

describe('snapshots in etcd format', () => {
  let etcdSource: RealEtcd;
  let etcdSnapshot: string;
  let etcdView: any;
  const dir = tmpDir();

  before(async () => {
    // etcd with the same history: the source of the etcd -> ours tests
    etcdSource = await startRealEtcd();
    const c = new EtcdGrpcClient(etcdSource.endpoint);
    await writeHistory(c);
    etcdSnapshot = path.join(dir, 'from-etcd.db');
    await saveSnapshot(etcdSource.endpoint, etcdSnapshot);
    etcdView = await everything(c);
    c.close();
  });
  after(async () => {
    await etcdSource?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const kind of backendsUnderTest()) {
    it(`${kind}: our snapshot restored into etcd serves what we serve (keys at every revision, watch events, leases, users, roles)`, async () => {
      const fresh = await freshBackend(kind);
      const server = await startServer({ backend: fresh.url });
      const c = new EtcdGrpcClient(server.endpoint);
      let restored: RealEtcd | undefined;
      try {
        await writeHistory(c);
        const ours = await everything(c);
        const file = path.join(dir, `ours-${kind}.db`);
        await saveSnapshot(server.endpoint, file);
        const status = snapshotStatus(file);
        assert.equal(status.revision, ours.revision);
        // etcdctl counts every key of every bucket: the same as in etcd's own snapshot of the same history
        assert.equal(status.totalKey, snapshotStatus(etcdSnapshot).totalKey);
        restored = await startRealEtcd([], { restore: file });
        const e = new EtcdGrpcClient(restored.endpoint);
        const theirs = await everything(e);
        e.close();
        assert.deepEqual(theirs, ours);
        // and the same history as etcd itself made of the same requests (lease ids are random: named by their TTLs)
        assert.deepEqual(leasesByTtl(ours), leasesByTtl(etcdView));
        // the gateway's stream has etcd's framing: the same fields line by line, the SHA-256 of the rest last
        assert.deepEqual(await gatewaySnapshotShape(server.url), await gatewaySnapshotShape(etcdSource.url));
        // a caller without the root role gets no snapshot
        const refused = await etcdctl(server.endpoint, ['--user', 'alice:alicepw', 'snapshot', 'save', path.join(dir, 'refused.db')]);
        assert.notEqual(refused.code, 0);
        assert.match(ctlError(refused), /permission denied/);
      } finally {
        c.close();
        await restored?.stop();
        await server.close();
        await fresh.drop();
      }
    });

    it(`${kind}: etcd's own snapshot loaded into the store serves what that etcd serves`, async () => {
      const fresh = await freshBackend(kind);
      let server;
      if (kind === 'memory') {
        server = await startServer({ initialSnapshot: etcdSnapshot });
      } else {
        const r = runCli(['snapshot', 'restore', etcdSnapshot, '--backend', fresh.url]);
        assert.equal(r.code, 0, r.err);
        assert.match(r.out, new RegExp(`revision ${etcdView.revision}, compact revision ${etcdView.compact}`));
        server = await startServer({ backend: fresh.url });
      }
      const c = new EtcdGrpcClient(server.endpoint);
      try {
        assert.deepEqual(await everything(c), { ...etcdView, leases: etcdView.leases });
        // it goes on from there: the next write is the next revision
        const put = await c.put({ key: b('next'), value: b('1') }).catch(() => null);
        assert.equal(put, null, 'auth is on: an anonymous put is refused');
        const md = await rootToken(c);
        const next = await c.call(c.kv, 'Put', { key: b('next'), value: b('1') }, md);
        assert.equal(Number(next.header.revision), etcdView.revision + 1);
        // a second load into the same store is refused, and changes nothing
        const again = runCli(['snapshot', 'restore', etcdSnapshot, '--backend', kind === 'memory' ? 'memory' : fresh.url]);
        assert.equal(again.code, kind === 'memory' ? 2 : 1);
        if (kind !== 'memory') assert.match(again.err, /the target store is not empty \(revision \d+/);
      } finally {
        c.close();
        await server.close();
        await fresh.drop();
      }
    });

    // The SQL backends share one snapshot reader (drivers/sql): memory and SQLite cover both readers.
    it(`${kind}: a snapshot taken while writes go on holds one revision's state, over many pages`, { skip: kind !== 'memory' && kind !== 'sqlite' }, async () => {
      const fresh = await freshBackend(kind);
      const server = await startServer({ backend: fresh.url });
      const c = new EtcdGrpcClient(server.endpoint);
      let restored: RealEtcd | undefined;
      let writing = true;
      try {
        for (let i = 0; i < 2000; i += 100) await Promise.all(Array.from({ length: 100 }, (_, j) => c.put({ key: b(`load/${String(i + j).padStart(5, '0')}`), value: Buffer.alloc(1500, i + j) })));
        let n = 0;
        const writer = (async () => {
          while (writing) await c.put({ key: b(`load/${String(n++ % 2000).padStart(5, '0')}`), value: b(`during ${n}`) });
        })();
        // the snapshot starts after a write made during this loop
        const start = n;
        await waitFor('writes to go on', async () => (n > start + 5 ? true : undefined));
        const file = path.join(dir, `busy-${kind}.db`);
        await saveSnapshot(server.endpoint, file, '');
        const afterSave = n;
        await waitFor('writes after the snapshot', async () => (n > afterSave + 5 ? true : undefined));
        writing = false;
        await writer;
        const status = snapshotStatus(file);
        restored = await startRealEtcd([], { restore: file });
        const e = new EtcdGrpcClient(restored.endpoint);
        const theirs = await e.range({ ...ALL });
        e.close();
        assert.equal(Number(theirs.header.revision), status.revision);
        const ours = await c.range({ ...ALL, revision: status.revision });
        assert.ok(Number(ours.header.revision) > status.revision, 'writes went on after the snapshot');
        assert.equal(theirs.kvs.length, 2000);
        assert.deepEqual(theirs.kvs.map(kvView), ours.kvs.map(kvView));
      } finally {
        writing = false;
        c.close();
        await restored?.stop();
        await server.close();
        await fresh.drop();
      }
    });
  }

  describe('refusals: nothing is loaded from a damaged file or into a used store', () => {
    let good: Buffer;
    before(() => {
      good = fs.readFileSync(etcdSnapshot);
    });
    const withHash = (body: Buffer) => Buffer.concat([body, createHash('sha256').update(body).digest()]);
    const cases: [string, () => Buffer, RegExp, boolean?][] = [
      ['a flipped byte', () => {
        const x = Buffer.from(good);
        x[x.length >> 1] ^= 0x40;
        return x;
      }, /is damaged: its SHA-256 does not match the hash saved with it/],
      ['a file cut short', () => good.subarray(0, good.length - 1000), /has no SHA-256 trailer .*cut short/],
      ['no hash (a copied db file)', () => good.subarray(0, good.length - 32), /has no SHA-256 trailer .*--skip-hash-check/],
      ['a wrong hash', () => Buffer.concat([good.subarray(0, good.length - 32), Buffer.alloc(32, 1)]), /SHA-256 does not match/],
      ['not a bbolt file (hash matches)', () => withHash(Buffer.alloc(8192, 0x41)), /not a bbolt file/],
      ['a damaged meta (hash matches)', () => {
        const x = Buffer.from(good.subarray(0, good.length - 32));
        x.writeUInt32LE(7, 16 + 40); // pgid of both metas
        x.writeUInt32LE(7, 4096 + 16 + 40);
        return withHash(x);
      }, /not a bbolt file: the meta checksum does not match/],
      ['a page pointing past the file (hash and meta checksums match)', () => {
        const x = Buffer.from(good.subarray(0, good.length - 32));
        // the root bucket's page number in both metas, past the end, with fresh checksums
        for (const at of [16, 4096 + 16]) {
          x.writeBigUInt64LE(999n, at + 16);
          let h = 0xcbf29ce484222325n;
          for (const byte of x.subarray(at, at + 56)) h = ((h ^ BigInt(byte)) * 0x100000001b3n) & 0xffffffffffffffffn;
          x.writeBigUInt64LE(h, at + 56);
        }
        return withHash(x);
      }, /outside the file/],
    ];
    for (const [what, make, error] of cases) {
      it(`${what}: refused with a clear error, the store left empty`, async () => {
        const file = path.join(dir, 'bad.db');
        fs.writeFileSync(file, make());
        const driver = new MemoryDriver();
        await assert.rejects(importSnapshot(driver, file), error);
        assert.equal(await driver.read(async (v) => v.revision), 1);
        assert.deepEqual(await driver.listLeases(), []);
      });
    }

    it('the CLI: a damaged file exits 1 and loads nothing into SQLite; bad usage exits 2; --skip-hash-check loads an unhashed file', async () => {
      const sqlite = path.join(dir, 'cli.db');
      const bad = path.join(dir, 'cli-bad.db');
      const x = Buffer.from(good);
      x[100] ^= 1;
      fs.writeFileSync(bad, x);
      const r = runCli(['snapshot', 'restore', bad, '--backend', `sqlite://${sqlite}`]);
      assert.equal(r.code, 1);
      assert.match(r.err, /^etcd-adapter snapshot: .*is damaged: its SHA-256 does not match/);
      assert.equal(runCli(['snapshot', 'restore']).code, 2);
      const missing = runCli(['snapshot', 'restore', path.join(dir, 'nosuch.db'), '--backend', `sqlite://${sqlite}`]);
      assert.equal(missing.code, 1);
      assert.match(missing.err, /cannot read the snapshot .*nosuch\.db: no such file/);
      assert.equal(runCli(['snapshot', 'restore', bad, '--backend', 'nosuch://x']).code, 2);
      const unhashed = path.join(dir, 'cli-unhashed.db');
      fs.writeFileSync(unhashed, good.subarray(0, good.length - 32));
      assert.equal(runCli(['snapshot', 'restore', unhashed, '--backend', `sqlite://${sqlite}`]).code, 1);
      const ok = runCli(['snapshot', 'restore', unhashed, '--backend', `sqlite://${sqlite}`, '--skip-hash-check']);
      assert.equal(ok.code, 0, ok.err);
      // the store was empty until then: the damaged file left nothing behind
      assert.match(ok.out, new RegExp(`revision ${etcdView.revision}, compact revision ${etcdView.compact}`));
      // and saving it back gives a file etcd reads, with the same revision
      const saved = path.join(dir, 'cli-saved.db');
      const s = runCli(['snapshot', 'save', saved, '--backend', `sqlite://${sqlite}`]);
      assert.equal(s.code, 0, s.err);
      assert.equal(snapshotStatus(saved).revision, etcdView.revision);
    });

    it('a store with data is not a target', async () => {
      const server = await startServer();
      const c = new EtcdGrpcClient(server.endpoint);
      await c.put({ key: b('x'), value: b('y') });
      c.close();
      await server.close();
      const driver = new MemoryDriver();
      await driver.write(async (tx) => tx.apply({ leasePuts: [{ id: '7', ttl: 10, expiresAt: Date.now() + 10_000 }], leaseDeletes: [], docs: [], entries: [], puts: [], deletes: [], revision: 1 }));
      await assert.rejects(importSnapshot(driver, etcdSnapshot), /the target store is not empty \(revision 1, 1 leases\)/);
      assert.equal(await driver.read(async (v) => v.revision), 1);
    });
  });
});

describe('bbolt files', () => {
  it('written and read back: inline and paged buckets, values over many pages, three-level trees, in key order', async () => {
    const dir = tmpDir();
    try {
      const file = path.join(dir, 'tree.db');
      const w = await BoltWriter.create(file);
      const many: BoltEntry[] = Array.from({ length: 60_000 }, (_, i) => ({ key: Buffer.from(`key-${String(i).padStart(8, '0')}`), value: Buffer.from(`value ${i}`) }));
      const huge: BoltEntry[] = [{ key: b('a'), value: Buffer.alloc(3 * 4096 + 5, 1) }, { key: b('b'), value: Buffer.alloc(0) }, { key: b('c'), value: Buffer.alloc(100_000, 2) }];
      await w.bucket('many', many);
      await w.bucket('huge', huge);
      await w.bucket('tiny', [{ key: b('k'), value: b('v') }]);
      await w.bucket('empty', []);
      const size = await w.finish();
      assert.equal(fs.statSync(file).size, size);
      const r = await BoltReader.open(file);
      const buckets = await r.buckets();
      assert.deepEqual([...buckets.keys()], ['empty', 'huge', 'many', 'tiny']);
      assert.equal(buckets.get('tiny')!.readBigUInt64LE(0), 0n, 'a small bucket is inline');
      assert.notEqual(buckets.get('many')!.readBigUInt64LE(0), 0n);
      const read = async (name: string) => {
        const out: { key: string; value: string }[] = [];
        for await (const e of r.entries(buckets.get(name)!)) out.push({ key: e.key.toString('hex'), value: e.value.toString('hex') });
        return out;
      };
      const hexed = (es: BoltEntry[]) => es.map((e) => ({ key: e.key.toString('hex'), value: e.value.toString('hex') }));
      assert.deepEqual(await read('many'), hexed(many));
      assert.deepEqual(await read('huge'), hexed(huge));
      assert.deepEqual(await read('empty'), []);
      await r.close();
      // etcd's tools read it too: every key of every bucket counted
      fs.appendFileSync(file, createHash('sha256').update(fs.readFileSync(file)).digest());
      const status = spawnSync('etcdctl', ['snapshot', 'status', file, '-w', 'json'], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' } });
      assert.equal(status.status, 0, status.stderr);
      assert.equal(parseJsonBig(status.stdout).totalKey, 60_000 + 3 + 1);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a compaction that starts while a snapshot is read makes it start again at the new compact revision', async () => {
    const dir = tmpDir();
    try {
      const driver = new MemoryDriver();
      for (let rev = 2; rev <= 10; rev++) {
        const entries: LogEntry[] = [{ kv: { key: b('a'), value: b(`v${rev}`), create_revision: 2, mod_revision: rev, version: rev - 1, lease: '0' }, sub: 0, deleted: false, prev_revision: 0 }];
        await driver.write(async (tx) => tx.apply(await historyBatch(tx, entries)));
      }
      let compacted = false;
      const racing = new Proxy(driver, {
        get(target, prop) {
          if (prop === 'snapshotLog') {
            return async function* (revision: number, compactRevision: number) {
              for await (const batch of target.snapshotLog(revision, compactRevision)) {
                yield batch;
                if (!compacted) {
                  compacted = true;
                  await target.write(async (tx) => tx.setCompactRevision(5));
                  await target.compact(5);
                }
              }
            };
          }
          const v = Reflect.get(target, prop);
          return typeof v === 'function' ? v.bind(target) : v;
        },
      });
      const file = path.join(dir, 'raced.db');
      const info = await writeSnapshotFile(racing, file);
      assert.ok(compacted);
      assert.equal(info.compactRevision, 5);
      const r = await BoltReader.open(file);
      const revs: number[] = [];
      for await (const e of r.entries((await r.buckets()).get('key')!)) revs.push(Number(e.key.readBigUInt64BE(0)));
      await r.close();
      assert.deepEqual(revs, [5, 6, 7, 8, 9, 10]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an empty store makes a snapshot etcd restores to revision 1', async () => {
    const dir = tmpDir();
    try {
      const file = path.join(dir, 'empty.db');
      const info = await writeSnapshotFile(new MemoryDriver(), file);
      assert.equal(info.revision, 1);
      fs.appendFileSync(file, createHash('sha256').update(fs.readFileSync(file)).digest());
      const etcd = await startRealEtcd([], { restore: file });
      try {
        const c = new EtcdGrpcClient(etcd.endpoint);
        const r = await c.range({ ...ALL });
        c.close();
        assert.equal(Number(r.header.revision), 1);
        assert.equal(r.kvs.length, 0);
      } finally {
        await etcd.stop();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
