// bin/etcd-adapter: flags, environment variables, errors, signals.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { etcdctl } from './helpers/etcdctl';
import { freePort, waitFor } from './helpers/ports';
import { EtcdGrpcClient } from './helpers/grpc-client';
import { grpcWatch, httpWatch } from './helpers/watch-client';

const BIN = path.resolve(__dirname, '..', '..', 'bin', 'etcd-adapter');

/** A fresh working directory, so that the default data dir (`<name>.etcd`) never lands in the checkout. */
function scratchDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-adapter-cli-'));
}

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, [BIN, ...args], { cwd: scratchDir(), env: { PATH: process.env.PATH, ...env }, encoding: 'utf8', timeout: 20000 });
}

async function serve(args: string[], env: NodeJS.ProcessEnv = {}) {
  const cwd = scratchDir();
  const child = spawn(process.execPath, [BIN, ...args], { cwd, env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exit, cwd, stderr: () => stderr };
}

describe('command line', () => {
  it('--help lists every flag with its environment variable', () => {
    const r = run(['--help']);
    assert.equal(r.status, 0);
    for (const flag of ['--listen-client-urls', '--advertise-client-urls', '--name', '--data-dir', '--max-request-bytes', '--max-txn-ops', '--backend']) {
      assert.ok(r.stdout.includes(flag), flag);
    }
    assert.match(r.stdout, /ETCD_LISTEN_CLIENT_URLS/);
  });

  it('an unknown flag or a bad value is a clear error with a non-zero exit', () => {
    const unknown = run(['--no-such-flag']);
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /unknown flag --no-such-flag/);
    const bad = run(['--max-txn-ops', 'many']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /invalid value "many" for --max-txn-ops/);
    const badEnv = run([], { ETCD_MAX_REQUEST_BYTES: '-5' });
    assert.equal(badEnv.status, 2);
    assert.match(badEnv.stderr, /ETCD_MAX_REQUEST_BYTES/);
    const badUrl = run(['--listen-client-urls', 'ftp://127.0.0.1:1']);
    assert.equal(badUrl.status, 2);
    assert.match(badUrl.stderr, /scheme must be http or https/);
    const missing = run(['--name']);
    assert.equal(missing.status, 2);
    const backend = run(['--backend', 'cassandra://x', '--listen-client-urls', 'http://127.0.0.1:0']);
    assert.equal(backend.status, 2, 'an unknown backend scheme is a bad value');
    assert.match(backend.stderr, /unknown backend "cassandra:\/\/x"/);
  });

  it('a MySQL password with a raw "@", "/" or "#" is refused with the way to write it, and never printed', () => {
    for (const password of ['Pq7@Zx9:Kwq/Rdx#Vb1', 'Se9@Cr8@Et7', 'Sl4/Ash#Fr9']) {
      const r = run(['--backend', `mysql://user:${password}@127.0.0.1:1/db`, '--listen-client-urls', 'http://127.0.0.1:0', '--log-level', 'debug']);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /bad backend URL "mysql:\/\/user:\*\*\*@127\.0\.0\.1:1\/db": .*percent-encode .*@ as %40/);
      for (const part of password.split(/[@/#:]/)) assert.ok(!r.stderr.includes(part), `"${part}" of the password is not printed: ${r.stderr}`);
    }
  });

  it('SQLite files it cannot use are named with the reason (not a database, no permission)', () => {
    const dir = scratchDir();
    const garbage = path.join(dir, 'garbage.db');
    fs.writeFileSync(garbage, 'this is not a SQLite database, it is text that is long enough to be read as a header\n'.repeat(4), { mode: 0o600 });
    const notDb = run(['--backend', `sqlite://${garbage}`, '--listen-client-urls', 'http://127.0.0.1:0']);
    assert.equal(notDb.status, 1);
    assert.match(notDb.stderr, /cannot use the SQLite database .*garbage\.db: file is not a database\n/);
    assert.doesNotMatch(notDb.stderr, /object Object/);

    // permissions: as an unprivileged user (root reads and writes anything)
    const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    const readOnlyDir = path.join(dir, 'read-only');
    fs.mkdirSync(readOnlyDir, { mode: 0o555 });
    const lockedFile = path.join(dir, 'locked');
    fs.mkdirSync(lockedFile, { mode: 0o777 });
    fs.chmodSync(lockedFile, 0o777);
    fs.writeFileSync(path.join(lockedFile, 'state.db'), '', { mode: 0o444 });
    fs.chmodSync(dir, 0o755);
    for (const file of [path.join(readOnlyDir, 'state.db'), path.join(lockedFile, 'state.db')]) {
      const r = spawnSync(process.execPath, [BIN, '--backend', `sqlite://${file}`, '--listen-client-urls', 'http://127.0.0.1:0'], { cwd: os.tmpdir(), env: { PATH: process.env.PATH }, encoding: 'utf8', timeout: 20000, ...asUser });
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`cannot (open|use) the SQLite database ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*(EACCES|EPERM|permission denied|readonly)`, 'i'));
      assert.doesNotMatch(r.stderr, /object Object/);
    }
  });

  it('sqlite:// paths are percent-decoded as URLs are (%20 is a space)', async () => {
    const dir = path.join(scratchDir(), 'my dir');
    fs.mkdirSync(dir);
    const port = await freePort();
    const s = await serve(['--backend', `sqlite://${dir.replace(/ /g, '%20')}/state.db`, '--listen-client-urls', `http://127.0.0.1:${port}`]);
    await waitFor('the server', async () => ((await etcdctl(`127.0.0.1:${port}`, ['endpoint', 'health'])).code === 0 ? true : undefined));
    s.child.kill('SIGTERM');
    assert.equal(await s.exit, 0);
    assert.ok(fs.existsSync(path.join(dir, 'state.db')), 'the file is in "my dir"');
  });

  it('takes flags from ETCD_* environment variables, serves etcdctl, and stops on SIGTERM', async () => {
    const port = await freePort();
    const s = await serve([], { ETCD_LISTEN_CLIENT_URLS: `http://127.0.0.1:${port}`, ETCD_MAX_TXN_OPS: '2', ETCD_NAME: 'from-env', ETCD_NO_SUCH_SETTING: '1', ETCD_ADAPTER_TRACE: 'none' });
    const endpoint = `127.0.0.1:${port}`;
    await waitFor('the server', async () => ((await etcdctl(endpoint, ['endpoint', 'health'])).code === 0 ? true : undefined));
    assert.equal((await etcdctl(endpoint, ['put', 'k', 'v'])).code, 0);
    assert.equal((await etcdctl(endpoint, ['get', 'k', '--print-value-only'])).stdout, 'v\n');
    const txn = await etcdctl(endpoint, ['txn'], '\n\nput a 1\nput b 2\nput c 3\n\n\n');
    assert.match(txn.stderr, /too many operations in txn request/);
    const members = await etcdctl(endpoint, ['member', 'list']);
    assert.match(members.stdout, /from-env/);
    s.child.kill('SIGTERM');
    assert.equal(await s.exit, 0);
    assert.ok(fs.existsSync(path.join(s.cwd, 'from-env.etcd', 'state.db')), 'the default backend is SQLite in <name>.etcd');
    assert.match(s.stderr(), /"msg":"received a signal: shutting down","signal":"SIGTERM"/);
    assert.match(s.stderr(), /unrecognized environment variable ETCD_NO_SUCH_SETTING/);
    assert.doesNotMatch(s.stderr(), /ETCD_ADAPTER_TRACE/, 'our own variable is known');
  });

  it("the Dockerfile's defaults survive flags given to `docker run` (it still listens on every interface)", async () => {
    // No container engine here: run the image's ENTRYPOINT with its ENV, as `docker run IMAGE --backend memory` would.
    const dockerfile = fs.readFileSync(path.resolve(__dirname, '..', '..', 'Dockerfile'), 'utf8');
    const final = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
    assert.doesNotMatch(final, /^CMD /m, 'a CMD would be replaced by the flags of `docker run`');
    const env: Record<string, string> = {};
    for (const m of final.replace(/\\\n/g, ' ').matchAll(/^ENV (.*)$/gm)) {
      for (const pair of m[1].trim().split(/\s+/)) env[pair.slice(0, pair.indexOf('='))] = pair.slice(pair.indexOf('=') + 1);
    }
    assert.equal(env.ETCD_LISTEN_CLIENT_URLS, 'http://0.0.0.0:2379');
    assert.match(final, /^ENTRYPOINT \["node", "bin\/etcd-adapter"\]$/m);
    const port = await freePort();
    const s = await serve(['--backend', 'memory'], { ...env, ETCD_LISTEN_CLIENT_URLS: env.ETCD_LISTEN_CLIENT_URLS.replace('2379', String(port)), ETCD_DATA_DIR: path.join(scratchDir(), 'data') });
    await waitFor('the server', async () => (s.stderr().includes('serving the etcd API') ? true : undefined));
    assert.match(s.stderr(), new RegExp(`"client-urls":\\["http://0\\.0\\.0\\.0:${port}"\\]`));
    assert.match(s.stderr(), /"backend":"memory"/);
    s.child.kill('SIGTERM');
    assert.equal(await s.exit, 0);
  });

  it('stops on SIGINT with watches open, and a flag wins over its environment variable', async () => {
    const port = await freePort();
    const other = await freePort();
    const s = await serve(['--listen-client-urls', `http://127.0.0.1:${port}`], { ETCD_LISTEN_CLIENT_URLS: `http://127.0.0.1:${other}` });
    await waitFor('the server', async () => ((await etcdctl(`127.0.0.1:${port}`, ['endpoint', 'health'])).code === 0 ? true : undefined));
    assert.match(s.stderr(), /ETCD_LISTEN_CLIENT_URLS is shadowed/);
    // open watches over both protocols must not hold the shutdown up
    const http = httpWatch(`http://127.0.0.1:${port}`, [{ create_request: { key: Buffer.from('a').toString('base64') } }]);
    const client = new EtcdGrpcClient(`127.0.0.1:${port}`);
    const grpc = grpcWatch(client);
    grpc.send({ create_request: { key: Buffer.from('a') } });
    await Promise.all([http.waitFor(1), grpc.waitFor(1)]);
    s.child.kill('SIGINT');
    assert.equal(await s.exit, 0);
    http.close();
    client.close();
  });

  it('a port in use is a clear start-up error', async () => {
    const port = await freePort();
    const s = await serve(['--listen-client-urls', `http://127.0.0.1:${port}`]);
    await waitFor('the server', async () => ((await etcdctl(`127.0.0.1:${port}`, ['endpoint', 'health'])).code === 0 ? true : undefined));
    const second = run(['--listen-client-urls', `http://127.0.0.1:${port}`]);
    assert.equal(second.status, 1);
    assert.match(second.stderr, /cannot start: .*EADDRINUSE/);
    s.child.kill('SIGTERM');
    await s.exit;
  });

  it('keeps the data to its own user: data directory 0700, SQLite files 0600, no token in the file', async () => {
    const port = await freePort();
    const endpoint = `127.0.0.1:${port}`;
    const s = await serve(['--listen-client-urls', `http://${endpoint}`, '--name', 'private']);
    await waitFor('the server', async () => ((await etcdctl(endpoint, ['endpoint', 'health'])).code === 0 ? true : undefined));
    const dir = path.join(s.cwd, 'private.etcd');
    const modeOf = (f: string) => (fs.statSync(f).mode & 0o777).toString(8);
    assert.equal((await etcdctl(endpoint, ['user', 'add', 'root:rootpw'])).code, 0);
    assert.equal((await etcdctl(endpoint, ['user', 'grant-role', 'root', 'root'])).code, 0);
    assert.equal((await etcdctl(endpoint, ['auth', 'enable'])).code, 0);
    const client = new EtcdGrpcClient(endpoint);
    const { token } = await client.call(client.auth, 'Authenticate', { name: 'root', password: 'rootpw' });
    client.close();
    assert.equal(modeOf(dir), '700');
    for (const f of ['state.db', 'state.db-wal', 'state.db-shm']) assert.equal(modeOf(path.join(dir, f)), '600', f);
    // A reader of the file finds no token to use (only hashes of them).
    const bytes = Buffer.concat(['state.db', 'state.db-wal'].map((f) => fs.readFileSync(path.join(dir, f))));
    assert.equal(bytes.indexOf(token), -1, 'the token is not in the database');
    s.child.kill('SIGTERM');
    assert.equal(await s.exit, 0);

    // An existing data directory and files that others can read are tightened, with a warning.
    fs.chmodSync(dir, 0o755);
    fs.chmodSync(path.join(dir, 'state.db'), 0o644);
    const again = spawn(process.execPath, [BIN, '--listen-client-urls', `http://${endpoint}`, '--name', 'private'], { cwd: s.cwd, env: { PATH: process.env.PATH }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    again.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise((resolve) => again.once('exit', resolve));
    await waitFor('the server', async () => ((await fetch(`http://${endpoint}/health`).catch(() => null))?.ok ? true : undefined));
    assert.equal(modeOf(dir), '700');
    assert.equal(modeOf(path.join(dir, 'state.db')), '600');
    assert.match(stderr, /data directory \\"[^"]*private\.etcd\\" was drwxr-xr-x: set to drwx------/);
    assert.match(stderr, /state\.db\\" was -rw-r--r--: set to -rw-------/);
    again.kill('SIGTERM');
    await exited;
  });
});
