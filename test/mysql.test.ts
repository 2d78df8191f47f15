// MySQL/MariaDB as a backend, beyond the suites every backend runs: a Unix
// socket (?socket=/path), the way to reach a server that listens on no TCP port
// or lets root in only through its socket; TLS as managed MySQL and TiDB Cloud
// ask for it (ssl-mode, ssl-ca, a client certificate), on a private MariaDB.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as dns from 'node:dns';
import * as fs from 'node:fs';
import * as os from 'node:os';
import mysql from 'mysql2/promise';
import { backendsUnderTest, createMysqlDatabase, MYSQL_URL, type FreshBackend } from './helpers/backends';
import { failedStart, servesOn } from './helpers/spawn';
import { makeTestCa, type TestCa } from './helpers/certs';
import { mariadbInstalled, startPrivateMariadb, type PrivateMariadb } from './helpers/mariadb';

const skip = !backendsUnderTest().includes('mysql') && 'mysql is not under test';

async function onServer<T>(fn: (c: mysql.Connection) => Promise<T>): Promise<T> {
  const u = new URL(MYSQL_URL);
  const c = await mysql.createConnection({ host: u.hostname, port: Number(u.port || 3306), user: decodeURIComponent(u.username || 'root'), password: decodeURIComponent(u.password) });
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

describe('MySQL: a Unix socket', { skip }, () => {
  let db: FreshBackend;
  let socket: string;
  before(async () => {
    db = await createMysqlDatabase();
    socket = await onServer(async (c) => String(((await c.query('SELECT @@socket AS s')) as unknown as [{ s: string }[]])[0][0].s));
  });
  after(async () => {
    await db?.drop();
  });

  it('?socket=/path: every connection goes through it; one that is not there, or a relative path, is one clear sentence', async (t) => {
    if (!fs.existsSync(socket)) return t.skip(`the server's socket ${socket} is not on this machine`);
    const name = db.url.split('/').pop()!;
    const u = new URL(db.url);
    const url = `mysql://${u.username || 'root'}${u.password ? `:${u.password}` : ''}@localhost/${name}?socket=${encodeURIComponent(socket)}`;
    // a socket connection's host is "localhost"; a TCP one's is "address:port"
    const hosts = (await servesOn(url, () => onServer(async (conn) => ((await conn.query('SELECT HOST AS h FROM information_schema.PROCESSLIST WHERE DB = ?', [name])) as unknown as [{ h: string }[]])[0].map((r) => r.h))))!;
    assert.ok(hosts.length > 0 && hosts.every((h) => h === 'localhost'), JSON.stringify(hosts));
    const missing = failedStart(`mysql://root@localhost/${name}?socket=${encodeURIComponent(`${socket}.not-here`)}`);
    assert.equal(missing.status, 1);
    assert.ok(missing.stderr.includes(`cannot connect to MySQL at ${socket}.not-here: no such socket`), missing.stderr);
    const relative = failedStart(`mysql://root@localhost/${name}?socket=mysqld.sock`);
    assert.equal(relative.status, 2);
    assert.match(relative.stderr, /socket must be an absolute path/);
  });
});

describe('MySQL over TLS (a private MariaDB)', { skip: (skip || !mariadbInstalled()) && 'mysql is not under test or mariadbd is not installed' }, () => {
  let ca: TestCa;
  let other: TestCa;
  let server: PrivateMariadb;
  let name: string;
  before(async () => {
    [ca, other] = [makeTestCa(), makeTestCa()];
    server = await startPrivateMariadb({ grants: true, tls: { cert: ca.serverCert, key: ca.serverKey, ca: ca.ca } });
    name = (await server.createDatabase()).split('/').pop()!;
    // the adapter's users may only come in over TLS; certuser only with a certificate from the CA
    await server.query("ALTER USER app@'%' REQUIRE SSL");
    await server.query("CREATE USER certuser@'%' REQUIRE X509");
    await server.query("GRANT ALL PRIVILEGES ON `etcd\\_%`.* TO certuser@'%'");
  });
  after(async () => {
    await server?.destroy();
    ca?.remove();
    other?.remove();
  });

  it('ssl-mode VERIFY_IDENTITY and VERIFY_CA with ssl-ca, and REQUIRED, serve a user that must use TLS; plain text, an unknown CA and a bad ssl-mode are one clear sentence each', async () => {
    const base = `mysql://app@localhost:${server.port}/${name}`;
    const caParam = `ssl-ca=${encodeURIComponent(ca.ca)}`;
    await servesOn(`${base}?ssl-mode=VERIFY_IDENTITY&${caParam}`);
    await servesOn(`${base.replace('localhost', '127.0.0.1')}?ssl-mode=verify_ca&${caParam}`);
    await servesOn(`${base}?ssl-mode=REQUIRED`);
    const plain = failedStart(base);
    assert.equal(plain.status, 1);
    assert.match(plain.stderr, new RegExp(`MySQL at localhost:${server.port} refused user "app"`));
    const untrusted = failedStart(`${base}?ssl-mode=VERIFY_CA&ssl-ca=${encodeURIComponent(other.ca)}`);
    assert.equal(untrusted.status, 1);
    assert.match(untrusted.stderr, new RegExp(`cannot use MySQL at localhost:${server.port}: .*certificate`));
    const badMode = failedStart(`${base}?ssl-mode=PREFERRED`);
    assert.equal(badMode.status, 2);
    assert.match(badMode.stderr, /ssl-mode must be DISABLED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY/);
  });

  it('VERIFY_IDENTITY checks the name: the host name of this machine, not in the certificate, is refused; VERIFY_CA takes it', async (t) => {
    const host = os.hostname();
    const addresses = await dns.promises.lookup(host, { all: true }).catch(() => []);
    if (!addresses.some((a) => a.address === '127.0.0.1') || host === 'localhost') return t.skip(`the host name ${host} does not lead to 127.0.0.1, where the server listens`);
    const base = `mysql://app@${host}:${server.port}/${name}?ssl-ca=${encodeURIComponent(ca.ca)}`;
    const wrongName = failedStart(`${base}&ssl-mode=VERIFY_IDENTITY`);
    assert.equal(wrongName.status, 1);
    assert.match(wrongName.stderr, new RegExp(`cannot use MySQL at ${host}:${server.port}: .*${host}.* is not in the cert's altnames`));
    await servesOn(`${base}&ssl-mode=VERIFY_CA`);
  });

  it('a client certificate (ssl-cert, ssl-key) signs in a user created REQUIRE X509; without one, or with only half of one, one clear sentence', async () => {
    const mine = ca.client('certuser');
    const base = `mysql://certuser@127.0.0.1:${server.port}/${name}?ssl-mode=VERIFY_CA&ssl-ca=${encodeURIComponent(ca.ca)}`;
    await servesOn(`${base}&ssl-cert=${encodeURIComponent(mine.cert)}&ssl-key=${encodeURIComponent(mine.key)}`);
    const without = failedStart(base);
    assert.equal(without.status, 1);
    assert.match(without.stderr, /refused user "certuser"/);
    const half = failedStart(`${base}&ssl-key=${encodeURIComponent(mine.key)}`);
    assert.equal(half.status, 2);
    assert.match(half.stderr, /a client certificate needs both ssl-cert and ssl-key/);
  });
});
