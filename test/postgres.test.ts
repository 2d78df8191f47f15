// PostgreSQL as a backend, beyond the suites every backend runs:
// - the plans of the driver's own statements on a table of 100,000 keys: every
//   range, prefix, count, history read and log tail is an index scan;
// (LISTEN/NOTIFY is tested with the other shared backends in multi-instance.test.ts);
// - clear start-up errors: a missing database, nothing listening, a host that never answers, a bad URL;
// - on a private server: TLS (sslmode, sslrootcert) and a password with URL characters, a client
//   certificate (sslcert, sslkey) where pg_hba.conf asks for one, and a Unix socket named as libpq
//   names it;
// - sslmode=prefer (the default) and allow as libpq has them, against a server with TLS, the shared
//   one without, and one whose TLS this client cannot speak.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import pg from 'pg';
import { PostgresClient, numbered } from '../drivers/postgres/pg-client';
import { postgresDialect } from '../drivers/postgres/pg-dialect';
import { parsePostgresUrl, postgresLocation } from '../drivers/registry';
import { SqlDriver } from '../drivers/sql/sql-driver';
import type { Row, SqlExecutor } from '../drivers/sql/sql-client';
import { backendsUnderTest, createPostgresDatabase, type FreshBackend } from './helpers/backends';
import { freePort, waitFor } from './helpers/ports';
import { failedStart, servesOn, spawnAdapter } from './helpers/spawn';
import { b, EtcdGrpcClient } from './helpers/grpc-client';
import { grpcWatch } from './helpers/watch-client';
import { histogramCount } from './helpers/prometheus';
import { makeTestCa, type TestCa } from './helpers/certs';
import { postgresInstalled, startPrivatePostgres, type PrivatePostgres } from './helpers/private-postgres';

const KEYS = 100_000;
const skip = !backendsUnderTest().includes('postgres') && 'postgres is not under test';

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  Plans?: PlanNode[];
}

function nodes(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodes)];
}

