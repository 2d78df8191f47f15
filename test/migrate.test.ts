// `etcd-adapter migrate` from a live etcd 3.4.23 while it takes writes:
// the adapter ends with exactly etcd's keys, history and revisions (the
// snapshot, then every revision followed under its own number), leases
// granted and revoked on etcd after the snapshot included; an instance
// serving the target store meanwhile streams the followed revisions to its
// watchers; writing to the target from elsewhere stops the migration.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { startServer } from '../src/index';
import { backendsUnderTest, freshBackend } from './helpers/backends';
import { b, EtcdGrpcClient } from './helpers/grpc-client';
import { startRealEtcd } from './helpers/real-etcd';
import { waitFor } from './helpers/ports';
import { ALL, everything, ROOT_PW, rootToken, writeHistory } from './helpers/history-view';

const BIN = path.resolve(__dirname, '..', '..', 'bin', 'etcd-adapter');

interface Migration {
  child: ChildProcess;
  /** The last revision it said it reached. */
  revision(): number;
  output(): string;
  exited: Promise<number>;
}

function startMigration(from: string, backend: string, user?: string): Migration {
  const child = spawn(process.execPath, [BIN, 'migrate', '--from', from, '--backend', backend, ...(user ? ['--user', user] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let revision = 0;
  child.stdout!.on('data', (d) => {
    out += d;
    for (const m of String(d).matchAll(/at revision (\d+)/g)) revision = Number(m[1]);
  });
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? -1)));
  return { child, revision: () => revision, output: () => out, exited };
}

/** Writes of every kind, as root, on etcd. */
async function moreWrites(c: EtcdGrpcClient, md: grpc.Metadata, round: number): Promise<void> {
  await c.call(c.kv, 'Put', { key: b(`live/${round % 5}`), value: b(`round ${round}`) }, md);
  await c.call(c.kv, 'Txn', { compare: [], success: [{ request_put: { key: b(`tx/${round}`), value: b('a') } }, { request_delete_range: { key: b(`live/${(round + 2) % 5}`) } }], failure: [] }, md);
  if (round % 4 === 0) {
    const l = await c.call(c.lease, 'LeaseGrant', { TTL: 300 + round, ID: 0 }, md);
    await c.call(c.kv, 'Put', { key: b(`leased/${round}`), value: b('x'), lease: l.ID }, md);
    if (round % 8 === 0) await c.call(c.lease, 'LeaseRevoke', { ID: l.ID }, md);
  }
}

describe('migrate from a live etcd', () => {
  for (const kind of backendsUnderTest().filter((k) => k !== 'memory')) {
    it(`${kind}: the store ends with etcd's keys, history, revisions, leases and users; watchers here see the followed revisions`, async () => {
      const etcd = await startRealEtcd();
      const fresh = await freshBackend(kind);
      const c = new EtcdGrpcClient(etcd.endpoint);
      let migration: Migration | undefined;
      let server: Awaited<ReturnType<typeof startServer>> | undefined;
      try {
        await writeHistory(c);
        const md = await rootToken(c);
        let round = 0;
        let writing = true;
        const writer = (async () => {
          // bounded: the migration follows every revision, one write transaction each
          while (writing && round < 40) await moreWrites(c, md, round++);
        })();
        migration = startMigration(etcd.url, fresh.url, `root:${ROOT_PW}`);
        const m = migration;
        await waitFor('the snapshot to be loaded', async () => (m.revision() > 0 ? true : m.child.exitCode !== null ? Promise.reject(new Error(m.output())) : undefined));
        const atSnapshot = m.revision();
        // writes after the snapshot are followed (SQLite is one process's file: no second server on it)
        let events: number[] = [];
        let watching: grpc.ClientDuplexStream<object, any> | undefined;
        if (kind !== 'sqlite') {
          server = await startServer({ backend: fresh.url });
          const ours = new EtcdGrpcClient(server.endpoint);
          const omd = await rootToken(ours);
          watching = (ours.watch as any).Watch(omd) as grpc.ClientDuplexStream<object, any>;
          watching.on('data', (res) => (events = events.concat(res.events.map((e: any) => Number(e.kv.mod_revision)))));
          watching.on('error', () => undefined);
          watching.write({ create_request: { ...ALL, start_revision: atSnapshot + 1 } });
        }
        // then more, surely after the snapshot (the first burst may have ended before it)
        await writer;
        for (let i = 0; i < 10; i++) await moreWrites(c, md, round++);
        writing = false;
        const final = Number((await c.call(c.kv, 'Range', ALL, md)).header.revision);
        await waitFor(`the migration to reach revision ${final}`, async () => (m.revision() >= final ? true : undefined), 60_000);
        if (watching) {
          await waitFor('our watcher to see every followed revision', async () => (events[events.length - 1] === final ? true : undefined));
          const revs = [...new Set(events)];
          assert.deepEqual(revs, Array.from({ length: final - atSnapshot }, (_, i) => atSnapshot + 1 + i), 'gapless, in order');
          watching.cancel();
        }
        m.child.kill('SIGTERM');
        assert.equal(await m.exited, 0, m.output());
        assert.match(m.output(), new RegExp(`stopped following .* at revision ${final}`));
        await server?.close();
        server = await startServer({ backend: fresh.url });
        const ours = new EtcdGrpcClient(server.endpoint);
        const theirs = await everything(c);
        const mine = await everything(ours);
        // lease ids are etcd's own; what each has left differs by the time it took to read both
        assert.deepEqual(mine, theirs);
        // leases count down again here after the switch
        const omd = await rootToken(ours);
        const anyLease = (await ours.call(ours.lease, 'LeaseLeases', {}, omd)).leases[0];
        const ttl = await ours.call(ours.lease, 'LeaseTimeToLive', { ID: anyLease.ID }, omd);
        assert.ok(Number(ttl.TTL) > 0 && Number(ttl.TTL) <= Number(ttl.grantedTTL), `TTL ${ttl.TTL} of ${ttl.grantedTTL}`);
        ours.close();
      } finally {
        migration?.child.kill('SIGKILL');
        c.close();
        await server?.close();
        await etcd.stop();
        await fresh.drop();
      }
    });
  }

  it('a write to the target from elsewhere stops the migration with an error', { skip: !backendsUnderTest().includes('mysql') }, async () => {
    const etcd = await startRealEtcd();
    const fresh = await freshBackend('mysql');
    const c = new EtcdGrpcClient(etcd.endpoint);
    let server: Awaited<ReturnType<typeof startServer>> | undefined;
    const m = startMigration(etcd.url, fresh.url);
    try {
      await c.put({ key: b('a'), value: b('1') });
      await waitFor('the snapshot to be loaded', async () => (m.revision() > 0 ? true : m.child.exitCode !== null ? Promise.reject(new Error(m.output())) : undefined));
      server = await startServer({ backend: fresh.url });
      const ours = new EtcdGrpcClient(server.endpoint);
      await ours.put({ key: b('fork'), value: b('x') });
      ours.close();
      await c.put({ key: b('a'), value: b('2') });
      assert.equal(await m.exited, 1);
      assert.match(m.output(), /the target store moved to revision \d+ while following etcd at \d+: something else writes to it; the migration stopped/);
    } finally {
      m.child.kill('SIGKILL');
      c.close();
      await server?.close();
      await etcd.stop();
      await fresh.drop();
    }
  });
});
