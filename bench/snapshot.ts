// A snapshot of a large store: SNAPSHOT_MB of data (default 1024) put
// through the API into SQLite - half as 1 MiB values, half as 4 KiB values -
// then `etcdctl snapshot save` while a client keeps writing. Reports the
// server's RSS before and at its highest during the snapshot (sampled every
// 50 ms), the time taken, the file; then `etcdctl snapshot restore` into etcd
// 3.4 and a comparison of every key's metadata with ours at the snapshot's
// revision.
//   node dist/bench/snapshot.js            SNAPSHOT_MB=1024
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnAdapter } from '../test/helpers/spawn';
import { EtcdGrpcClient } from '../test/helpers/grpc-client';
import { etcdctl, parseJsonBig } from '../test/helpers/etcdctl';
import { startRealEtcd } from '../test/helpers/real-etcd';
import { rssBytes } from './watch';

const MB = Number(process.env.SNAPSHOT_MB ?? 1024);
const ALL = { key: Buffer.from([0]), range_end: Buffer.from([0]) };
const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;

async function fill(c: EtcdGrpcClient, prefix: string, count: number, size: number, parallel: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < count) {
        const i = next++;
        await c.put({ key: Buffer.from(`${prefix}/${String(i).padStart(7, '0')}`), value: Buffer.alloc(size, i & 0xff) });
      }
    }),
  );
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-snapshot-'));
  const server = await spawnAdapter(['--backend', `sqlite://${dir}/state.db`, '--quota-backend-bytes', String(8 * 2 ** 30)]);
  const c = new EtcdGrpcClient(server.endpoint);
  try {
    const half = (MB * 2 ** 20) / 2;
    let started = performance.now();
    await fill(c, 'big', Math.round(half / 2 ** 20), 2 ** 20, 4);
    await fill(c, 'small', Math.round(half / 4096), 4096, 64);
    const keys = Number((await c.range({ ...ALL, count_only: true })).count);
    console.log(`filled ${MB} MiB (${keys} keys) in ${((performance.now() - started) / 1000).toFixed(0)} s`);

    let writing = true;
    let writes = 0;
    const writer = (async () => {
      while (writing) {
        await c.put({ key: Buffer.from(`during/${writes % 1000}`), value: Buffer.alloc(512, writes) });
        writes++;
      }
    })();
    const pid = server.child.pid!;
    const before = rssBytes(pid);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(pid))), 50);
    const file = path.join(dir, 'snap.db');
    started = performance.now();
    const saved = await etcdctl(server.endpoint, ['--command-timeout', '3600s', 'snapshot', 'save', file]);
    const took = performance.now() - started;
    clearInterval(sampler);
    const duringSnapshot = writes;
    writing = false;
    await writer;
    if (saved.code !== 0) throw new Error(saved.stderr);
    const size = fs.statSync(file).size;
    console.log(`snapshot: ${mib(size)} in ${(took / 1000).toFixed(1)} s (${(size / 2 ** 20 / (took / 1000)).toFixed(0)} MiB/s); server RSS ${mib(before)} before, ${mib(peak)} at most during it (+${mib(peak - before)}); ${duringSnapshot} writes went on meanwhile`);

    const status = parseJsonBig(spawnSync('etcdctl', ['snapshot', 'status', file, '-w', 'json'], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' } }).stdout);
    started = performance.now();
    const etcd = await startRealEtcd(['--quota-backend-bytes', String(8 * 2 ** 30)], { restore: file });
    console.log(`etcd restored it and serves in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    try {
      const e = new EtcdGrpcClient(etcd.endpoint);
      const theirs = await e.range({ ...ALL, keys_only: true });
      const ours = await c.range({ ...ALL, keys_only: true, revision: status.revision });
      e.close();
      const meta = (kvs: any[]) => kvs.map((kv) => `${kv.key.toString('hex')}:${kv.create_revision}:${kv.mod_revision}:${kv.version}`).join('\n');
      const same = Number(theirs.header.revision) === status.revision && meta(theirs.kvs) === meta(ours.kvs);
      console.log(`restored etcd at revision ${theirs.header.revision} (snapshot ${status.revision}), ${theirs.kvs.length} keys; ours at that revision ${ours.kvs.length} keys: ${same ? 'identical' : 'DIFFERENT'}`);
      if (!same) process.exitCode = 1;
    } finally {
      await etcd.stop();
    }
  } finally {
    c.close();
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