describe('PostgreSQL: plans on 100,000 keys', { skip }, () => {
  let db: FreshBackend;
  let driver: SqlDriver;
  let raw: pg.Client;
  const seen: { sql: string; params: unknown[] }[] = [];

  before(async () => {
    db = await createPostgresDatabase();
    const client = new PostgresClient(parsePostgresUrl(db.url), postgresDialect);
    // every statement the driver sends, to be explained
    const recording = (ex: SqlExecutor): SqlExecutor => ({
      all: (sql, params = [], opts) => (seen.push({ sql, params }), ex.all(sql, params, opts)),
      run: (sql, params = [], opts) => (seen.push({ sql, params }), ex.run(sql, params, opts)),
    });
    const snapshot = client.snapshot.bind(client);
    client.snapshot = <T>(begin: { sql: string; params: unknown[] }, fn: (tx: SqlExecutor, meta: Row) => Promise<T>) => snapshot(begin, (tx, meta) => fn(recording(tx), meta));
    const all = client.all.bind(client);
    client.all = (sql, params = [], opts) => (seen.push({ sql, params }), all(sql, params, opts));
    driver = new SqlDriver(client, postgresDialect);
    await driver.open();
    raw = new pg.Client({ connectionString: db.url });
    await raw.connect();
    // 100,000 keys, each written once at its own revision, and the log behind them
    await raw.query(`INSERT INTO etcd_kv SELECT convert_to('key/' || lpad(i::text, 6, '0'), 'UTF8'), '\\x76'::bytea, i + 1, i + 1, 1, 0 FROM generate_series(1, ${KEYS}) i`);
    await raw.query(`INSERT INTO etcd_log SELECT i + 1, 0, convert_to('key/' || lpad(i::text, 6, '0'), 'UTF8'), '\\x76'::bytea, i + 1, 1, 0, 0, 0 FROM generate_series(1, ${KEYS}) i`);
    await raw.query(`UPDATE etcd_meta SET revision = ${KEYS + 1} WHERE id = 1`);
    await raw.query('ANALYZE');
  });
  after(async () => {
    await raw?.end();
    await driver?.close();
    await db?.drop();
  });

  it('every range, prefix, count, history read and log read is an index scan', async (t) => {
    const key = (i: number) => Buffer.from(`key/${String(i).padStart(6, '0')}`);
    const head = KEYS + 1;
    const reads = [
      { key: key(500), end: null }, // one key
      { key: Buffer.from('key/0012'), end: Buffer.from('key/0013') }, // a prefix of 100 keys
      { key: Buffer.from('key/05'), end: Buffer.from('key/06') }, // a prefix of 10,000 keys
    ];
    for (const r of reads) {
      for (const rev of [head, head - 50_000]) {
        for (const q of [
          { limit: 0, countOnly: false, keysOnly: false },
          { limit: 10, countOnly: false, keysOnly: false },
          { limit: 0, countOnly: true, keysOnly: false },
          { limit: 0, countOnly: false, keysOnly: true },
        ]) {
          await driver.read((v) => v.range({ ...r, revision: rev, ...q }));
        }
      }
    }
    await driver.readLog(head - 100, 100);
    await driver.readLog(head - 100, 100, { key: Buffer.from('key/'), end: Buffer.from('key0') });
    await driver.getVersions([{ key: key(7), revision: 8 }]);
    const statements = seen.filter((s) => /etcd_(kv|log)/.test(s.sql) && s.sql.trim().startsWith('SELECT'));
    assert.ok(statements.length >= 27, `${statements.length} statements explained`);
    const kinds = new Map<string, number>();
    for (const st of statements) {
      const { rows } = await raw.query({ text: `EXPLAIN (FORMAT JSON) ${numbered(st.sql)}`, values: st.params });
      const plan = nodes((rows[0]['QUERY PLAN'] as { Plan: PlanNode }[])[0].Plan);
      const scans = plan.filter((n) => n['Relation Name'] === 'etcd_kv' || n['Relation Name'] === 'etcd_log');
      const seq = scans.filter((n) => n['Node Type'] === 'Seq Scan');
      assert.deepEqual(seq, [], `a sequential scan in\n${st.sql}\n${JSON.stringify(plan.map((n) => [n['Node Type'], n['Relation Name'], n['Index Name']]))}`);
      assert.ok(scans.length > 0 && scans.every((n) => /Index|Bitmap/.test(n['Node Type'])), st.sql);
      for (const n of scans) kinds.set(`${n['Node Type']} on ${n['Relation Name']}`, (kinds.get(`${n['Node Type']} on ${n['Relation Name']}`) ?? 0) + 1);
    }
    t.diagnostic(`${statements.length} statements: ${[...kinds].map(([k, n]) => `${k} x${n}`).join(', ')}`);
  });
});

/** Starts the command on a backend and returns how it ended (for backends it cannot use: at once). */

describe('PostgreSQL URLs as libpq writes them', () => {
  it('a socket directory (?host= or percent-encoded), several hosts, a comma in a password that is not a host list', () => {
    const where = (url: string) => postgresLocation(parsePostgresUrl(url));
    assert.equal(where('postgres://u@localhost:5433/db?host=/run/pg'), '/run/pg/.s.PGSQL.5433');
    assert.equal(where('postgres://%2Frun%2Fpg/db'), '/run/pg/.s.PGSQL.5432');
    assert.equal(where('postgres://u:p@h1:1,h2,%2Frun%2Fpg:3/db?target_session_attrs=read-write'), 'h1:1,h2:5432,/run/pg/.s.PGSQL.3');
    const comma = parsePostgresUrl('postgres://u:pa,ss@h1/db');
    assert.deepEqual([comma.password, comma.endpoints, where('postgres://u:pa,ss@h1/db')], ['pa,ss', undefined, 'h1:5432']);
    assert.throws(() => parsePostgresUrl('postgres://h1,,h2/db'), /an empty host in the list/);
    assert.throws(() => parsePostgresUrl('postgres://h1,h2/db?host=/run/pg'), /several hosts, and \?host= too/);
  });
});

