// Compaction under concurrent load keeps the database bounded: with
// auto-compaction keeping the last 200 revisions, a second burst of writes
// as large as the first must not grow the log (rows) nor the database (bytes)
// much beyond what the first left; reads above the compact revision still
// see the right data. Compaction goes in short steps: on SQLite (one writer)
// a write waits for at most about one step, and a server asked to stop in the
// middle of a long compaction stops, and finishes the compaction when it
// starts again.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { startServer } from '../src/index';
import { b, EtcdGrpcClient } from './helpers/grpc-client';
import { backendsUnderTest, freshBackend } from './helpers/backends';
import { waitFor } from './helpers/ports';
import { spawnAdapter } from './helpers/spawn';

async function logRows(url: string): Promise<number> {
  if (url.startsWith('sqlite://')) {
    const db = new Database(url.slice('sqlite://'.length), { readonly: true });
    const n = (db.prepare('SELECT COUNT(*) AS n FROM etcd_log').get() as { n: number }).n;
    db.close();
    return n;
  }
  if (url.startsWith('postgres')) return Number((await onPostgres(url, 'SELECT COUNT(*) AS n FROM etcd_log')).n);
  const conn = await mysql.createConnection(url);
  const [rows] = await conn.query('SELECT COUNT(*) AS n FROM etcd_log');
  await conn.end();
  return Number((rows as { n: number }[])[0].n);
}

async function onPostgres(url: string, sql: string): Promise<Record<string, unknown>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql)).rows[0];
  } finally {
    await client.end();
  }
}

/** Bytes of the PostgreSQL tables (heap, indexes, TOAST): what VACUUM after each compaction keeps from growing. */
async function postgresBytes(url: string): Promise<number> {
  return Number((await onPostgres(url, "SELECT pg_total_relation_size('etcd_log') + pg_total_relation_size('etcd_kv') AS n")).n);
}

/** Bytes the SQLite database has in use (pages minus free pages, as of the latest commit, WAL included). */
function inUseBytes(url: string): number {
  const db = new Database(url.slice('sqlite://'.length), { readonly: true });
  const row = db
    .prepare('SELECT (SELECT page_count FROM pragma_page_count()) * (SELECT page_size FROM pragma_page_size()) - (SELECT freelist_count FROM pragma_freelist_count()) * (SELECT page_size FROM pragma_page_size()) AS n')
    .get() as { n: number };
  db.close();
  return row.n;
}

const KEYS = 50;
const RETAIN = 200;

for (const kind of backendsUnderTest().filter((k) => k !== 'memory')) {
  describe(`compaction under load (${kind})`, () => {
    it(`keeps the log near ${RETAIN} revisions and the database from growing`, async (t) => {
      const fresh = await freshBackend(kind);
      const server = await startServer({ backend: fresh.url, autoCompaction: { mode: 'revision', retention: String(RETAIN), checkIntervalMs: 200 } });
      const c = new EtcdGrpcClient(server.endpoint);
      t.after(async () => {
        c.close();
        await server.close();
        await fresh.drop();
      });
      const burst = async (n: number, tag: string) => {
        let i = 0;
        await Promise.all(
          Array.from({ length: 12 }, async () => {
            while (i < n) {
              const k = i++;
              if (k % 7 === 6) await c.deleteRange({ key: b(`c/${k % KEYS}`) });
              else await c.put({ key: b(`c/${k % KEYS}`), value: Buffer.alloc(200, tag) });
            }
          }),
        );
      };
      const settle = async () => {
        const rev = Number((await c.range({ key: b('x') })).header.revision);
        // wait for the compactor to catch up with this revision
        await waitFor('auto-compaction', async () => {
          const r = await c.range({ key: b('c/'), range_end: b('c0'), revision: rev - RETAIN + 1 }).then(() => 'ok', (e) => e.code);
          const under = await c.range({ key: b('c/'), range_end: b('c0'), revision: rev - RETAIN - 20 }).then(() => 'ok', (e) => e.code);
          return r === 'ok' && under === 11 ? true : undefined;
        }, 60000);
        // the physical part finishes after the logical one
        await waitFor('the physical compaction', async () => ((await logRows(fresh.url)) <= KEYS + RETAIN * 2 ? true : undefined), 60000).catch(() => undefined);
        return rev;
      };

      await burst(3000, 'a');
      const rev1 = await settle();
      const rows1 = await logRows(fresh.url);
      const bytes1 = kind === 'sqlite' ? inUseBytes(fresh.url) : kind === 'postgres' ? await postgresBytes(fresh.url) : 0;
      assert.ok(rows1 <= KEYS + RETAIN * 2, `log rows after the first burst: ${rows1}`);

      await burst(3000, 'b');
      const rev2 = await settle();
      assert.ok(rev2 >= rev1 + 2500, 'the second burst wrote as much as the first');
      const rows2 = await logRows(fresh.url);
      assert.ok(rows2 <= KEYS + RETAIN * 2, `log rows after the second burst: ${rows2}`);
      if (kind === 'sqlite' || kind === 'postgres') {
        const bytes2 = kind === 'sqlite' ? inUseBytes(fresh.url) : await postgresBytes(fresh.url);
        assert.ok(bytes2 <= bytes1 * 1.5 + 256 * 1024, `database bytes in use: ${bytes1} then ${bytes2}`);
      }

      t.diagnostic(`log rows ${rows1} after ${rev1} revisions, ${rows2} after ${rev2}${kind === 'sqlite' ? `; bytes in use ${bytes1} then ${inUseBytes(fresh.url)}` : kind === 'postgres' ? `; table bytes ${bytes1} then ${await postgresBytes(fresh.url)}` : ''}`);
      // Reads above the compact revision are still right.
      const now = await c.range({ key: b('c/'), range_end: b('c0') });
      assert.ok(now.kvs.every((kv: any) => kv.value.toString() === 'b'.repeat(200)));
      const older = await c.range({ key: b('c/'), range_end: b('c0'), revision: rev2 - 50 });
      assert.ok(Number(older.count) > 0);
    });
  });
}

