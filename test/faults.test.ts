// Faults: an instance frozen inside a write transaction (it must not stop the
// others' writes: the database ends its idle transaction),
// the adapter killed with SIGKILL during writes (SQLite and MariaDB),
// MariaDB and PostgreSQL themselves killed during writes and watches, and
// turned read-only as in a failover (private servers started by this test,
// never the machine's shared ones). Acknowledged writes
// are never lost, revisions keep going up, watchers elsewhere never notice,
// and while the database is away requests answer UNAVAILABLE (HTTP 503) and
// watches stay open, then resume without losing an event.
import { after, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { failedStart, spawnAdapter, type SpawnedAdapter } from './helpers/spawn';
import { b, EtcdGrpcClient } from './helpers/grpc-client';
import { grpcWatch, httpWatch, type Collected } from './helpers/watch-client';
import { backendsUnderTest, freshBackend, sharedBackendsUnderTest, type FreshBackend } from './helpers/backends';
import { mariadbInstalled, startPrivateMariadb } from './helpers/mariadb';
import { postgresInstalled, startPrivatePostgres } from './helpers/private-postgres';
import { pgbouncerInstalled, startPgBouncer } from './helpers/pgbouncer';
import { waitFor } from './helpers/ports';

interface Acked {
  key: string;
  revision: number;
}

/** `n` concurrent writers of unique keys until stopped; records what was acknowledged and the error codes seen. */
function writers(client: EtcdGrpcClient, n: number, prefix: string, pauseMs = 0) {
  const acked: Acked[] = [];
  const errors: number[] = [];
  let stop = false;
  let seq = 0;
  const loops = Array.from({ length: n }, async () => {
    while (!stop) {
      const key = `${prefix}${seq++}`;
      try {
        const r = await client.put({ key: b(key), value: b(key) });
        acked.push({ key, revision: Number(r.header.revision) });
      } catch (err) {
        errors.push((err as { code: number }).code);
        await new Promise((r) => setTimeout(r, 50));
      }
      if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs));
    }
  });
  return {
    acked,
    errors,
    stop: async () => {
      stop = true;
      await Promise.all(loops);
    },
  };
}

/** Every acknowledged write is there, at the revision it was acknowledged with. */
async function assertDurable(client: EtcdGrpcClient, prefix: string, acked: Acked[]): Promise<void> {
  const r = await client.range({ key: b(prefix), range_end: b(prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1)) });
  const found = new Map<string, number>(r.kvs.map((kv: any) => [kv.key.toString(), Number(kv.mod_revision)]));
  const missing = acked.filter((a) => found.get(a.key) !== a.revision);
  assert.deepEqual(missing.slice(0, 5), [], `${missing.length} of ${acked.length} acknowledged writes missing or changed`);
  const next = await client.put({ key: b('after-restart'), value: b('x') });
  assert.ok(Number(next.header.revision) > Math.max(...acked.map((a) => a.revision)), 'revisions continue upward');
}

/** The keys a watch has seen so far. */
function keysSeen(w: Collected): Set<string> {
  const keys = new Set<string>();
  for (const r of w.responses) {
    for (const ev of (r.result ?? r).events ?? []) keys.add(Buffer.isBuffer(ev.kv.key) ? ev.kv.key.toString() : Buffer.from(ev.kv.key, 'base64').toString());
  }
  return keys;
}

/** Waits until a watch has delivered every acknowledged write (it may deliver more: writes whose answer was lost). */
async function delivered(w: Collected, acked: Acked[], label: string): Promise<void> {
  await waitFor(`${label} to deliver ${acked.length} acknowledged writes`, async () => {
    const keys = keysSeen(w);
    return acked.every((a) => keys.has(a.key)) ? true : undefined;
  }, 30000).catch(() => undefined); // assertGapless then names what is missing
}

/** The events of a watch: in order, gapless, and including every acknowledged write. */
function assertGapless(w: Collected, acked: Acked[], label: string): void {
  const revs: number[] = [];
  const keys = new Set<string>();
  for (const r of w.responses) {
    const res = r.result ?? r;
    assert.ok(!res.canceled, `${label}: the watch was not canceled`);
    for (const ev of res.events ?? []) {
      revs.push(Number(ev.kv.mod_revision));
      keys.add(Buffer.isBuffer(ev.kv.key) ? ev.kv.key.toString() : Buffer.from(ev.kv.key, 'base64').toString());
    }
  }
  for (let i = 1; i < revs.length; i++) assert.equal(revs[i], revs[i - 1] + 1, `${label}: events gapless at ${revs[i - 1]}`);
  const lost = acked.filter((a) => !keys.has(a.key));
  assert.deepEqual(lost.slice(0, 5), [], `${label}: ${lost.length} acknowledged writes never reached the watcher`);
}