describe('PostgreSQL without TLS', { skip }, () => {
  it('no sslmode (prefer), prefer and allow serve from a server that offers no TLS (as libpq), with no TLS', async () => {
    const db = await createPostgresDatabase();
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      assert.equal((await admin.query('SHOW ssl')).rows[0].ssl, 'off', 'the shared server offers TLS: this test needs one that does not');
      for (const query of ['', '?sslmode=prefer', '?sslmode=allow']) {
        const via = await servesOn(`${db.url}${query}`, async () => {
          const { rows } = await admin.query(
            "SELECT count(*) FILTER (WHERE s.ssl)::int AS tls, count(*)::int AS n FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.datname = current_database() AND a.application_name = 'etcd-adapter'",
          );
          return rows[0] as { tls: number; n: number };
        });
        assert.ok(via!.n > 0 && via!.tls === 0, `${query}: ${JSON.stringify(via)}`);
      }
    } finally {
      await admin.end();
      await db.drop();
    }
  });
});

describe('PostgreSQL on a private server whose TLS this client cannot speak (TLS 1.1 at most)', { skip: (skip || !postgresInstalled()) && 'postgres is not under test or not installed' }, () => {
  let ca: TestCa;
  let server: PrivatePostgres;
  before(async () => {
    ca = makeTestCa();
    server = await startPrivatePostgres({ tls: { cert: ca.serverCert, key: ca.serverKey }, settings: ['ssl_min_protocol_version=TLSv1', 'ssl_max_protocol_version=TLSv1.1'] });
  });
  after(async () => {
    await server?.destroy();
    ca?.remove();
  });

  it('no sslmode (prefer) goes without TLS after the handshake fails, as libpq; require is one clear sentence', async () => {
    const url = await server.createDatabase();
    const via = await servesOn(url, async () => {
      const [row] = await server.query("SELECT count(*) FILTER (WHERE s.ssl)::int AS tls, count(*)::int AS n FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'etcd-adapter'");
      return row as { tls: number; n: number };
    });
    assert.ok(via!.n > 0 && via!.tls === 0, JSON.stringify(via));
    const required = failedStart(`${url}?sslmode=require`);
    assert.equal(required.status, 1);
    assert.ok(required.stderr.includes(`cannot connect to PostgreSQL at 127.0.0.1:${server.port}: the TLS handshake failed (tlsv1 alert protocol version)`), required.stderr);
  });
});

describe('PostgreSQL: commits announced with what they wrote', { skip }, () => {
  it("another instance's watchers get small commits from the announcement with no read of the log; a commit too large for one goes by the log", async () => {
    const db = await createPostgresDatabase();
    const servers = [await spawnAdapter(['--backend', db.url, '--poll-interval', '1h', '--name', 'a']), await spawnAdapter(['--backend', db.url, '--poll-interval', '1h', '--name', 'b'])];
    const [writer, reader] = servers.map((s) => new EtcdGrpcClient(s.endpoint));
    const w = grpcWatch(reader);
    try {
      w.send({ create_request: { key: b('ann/'), range_end: b('ann0') } });
      await w.waitFor(1);
      const events = () => w.responses.flatMap((r: any) => r.events ?? []);
      // announcements carry entries once the writer knows another instance serves the store (its heartbeat after B's first)
      await waitFor('A to see B as a member', async () => (servers[0].log().includes('"msg":"member joined"') ? true : undefined), 30000);
      // polls are an hour apart: the first write that arrives shows B is listening
      await waitFor('a first write to reach the other instance', async () => {
        await writer.put({ key: b('ann/first'), value: b('x') });
        return events().length > 0 ? true : undefined;
      }, 30000);
      const statements = () => histogramCount(servers[1].url, 'etcd_adapter_sql_duration_seconds', { kind: 'statement' });
      const before = await statements();
      const seen = events().length;
      for (let i = 0; i < 100; i++) await writer.put({ key: b(`ann/${i % 8}`), value: Buffer.from([i, 0, 255]) });
      await writer.deleteRange({ key: b('ann/0') });
      await waitFor('the other instance to deliver 101 events', async () => (events().length >= seen + 101 ? true : undefined));
      const read = (await statements()) - before;
      // heartbeats (two statements every 2 s) go on meanwhile; reading the log would take about one per commit
      assert.ok(read < 50, `${read} statements on B for 101 commits`);
      const got = events().slice(seen);
      assert.deepEqual(got.map((e: any) => e.kv.key.toString()), [...Array.from({ length: 100 }, (_, i) => `ann/${i % 8}`), 'ann/0']);
      assert.deepEqual(got.slice(0, 100).map((e: any) => [...e.kv.value]), Array.from({ length: 100 }, (_, i) => [i, 0, 255]));
      assert.equal(got[100].type, 1, 'a DELETE event');
      for (let i = 1; i < got.length; i++) assert.equal(Number(got[i].kv.mod_revision), Number(got[i - 1].kv.mod_revision) + 1);
      // B's reads agree with A's
      const [ra, rb] = await Promise.all([writer, reader].map((c) => c.range({ key: b('ann/'), range_end: b('ann0') })));
      assert.deepEqual(rb.kvs, ra.kvs);
      // too large to be announced with its entries: read from the log, as before
      const large = Buffer.alloc(10_000, 7);
      await writer.put({ key: b('ann/large'), value: large });
      await waitFor('the large write to reach the other instance', async () => (events().some((e: any) => e.kv.key.toString() === 'ann/large') ? true : undefined));
      assert.ok(events().find((e: any) => e.kv.key.toString() === 'ann/large').kv.value.equals(large));
    } finally {
      w.close();
      writer.close();
      reader.close();
      await Promise.all(servers.map((s) => s.stop()));
      await db.drop();
    }
  });
});

