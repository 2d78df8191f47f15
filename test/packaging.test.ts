// The package as another project gets it: `npm install` of a packed tarball
// and of a git URL of a fresh clone, in a new project, then the library and
// the command run from there. To keep this test short, nothing compiles
// better-sqlite3 (a minute and a half each time, and npm's business, not
// ours): the consumer projects decline its native build (npm's allowScripts)
// and use the memory backend, and the fresh clone gets one commit that
// declines it as well. Everything else is as a user gets it: npm installs the
// clone's dependencies, runs its prepare (TypeScript) and packs it.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const REPO = path.resolve(__dirname, '..', '..');
const LONG = { timeout: 10 * 60 * 1000, maxBuffer: 64 * 1024 * 1024 };

/** Starts the embedded server, writes and reads a key over the JSON gateway, stops it. */
const CONSUMER = `
const { startServer } = require('etcd-adapter');
(async () => {
  const s = await startServer();
  const call = (p, body) => fetch(s.url + p, { method: 'POST', body: JSON.stringify(body) }).then((r) => r.json());
  const put = await call('/v3/kv/put', { key: 'YQ==', value: 'Yg==' });
  const got = await call('/v3/kv/range', { key: 'YQ==' });
  await s.close();
  console.log(JSON.stringify({ revision: put.header.revision, value: got.kvs[0].value }));
})().catch((e) => { console.error(e); process.exit(1); });
`;

async function newProject(): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-adapter-consumer-'));
  const pkg = { name: 'consumer', version: '1.0.0', private: true, allowScripts: { 'better-sqlite3': false, protobufjs: false, 'etcd-adapter': true } };
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify(pkg, null, 2));
  fs.writeFileSync(path.join(dir, 'consumer.js'), CONSUMER);
  return dir;
}

async function npmInstall(dir: string, spec: string): Promise<void> {
  await run('npm', ['install', spec, '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], { cwd: dir, ...LONG });
}

async function checkInstalled(dir: string): Promise<void> {
  const pkgDir = path.join(dir, 'node_modules', 'etcd-adapter');
  const dist = fs.readdirSync(path.join(pkgDir, 'dist')).sort();
  assert.deepEqual(dist, ['drivers', 'src'], 'only the library is shipped, not tests or benches');
  assert.match(fs.readFileSync(path.join(pkgDir, 'LICENSE'), 'utf8'), /Apache License\s+Version 2\.0/);
  const out = await run(process.execPath, ['consumer.js'], { cwd: dir, timeout: 60000 });
  assert.deepEqual(JSON.parse(out.stdout), { revision: '2', value: 'Yg==' });
  const version = await run(path.join(dir, 'node_modules', '.bin', 'etcd-adapter'), ['--version'], { cwd: dir, timeout: 60000 });
  assert.match(version.stdout, /^etcd-adapter \d+\.\d+\.\d+/);
}

describe('packaging', () => {
  it('a packed tarball installs into a new project and runs', async () => {
    const packDir = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-adapter-pack-'));
    // the dist/ that `npm test` built (packing without scripts: no rebuild under the other tests' feet)
    const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--pack-destination', packDir, '--loglevel=error'], { cwd: REPO, ...LONG });
    const tarball = path.join(packDir, stdout.trim().split('\n').pop()!);
    const project = await newProject();
    await npmInstall(project, tarball);
    await checkInstalled(project);
    fs.rmSync(project, { recursive: true, force: true });
    fs.rmSync(packDir, { recursive: true, force: true });
  });

  it('a git URL of a fresh clone installs into a new project (npm builds it) and runs', async () => {
    const clone = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-adapter-clone-'));
    await run('git', ['clone', '-q', REPO, clone], LONG);
    assert.ok(!fs.existsSync(path.join(clone, 'dist')) && !fs.existsSync(path.join(clone, 'node_modules')), 'a fresh clone has nothing built');
    const manifest = JSON.parse(fs.readFileSync(path.join(clone, 'package.json'), 'utf8'));
    manifest.allowScripts['better-sqlite3'] = false;
    fs.writeFileSync(path.join(clone, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    await run('git', ['-c', 'user.email=test@localhost', '-c', 'user.name=test', 'commit', '-qam', 'test: no native build'], { cwd: clone, ...LONG });
    const project = await newProject();
    await npmInstall(project, `git+file://${clone}`);
    await checkInstalled(project);
    fs.rmSync(project, { recursive: true, force: true });
    fs.rmSync(clone, { recursive: true, force: true });
  });
});
