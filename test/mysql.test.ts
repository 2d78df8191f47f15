// MySQL/MariaDB as a backend, beyond the suites every backend runs: a Unix
// socket (?socket=/path), the way to reach a server that listens on no TCP port
// or lets root in only through its socket.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import mysql from 'mysql2/promise';
import { backendsUnderTest, createMysqlDatabase, MYSQL_URL, type FreshBackend } from './helpers/backends';
import { BIN, spawnAdapter } from './helpers/spawn';
import { b, EtcdGrpcClient } from './helpers/grpc-client';

const skip = !backendsUnderTest().includes('mysql') && 'mysql is not under test';

const start = (backend: string) => spawnSync(process.execPath, [BIN, '--backend', backend, '--listen-client-urls', 'http://127.0.0.1:0'], { encoding: 'utf8', timeout: 30000, env: { PATH: process.env.PATH } });

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
    const s = await spawnAdapter(['--backend', url]);
    try {
      const c = new EtcdGrpcClient(s.endpoint);
      await c.put({ key: b('k'), value: b('through the socket') });
      assert.equal((await c.range({ key: b('k') })).kvs[0].value.toString(), 'through the socket');
      c.close();
      // a socket connection's host is "localhost"; a TCP one's is "address:port"
      const hosts = await onServer(async (conn) => ((await conn.query('SELECT HOST AS h FROM information_schema.PROCESSLIST WHERE DB = ?', [name])) as unknown as [{ h: string }[]])[0].map((r) => r.h));
      assert.ok(hosts.length > 0 && hosts.every((h) => h === 'localhost'), JSON.stringify(hosts));
    } finally {
      await s.stop();
    }
    const missing = start(`mysql://root@localhost/${name}?socket=${encodeURIComponent(`${socket}.not-here`)}`);
    assert.equal(missing.status, 1);
    assert.ok(missing.stderr.includes(`cannot connect to MySQL at ${socket}.not-here: no such socket`), missing.stderr);
    const relative = start(`mysql://root@localhost/${name}?socket=mysqld.sock`);
    assert.equal(relative.status, 2);
    assert.match(relative.stderr, /socket must be an absolute path/);
  });
});
