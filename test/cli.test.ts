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
    assert.equal(backend.status, 1);
    assert.match(backend.stderr, /unknown backend "cassandra:\/\/x"/);
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