/** Runs fn with a port that takes connections and never answers; returns how many it took. */
async function withSilentHost(fn: (port: number) => Promise<void>): Promise<number> {
  const accepted: net.Socket[] = [];
  const silent = net.createServer((socket) => void accepted.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  try {
    await fn((silent.address() as net.AddressInfo).port);
    return accepted.length;
  } finally {
    for (const socket of accepted) socket.destroy();
    silent.close();
  }
}

describe('PostgreSQL: start-up errors', { skip }, () => {
  it('a missing database, nothing listening, a bad URL: one clear sentence each, and the documented exit status', async () => {
    const missing = failedStart('postgres://postgres@127.0.0.1:5432/no_such_database_here');
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /PostgreSQL at 127\.0\.0\.1:5432 has no database "no_such_database_here"/);
    const port = await freePort();
    const down = failedStart(`postgresql://postgres:secret@127.0.0.1:${port}/db`);
    assert.equal(down.status, 1);
    assert.match(down.stderr, new RegExp(`cannot connect to PostgreSQL at 127\\.0\\.0\\.1:${port}: connection refused`));
    assert.doesNotMatch(down.stderr, /secret/);
    const badMode = failedStart('postgres://postgres@127.0.0.1:5432/db?sslmode=sometimes');
    assert.equal(badMode.status, 2);
    assert.match(badMode.stderr, /sslmode must be disable, allow, prefer, require, verify-ca or verify-full/);
    const port2 = await freePort();
    const noneUp = failedStart(`postgres://postgres@127.0.0.1:${port},127.0.0.1:${port2}/db?target_session_attrs=read-write`);
    assert.equal(noneUp.status, 1);
    assert.ok(noneUp.stderr.includes(`cannot connect to PostgreSQL at 127.0.0.1:${port},127.0.0.1:${port2}: connection refused`), noneUp.stderr);
    const badAttrs = failedStart('postgres://postgres@127.0.0.1:5432/db?target_session_attrs=standby');
    assert.equal(badAttrs.status, 2);
    assert.match(badAttrs.stderr, /target_session_attrs must be any, read-write or primary/);
    // a host that takes the connection and never answers: the timeout is said as such
    await withSilentHost(async (port) => {
      const mute = failedStart(`postgres://postgres@127.0.0.1:${port}/db?connect_timeout=1`);
      assert.equal(mute.status, 1);
      assert.ok(mute.stderr.includes(`cannot connect to PostgreSQL at 127.0.0.1:${port}: timed out`), mute.stderr);
    });
    // and a statement meanwhile makes one connection, the TLS probe's (prefer is the default): its timeout is the connection's
    const accepted = await withSilentHost(async (port) => {
      const client = new PostgresClient(parsePostgresUrl(`postgres://postgres@127.0.0.1:${port}/db?connect_timeout=1`), postgresDialect);
      try {
        await assert.rejects(client.all('SELECT 1'), /storage unavailable/);
      } finally {
        await client.close();
      }
    });
    assert.equal(accepted, 1, 'connections made to a host that does not answer');
    const noDb = failedStart('postgres://postgres@127.0.0.1:5432');
    assert.equal(noDb.status, 2);
    assert.match(noDb.stderr, /name the database after the host/);
  });
});