/** `n` versions of one key, written by 16 clients at once. */
async function overwrite(c: EtcdGrpcClient, key: string, n: number): Promise<number> {
  let i = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (i < n) {
        i++;
        await c.put({ key: b(key), value: Buffer.alloc(64, 'v') });
      }
    }),
  );
  return Number((await c.range({ key: b(key) })).header.revision);
}

describe('compaction in steps (sqlite)', { skip: !backendsUnderTest().includes('sqlite') && 'sqlite is not under test' }, () => {
  const VERSIONS = 5000;

  it('a write waits for about one step, never for the whole compaction', async () => {
    const fresh = await freshBackend('sqlite');
    const server = await startServer({ backend: fresh.url, autoCompaction: { mode: 'revision', retention: '0' } });
    const c = new EtcdGrpcClient(server.endpoint);
    try {
      const revision = await overwrite(c, 'hot', VERSIONS);
      // One writer all along; for each of its puts, how many log rows compaction removed meanwhile.
      let writing = true;
      let worst = 0;
      let puts = 0;
      const writer = (async () => {
        for (let i = 0; writing; i++) {
          const before = await logRows(fresh.url);
          await c.put({ key: b(`w/${i % 10}`), value: b('x') });
          worst = Math.max(worst, before - (await logRows(fresh.url)));
          puts++;
        }
      })();
      await c.compact({ revision, physical: true });
      writing = false;
      await writer;
      assert.ok(puts > 1, 'writes went on during the compaction');
      // A step is 500 rows; what a put may see removed is a step or two (plus any that end while it is answered).
      assert.ok(worst <= VERSIONS / 2, `a put waited while ${worst} rows were removed`);
      assert.ok((await logRows(fresh.url)) < 100, 'the history is gone');
    } finally {
      c.close();
      await server.close();
      await fresh.drop();
    }
  });

  it('SIGTERM in the middle of a long compaction stops the server; it finishes the compaction when started again', async () => {
    const fresh = await freshBackend('sqlite');
    try {
      const args = ['--backend', fresh.url, '--auto-compaction-retention', '0'];
      const s = await spawnAdapter(args);
      const c = new EtcdGrpcClient(s.endpoint);
      const revision = await overwrite(c, 'hot', VERSIONS * 4);
      const rows = await logRows(fresh.url);
      const compaction = c.compact({ revision, physical: true }).catch(() => undefined);
      await waitFor('the compaction to be under way', async () => ((await logRows(fresh.url)) < rows ? true : undefined));
      const stopped = s.stop();
      assert.equal(await stopped, 0, 'the server exits cleanly');
      await compaction;
      c.close();
      const left = await logRows(fresh.url);
      assert.ok(left >= 10, `the server stopped between steps, not after the whole compaction (${left} of ${rows} rows left)`);
      const again = await spawnAdapter(args);
      try {
        await waitFor('the compaction to finish after the restart', async () => ((await logRows(fresh.url)) < 10 ? true : undefined), 60000);
        const c2 = new EtcdGrpcClient(again.endpoint);
        const r = await c2.range({ key: b('hot') });
        assert.equal(Number(r.kvs[0].mod_revision), revision, 'the latest version is there');
        c2.close();
      } finally {
        await again.stop();
      }
    } finally {
      await fresh.drop();
    }
  });
});