describe('faults', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  after(async () => {
    for (const c of cleanup.reverse()) await c().catch(() => undefined);
  });

  for (const kind of backendsUnderTest().filter((k) => k !== 'memory')) {
    it(`kill -9 during writes loses no acknowledged write (${kind})`, async () => {
      const fresh: FreshBackend = await freshBackend(kind);
      cleanup.push(() => fresh.drop());
      const a = await spawnAdapter(['--backend', fresh.url]);
      // On a shared database, a second instance with a watcher that must not notice.
      const b2: SpawnedAdapter | null = kind === 'mysql' || kind === 'postgres' ? await spawnAdapter(['--backend', fresh.url, '--poll-interval', '50ms']) : null;
      cleanup.push(async () => b2?.stop());
      const ca = new EtcdGrpcClient(a.endpoint);
      const start = Number((await ca.range({ key: b('x') })).header.revision) + 1;
      const cb = b2 ? new EtcdGrpcClient(b2.endpoint) : null;
      const watch = cb ? grpcWatch(cb) : null;
      watch?.send({ create_request: { key: b('k/'), range_end: b('k0'), start_revision: start } });

      const w = writers(ca, 8, 'k/');
      await waitFor('writes to be acknowledged', async () => (w.acked.length > 50 ? true : undefined), 30000);
      a.child.kill('SIGKILL');
      await a.stop();
      await w.stop();
      ca.close();
      assert.ok(w.acked.length > 20, `writes were acknowledged before the kill (${w.acked.length})`);

      const again = await spawnAdapter(['--backend', fresh.url]);
      cleanup.push(() => again.stop());
      const c2 = new EtcdGrpcClient(again.endpoint);
      await assertDurable(c2, 'k/', w.acked);
      if (watch && cb) {
        await delivered(watch, w.acked, 'watcher on the other instance');
        assertGapless(watch, w.acked, 'watcher on the other instance');
        watch.close();
        cb.close();
      }
      c2.close();
    });
  }

  /**
   * An adapter on a private database server with 4 writers and a gRPC and an HTTP watcher on `prefix`;
   * `fault` runs once writes flow, then the test waits for recovery and checks that nothing was
   * lost: every failure UNAVAILABLE, watchers gapless with every acknowledged write, writes durable.
   */
  async function outage<Db extends { createDatabase(): Promise<string>; destroy(): Promise<void> }>(
    startDb: () => Promise<Db>,
    prefix: string,
    fault: (db: Db, s: SpawnedAdapter, c: EtcdGrpcClient, w: ReturnType<typeof writers>) => Promise<void>,
  ): Promise<void> {
    const db = await startDb();
    cleanup.push(() => db.destroy());
    const s = await spawnAdapter(['--backend', await db.createDatabase(), '--poll-interval', '50ms']);
    cleanup.push(() => s.stop());
    const c = new EtcdGrpcClient(s.endpoint);
    const start = Number((await c.range({ key: b('x') })).header.revision) + 1;
    const end = prefix.slice(0, -1) + '0';
    const gw = grpcWatch(c);
    gw.send({ create_request: { key: b(prefix), range_end: b(end), start_revision: start } });
    const hw = httpWatch(s.url, [{ create_request: { key: Buffer.from(prefix).toString('base64'), range_end: Buffer.from(end).toString('base64'), start_revision: start } }]);
    await Promise.all([gw.waitFor(1), hw.waitFor(1)]);

    const w = writers(c, 4, prefix, 20);
    await waitFor('writes before the fault', async () => (w.acked.length >= 20 ? true : undefined), 30000);
    await fault(db, s, c, w);
    const before = w.acked.length;
    await waitFor('writes to succeed again after the fault', async () => (w.acked.length >= before + 20 ? true : undefined), 60000);
    await waitFor('/health to say 200 again', async () => ((await fetch(`${s.url}/health`)).status === 200 ? true : undefined), 30000);
    await waitFor('/readyz to say 200 again', async () => ((await fetch(`${s.url}/readyz`)).status === 200 ? true : undefined), 30000);
    await w.stop();
    assert.deepEqual([...new Set(w.errors)], [14], 'every failure was UNAVAILABLE');
    assert.equal(s.child.exitCode, null, 'the adapter never exited');

    await delivered(gw, w.acked, 'gRPC watcher');
    await delivered(hw, w.acked, 'HTTP watcher');
    assertGapless(gw, w.acked, 'gRPC watcher');
    assertGapless(hw, w.acked, 'HTTP watcher');
    await assertDurable(c, prefix, w.acked);
    gw.close();
    hw.close();
    c.close();
  }

  it('MariaDB killed during writes and watches: UNAVAILABLE while down, full recovery, no event lost', { skip: !mariadbInstalled() && 'mariadbd is not installed' }, async () => {
    await outage(startPrivateMariadb, 'o/', downThenUp((db) => db.kill()));
  });

  it('PostgreSQL crashed (immediate shutdown) during writes and watches: UNAVAILABLE while down, full recovery, no event lost', { skip: !(backendsUnderTest().includes('postgres') && postgresInstalled()) && 'postgres is not under test or not installed' }, async () => {
    await outage(startPrivatePostgres, 'p/', downThenUp((db) => db.crash()));
  });

  it('PgBouncer (transaction mode, in front of a private PostgreSQL) killed and started again on its port during writes and watches: UNAVAILABLE while down, full recovery, no event lost', { skip: !(backendsUnderTest().includes('postgres') && postgresInstalled() && pgbouncerInstalled()) && 'postgres is not under test, or postgres or pgbouncer is not installed' }, async () => {
    // the pooler stands in for the database: what the adapter sees is its connections to it breaking and refused
    const behindBouncer = async () => {
      const pgServer = await startPrivatePostgres();
      const bouncer = await startPgBouncer('transaction', `127.0.0.1:${pgServer.port}`).catch(async (err) => {
        await pgServer.destroy();
        throw err;
      });
      return {
        createDatabase: async () => bouncer.urlFor((await pgServer.createDatabase()).split('/').pop()!),
        crash: () => bouncer.crash(),
        start: () => bouncer.start(),
        destroy: async () => {
          await bouncer.stop();
          await pgServer.destroy();
        },
      };
    };
    await outage(behindBouncer, 'b/', downThenUp((db) => db.crash()));
  });

  it('PostgreSQL turned read-only under writes (a standby, or a primary stepping down behind a proxy): UNAVAILABLE saying so, the connections replaced, full recovery, no event lost', { skip: !(backendsUnderTest().includes('postgres') && postgresInstalled()) && 'postgres is not under test or not installed' }, async () => {
    await outage(startPrivatePostgres, 'r/', async (db, _s, c) => {
      const readOnly = async (on: boolean) => {
        await db.query(on ? 'ALTER SYSTEM SET default_transaction_read_only = on' : 'ALTER SYSTEM RESET default_transaction_read_only');
        await db.query('SELECT pg_reload_conf()');
      };
      const [{ now: flipped }] = await db.query('SELECT clock_timestamp() AS now');
      await readOnly(true);
      try {
        const refused = await waitFor('a write to be refused', async () => c.put({ key: b('r/during'), value: b('x') }).then(() => undefined, (e) => e as { code: number; details: string }), 30000);
        assert.equal(refused.code, 14, refused.details);
        assert.equal(refused.details, 'etcdserver: storage unavailable: the database is read-only (a standby, or a primary stepping down)');
        // a pooled connection that met a read-only database is dropped: through a proxy, the next one reaches the new primary
        await waitFor('a connection to the database replaced', async () => {
          const [{ n }] = await db.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'etcd-adapter' AND backend_start > $1", [flipped]);
          return Number(n) > 0 ? true : undefined;
        }, 30000);
      } finally {
        await readOnly(false);
      }
    });
  });

  it('PostgreSQL failover, two hosts in the URL (a synchronous standby promoted, the primary crashed): writes go on through the new primary, no acknowledged write or watch event lost', { skip: !(backendsUnderTest().includes('postgres') && postgresInstalled()) && 'postgres is not under test or not installed', timeout: 180_000 }, async () => {
    const pair = async () => {
      const primary = await startPrivatePostgres();
      cleanup.push(() => primary.destroy());
      const name = (await primary.createDatabase()).split('/').pop()!;
      const standby = await startPrivatePostgres({ standbyOf: primary });
      cleanup.push(() => standby.destroy());
      // synchronous: a commit is acknowledged once the standby has it, so a failover loses none
      await primary.query("ALTER SYSTEM SET synchronous_standby_names = '*'");
      await primary.query('SELECT pg_reload_conf()');
      await waitFor('the standby to replicate synchronously', async () => ((await primary.query("SELECT 1 FROM pg_stat_replication WHERE sync_state = 'sync'")).length > 0 ? true : undefined), 30000);
      // the standby alone takes no writes: one clear sentence at start
      const alone = failedStart(`postgres://postgres@127.0.0.1:${standby.port}/${name}?target_session_attrs=read-write`);
      assert.equal(alone.status, 1);
      assert.ok(alone.stderr.includes(`no host takes writes (target_session_attrs=read-write): 127.0.0.1:${standby.port} is read-only`), alone.stderr);
      // the standby first: connections must pass over it while it is one, and go to it once promoted
      const url = `postgres://postgres@127.0.0.1:${standby.port},127.0.0.1:${primary.port}/${name}?target_session_attrs=read-write`;
      return { primary, standby, createDatabase: async () => url, destroy: async () => undefined };
    };
    await outage(pair, 'v/', async (db) => {
      const [{ n: before }] = await db.standby.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', ['etcd-adapter']);
      assert.equal(before, 0, 'nothing of ours on the standby while it is one');
      await db.primary.crash();
      await db.standby.query('SELECT pg_promote()');
    });
  });

  it('MariaDB turned read-only under writes (a replica, or a demoted primary as after a failover): UNAVAILABLE saying so, the connections replaced, full recovery, no event lost', { skip: !mariadbInstalled() && 'mariadbd is not installed' }, async () => {
    // read_only stops users without server-wide privileges, as the adapter's user should be
    const startDb = async () => {
      const db = await startPrivateMariadb({ grants: true });
      const create = db.createDatabase;
      return Object.assign(db, { createDatabase: async () => (await create()).replace('mysql://root@', 'mysql://app@') });
    };
    await outage(startDb, 'm/', async (db, _s, c) => {
      const [{ id: before }] = await db.query("SELECT COALESCE(MAX(ID), 0) AS id FROM information_schema.PROCESSLIST WHERE USER = 'app'");
      await db.query('SET GLOBAL read_only = 1');
      try {
        const refused = await waitFor('a write to be refused', async () => c.put({ key: b('m/during'), value: b('x') }).then(() => undefined, (e) => e as { code: number; details: string }), 30000);
        assert.equal(refused.code, 14, refused.details);
        assert.equal(refused.details, 'etcdserver: storage unavailable: the database is read-only (a standby, or a primary stepping down)');
        await waitFor('a connection to the database replaced', async () => {
          const [{ n }] = await db.query(`SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = 'app' AND ID > ${Number(before)}`);
          return Number(n) > 0 ? true : undefined;
        }, 30000);
      } finally {
        await db.query('SET GLOBAL read_only = 0');
      }
    });
  });

  /** While the database is down: /health and /readyz 503, /livez 200, writes 503 with code 14. */
  /** An outage's fault: the database taken away by `down`, seen as down, then started again. */
  function downThenUp<Db extends { start(): Promise<void> }>(down: (db: Db) => Promise<void>) {
    return async (db: Db, s: SpawnedAdapter, _c: EtcdGrpcClient, w: ReturnType<typeof writers>): Promise<void> => {
      await down(db);
      try {
        await downAndBack(s, w);
      } finally {
        await db.start();
      }
    };
  }

  async function downAndBack(s: SpawnedAdapter, w: ReturnType<typeof writers>): Promise<void> {
    await waitFor('/health to say 503', async () => ((await fetch(`${s.url}/health`)).status === 503 ? true : undefined), 30000);
    assert.equal((await fetch(`${s.url}/readyz`)).status, 503, '/readyz: not ready while the database is down');
    assert.equal((await fetch(`${s.url}/livez`)).status, 200, '/livez: the process itself is fine');
    const put = await fetch(`${s.url}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key: 'eA==', value: 'eA==' }) });
    assert.equal(put.status, 503, 'an HTTP write answers 503');
    assert.equal(((await put.json()) as { code: number }).code, 14);
    await waitFor('a write to fail while the database is down', async () => (w.errors.length > 0 ? true : undefined), 30000);
  }

  it('MariaDB frozen (SIGSTOP): requests answer UNAVAILABLE in bounded time, /health 503, full recovery on thaw, no event lost', { skip: !mariadbInstalled() && 'mariadbd is not installed', timeout: 180_000 }, async (t) => {
    await outage(startPrivateMariadb, 'f/', async (db, s, c) => {
      db.freeze();
      try {
        // The database never answers while frozen: each request must answer by itself.
        const asked = performance.now();
        const put = await c.put({ key: b('f/during'), value: b('x') }).then(
          () => ({ code: 0, details: 'ok' }),
          (e) => e as { code: number; details: string },
        );
        const waited = performance.now() - asked;
        assert.equal(put.code, 14, `a write answers UNAVAILABLE: ${put.details}`);
        assert.equal(put.details, 'etcdserver: request timed out');
        const range = await c.range({ key: b('f/0') }).then(
          () => 0,
          (e) => (e as { code: number }).code,
        );
        assert.equal(range, 14, 'a linearizable read answers UNAVAILABLE');
        const health = await fetch(`${s.url}/health`);
        assert.equal(health.status, 503, '/health says 503 at once: the database is known to be failing');
        const ready = await fetch(`${s.url}/readyz?verbose`);
        assert.equal(ready.status, 503);
        assert.match(await ready.text(), /\[-\]linearizable_read failed: etcdserver: request timed out\n[^]*readyz check failed/);
        assert.equal((await fetch(`${s.url}/livez`)).status, 200, '/livez: the process itself is fine');
        t.diagnostic(`a write waited ${(waited / 1000).toFixed(1)} s on the frozen database`);
      } finally {
        db.thaw();
      }
    });
  });

  for (const shared of sharedBackendsUnderTest()) {
    it(`an instance frozen inside a write transaction does not stop the others' writes (${shared.label})`, async () => {
      const fresh = await shared.create();
      cleanup.push(() => fresh.drop());
      // No read lease: A, alone when it starts, may hold one for a while, and a writer then also
      // waits out the lease (2 s) once it has the lock - 3 s + 2 s, the whole request timeout.
      // That wait is the lease's own (the robustness runs' lease-holder fault covers it); this
      // test is about the transaction left open.
      const a = await spawnAdapter(['--backend', fresh.url, '--read-lease', '0']);
      const b2 = await spawnAdapter(['--backend', fresh.url, '--read-lease', '0']);
      cleanup.push(async () => (a.child.kill('SIGCONT'), a.stop()), () => b2.stop());
      const ca = new EtcdGrpcClient(a.endpoint);
      const cb = new EtcdGrpcClient(b2.endpoint);
      // A writes two keys per txn without pause, so that it spends most of its time holding the revision row.
      let stop = false;
      const loop = (async () => {
        for (let i = 0; !stop; i++) await ca.txn({ success: [{ request_put: { key: b('a'), value: b(String(i)) } }, { request_put: { key: b('b'), value: b(String(i)) } }] }).catch(() => undefined);
      })();
      try {
        await waitFor('A to write', async () => (Number((await cb.range({ key: b('a') })).count) > 0 ? true : undefined));
        // Freeze A until a freeze lands inside one of its transactions: B's put then waits on the
        // lock until the database ends A's idle transaction (3 s); without that it failed at 5 s.
        let caught = 0;
        for (let i = 0; i < 200 && !caught; i++) {
          await new Promise((r) => setTimeout(r, 20 + Math.random() * 60)); // A back at work
          a.child.kill('SIGSTOP');
          const started = performance.now();
          const outcome = await cb.outcome(cb.kv, 'Put', { key: b('k'), value: b(String(i)) });
          const ms = performance.now() - started;
          a.child.kill('SIGCONT');
          assert.ok('ok' in outcome, `B's put while A was frozen failed after ${Math.round(ms)} ms: ${JSON.stringify(outcome)}`);
          if (ms > 2000) caught = ms;
        }
        assert.ok(caught, 'no freeze of A landed inside a transaction in 200 tries (nothing was tested)');
      } finally {
        a.child.kill('SIGCONT');
        stop = true;
        await loop;
      }
      // A carries on after it resumes.
      await ca.put({ key: b('after'), value: b('x') });
      ca.close();
      cb.close();
    });
  }
});