describe('PostgreSQL on a private server: TLS, a password, a client certificate, a Unix socket', { skip: (skip || !postgresInstalled()) && 'postgres is not under test or not installed' }, () => {
  const PASSWORD = 'p@ss:w/rd#1';
  let ca: TestCa;
  let other: TestCa;
  let server: PrivatePostgres;
  before(async () => {
    [ca, other] = [makeTestCa(), makeTestCa()];
    server = await startPrivatePostgres({
      password: PASSWORD,
      tls: { cert: ca.serverCert, key: ca.serverKey, clientCa: ca.ca },
      roles: ['certuser', 'tlsonly', 'plainonly'],
      // certuser: a client certificate whose CN is its name; tlsonly: any TLS connection, and no other; plainonly: never TLS
      hba: [
        'hostssl all certuser 127.0.0.1/32 cert',
        'hostssl all tlsonly 127.0.0.1/32 trust',
        'hostnossl all tlsonly 127.0.0.1/32 reject',
        'hostssl all plainonly 127.0.0.1/32 reject',
        'hostnossl all plainonly 127.0.0.1/32 trust',
      ],
    });
  });

  /** Puts and reads a key through a server started on `backend`, and returns how its connections reach the database. */
  async function serves(backend: string, database: string): Promise<{ socket: number; tcp: number; tls: number }> {
    const via = await servesOn(backend, async () => {
      const [row] = await server.query(
        `SELECT count(*) FILTER (WHERE a.client_addr IS NULL)::int AS socket, count(*) FILTER (WHERE a.client_addr IS NOT NULL)::int AS tcp,
           count(*) FILTER (WHERE s.ssl)::int AS tls
         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.datname = $1 AND a.application_name = 'etcd-adapter'`,
        [database],
      );
      return row as { socket: number; tcp: number; tls: number };
    });
    return via!;
  }

  it('a Unix socket, named as libpq names it (?host=/dir, or the directory percent-encoded as the host): every connection goes through it; a socket that is not there is one clear sentence', async () => {
    const name = (await server.createDatabase()).split('/').pop()!;
    const dir = server.socketDir;
    for (const url of [`postgres://postgres@localhost:${server.port}/${name}?host=${encodeURIComponent(dir)}`, `postgresql://postgres@${encodeURIComponent(dir)}:${server.port}/${name}`]) {
      const via = await serves(url, name);
      assert.ok(via.socket > 0 && via.tcp === 0, `${url}: ${JSON.stringify(via)}`);
    }
    const missing = failedStart(`postgres://postgres@${encodeURIComponent(dir)}:${server.port + 1}/${name}`);
    assert.equal(missing.status, 1);
    assert.ok(missing.stderr.includes(`cannot connect to PostgreSQL at ${dir}/.s.PGSQL.${server.port + 1}: no such socket`), missing.stderr);
    const nowhere = failedStart(`postgres://postgres@/${name}`);
    assert.equal(nowhere.status, 2);
    assert.match(nowhere.stderr, /no host \(name one, or a Unix socket as \?host=\/var\/run\/postgresql\)/);
  });

  it('a server that takes only TLS from this user: with sslmode=disable one sentence that says to ask for TLS; no sslmode (prefer, as libpq), require, prefer and allow serve over TLS', async () => {
    const name = (await server.createDatabase('tlsonly')).split('/').pop()!;
    const base = `postgres://tlsonly@127.0.0.1:${server.port}/${name}`;
    const plain = failedStart(`${base}?sslmode=disable`);
    assert.equal(plain.status, 1);
    assert.ok(plain.stderr.includes(`PostgreSQL at 127.0.0.1:${server.port} refused user "tlsonly": it takes this user over TLS only (leave out sslmode=disable, or ask for ?sslmode=verify-full&sslrootcert=/path/ca.pem)`), plain.stderr);
    for (const query of ['', '?sslmode=require', '?sslmode=prefer', '?sslmode=allow']) {
      const via = await serves(`${base}${query}`, name);
      assert.ok(via.tcp > 0 && via.tls === via.tcp, `${query}: ${JSON.stringify(via)}`);
    }
  });

  it('sslmode=prefer (and no sslmode) takes TLS where the server offers it, allow only where the server asks for it, disable never, and none over a Unix socket (as libpq)', async () => {
    const url = await server.createDatabase();
    const name = url.split('/').pop()!;
    for (const query of ['', '?sslmode=prefer']) {
      const prefer = await serves(`${url}${query}`, name);
      assert.ok(prefer.tcp > 0 && prefer.tls === prefer.tcp, `${query}: ${JSON.stringify(prefer)}`);
    }
    const disable = await serves(`${url}?sslmode=disable`, name);
    assert.ok(disable.tcp > 0 && disable.tls === 0, `disable: ${JSON.stringify(disable)}`);
    const allow = await serves(`${url}?sslmode=allow`, name);
    assert.ok(allow.tcp > 0 && allow.tls === 0, `allow: ${JSON.stringify(allow)}`);
    // a user the server takes without TLS only: prefer goes without, as libpq
    const plainonly = (await server.createDatabase('plainonly')).split('/').pop()!;
    const without = await serves(`postgres://plainonly@127.0.0.1:${server.port}/${plainonly}`, plainonly);
    assert.ok(without.tcp > 0 && without.tls === 0, `plainonly: ${JSON.stringify(without)}`);
    const socket = await serves(`${url}?sslmode=prefer&host=${encodeURIComponent(server.socketDir)}`, name);
    assert.ok(socket.socket > 0 && socket.tcp === 0 && socket.tls === 0, `socket: ${JSON.stringify(socket)}`);
  });

  it('a client certificate (sslcert, sslkey) signs in where pg_hba.conf asks for one; without one, or with only half of one, one clear sentence', async () => {
    const name = (await server.createDatabase('certuser')).split('/').pop()!;
    const base = `postgres://certuser@127.0.0.1:${server.port}/${name}?sslmode=verify-full&sslrootcert=${encodeURIComponent(ca.ca)}`;
    const mine = ca.client('certuser');
    const via = await serves(`${base}&sslcert=${encodeURIComponent(mine.cert)}&sslkey=${encodeURIComponent(mine.key)}`, name);
    assert.ok(via.tcp > 0 && via.socket === 0, JSON.stringify(via));
    const without = failedStart(base);
    assert.equal(without.status, 1);
    assert.match(without.stderr, new RegExp(`PostgreSQL at 127\\.0\\.0\\.1:${server.port} refused user "certuser": .*certificate.* \\(give one with sslcert and sslkey, its CN the user name\\)`));
    const someoneElse = ca.client('postgres');
    const wrongName = failedStart(`${base}&sslcert=${encodeURIComponent(someoneElse.cert)}&sslkey=${encodeURIComponent(someoneElse.key)}`);
    assert.equal(wrongName.status, 1);
    assert.match(wrongName.stderr, /refused user "certuser": .*certificate/);
    const half = failedStart(`${base}&sslcert=${encodeURIComponent(mine.cert)}`);
    assert.equal(half.status, 2);
    assert.match(half.stderr, /a client certificate needs both sslcert and sslkey/);
  });
  after(async () => {
    await server?.destroy();
    ca?.remove();
    other?.remove();
  });

  it('sslmode=verify-full with the CA serves; a wrong password or an unknown CA is one clear sentence, and the password is never printed', async () => {
    const url = await server.createDatabase(); // postgres://postgres:<encoded password>@127.0.0.1:port/db
    await servesOn(`${url}?sslmode=verify-full&sslrootcert=${encodeURIComponent(ca.ca)}`);
    const wrong = failedStart(url.replace(encodeURIComponent(PASSWORD), 'not-it') + '?sslmode=require');
    assert.equal(wrong.status, 1);
    assert.match(wrong.stderr, new RegExp(`PostgreSQL at 127\\.0\\.0\\.1:${server.port} refused user "postgres": access denied \\(check the user and password\\)`));
    const untrusted = failedStart(`${url}?sslmode=verify-full&sslrootcert=${encodeURIComponent(other.ca)}`);
    assert.equal(untrusted.status, 1);
    assert.match(untrusted.stderr, /cannot use PostgreSQL at 127\.0\.0\.1:\d+: .*certificate/);
    for (const r of [wrong, untrusted]) assert.ok(!r.stderr.includes(PASSWORD) && !r.stderr.includes(encodeURIComponent(PASSWORD)), r.stderr);
  });
});
