// Operating it as etcd: JSON log lines (levels, fields, nothing secret, an
// idle server silent), etcd's YAML configuration file (the same file etcd
// itself starts from), and etcd 3.5/3.6 flag names.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { b, EtcdGrpcClient } from './helpers/grpc-client';
import { freePort, waitFor } from './helpers/ports';
import { BIN, spawnAdapter, type SpawnedAdapter } from './helpers/spawn';
import { mariadbInstalled, startPrivateMariadb, type PrivateMariadb } from './helpers/mariadb';
import { scrape, value } from './helpers/prometheus';
import { etcdAvailable } from './helpers/real-etcd';
import { grpcWatch } from './helpers/watch-client';

/** Every stderr line of a server, parsed; fails on a line that is not a JSON object with level, ts and msg. */
function logLines(text: string): { level: string; ts: string; msg: string; [k: string]: unknown }[] {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      const o = JSON.parse(l);
      assert.ok(typeof o.level === 'string' && typeof o.ts === 'string' && typeof o.msg === 'string', `a log line: ${l}`);
      assert.ok(!Number.isNaN(Date.parse(o.ts)), `ts is a time: ${l}`);
      return o;
    });
}

// The periodic tasks fire several times in this window: the idle server below
// sweeps tokens every --auth-token-ttl (5 s); heartbeat, token flush, lease
// and alarm checks run every few seconds anyway. (The revision compactor's
// minute-long check is the one left out: on an idle store it has nothing to do.)
const IDLE_MS = 16_000;

describe('logs', () => {
  let idle: SpawnedAdapter;
  let idleSince = 0;
  let dir: string;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-adapter-logs-'));
    // Started first, left alone while the other tests run, looked at last.
    idle = await spawnAdapter(['--backend', `sqlite://${path.join(dir, 'idle.db')}`, '--auth-token-ttl', '5']);
    idleSince = Date.now();
  });
  after(async () => {
    await idle?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('are JSON lines with level, ts and msg; --log-level filters them; a password in the backend URL is never written', { skip: !mariadbInstalled() && 'mariadbd is not installed' }, async () => {
    let db: PrivateMariadb | undefined;
    try {
      db = await startPrivateMariadb(); // it takes any password: the one in the URL is only to be hidden
      const url = (await db.createDatabase()).replace('mysql://root@', 'mysql://root:S3cret-Pa55@');
      for (const level of ['debug', 'info', 'warn']) {
        const s = await spawnAdapter(['--backend', url, '--log-level', level]);
        const c = new EtcdGrpcClient(s.endpoint);
        await c.put({ key: b('k'), value: b('v') });
        await c.range({ key: b('k') });
        await c.call(c.auth, 'UserAdd', { name: `u-${level}`, password: 'Us3r-Pa55' });
        c.close();
        await s.stop();
        const text = s.log();
        assert.ok(!text.includes('S3cret-Pa55') && !text.includes('Us3r-Pa55'), `no password in the logs at ${level}`);
        const lines = logLines(text);
        const levels = new Set(lines.map((l) => l.level));
        if (level === 'warn') assert.ok(![...levels].some((l) => l === 'info' || l === 'debug'), `only warn and error at warn: ${[...levels]}`);
        if (level === 'info') {
          assert.ok(!levels.has('debug'));
          const serving = lines.find((l) => l.msg === 'serving the etcd API');
          assert.ok(serving, 'the start is logged');
          assert.equal(serving.backend, url.replace('S3cret-Pa55', '***'));
          assert.ok(lines.some((l) => l.msg === 'stopped'));
        }
        if (level === 'debug') assert.ok(levels.has('debug'), 'debug lines at debug');
      }
    } finally {
      await db?.destroy();
    }
  });

  it('a slow request is logged at warn, as etcd\'s "apply request took too long"', async () => {
    const s = await spawnAdapter(['--backend', 'memory', '--warning-apply-duration', '1ns']);
    const c = new EtcdGrpcClient(s.endpoint);
    await c.put({ key: b('slow/key'), value: b('secret-value') });
    c.close();
    await s.stop();
    const warn = logLines(s.log()).find((l) => l.msg === 'apply request took too long');
    assert.ok(warn, 'logged');
    assert.equal(warn.level, 'warn');
    assert.equal(warn['expected-duration'], '0.000001ms');
    assert.match(String(warn.request), /key:"slow\/key" value_size:12/);
    assert.ok(!s.log().includes('secret-value'), 'values are not logged');
  });

  it('alarms are logged: raised at warn, disarmed at info', async () => {
    const s = await spawnAdapter(['--backend', 'memory', '--quota-backend-bytes', '4096']);
    const c = new EtcdGrpcClient(s.endpoint);
    let raised: { memberID: string };
    try {
      await assert.rejects(c.put({ key: b('big'), value: Buffer.alloc(8192) }), { code: 8, details: 'etcdserver: mvcc: database space exceeded' });
      [raised] = (await c.call(c.maintenance, 'Alarm', { action: 'GET', memberID: 0, alarm: 'NONE' })).alarms;
      await c.call(c.maintenance, 'Alarm', { action: 'DEACTIVATE', memberID: raised.memberID, alarm: 'NOSPACE' });
    } finally {
      c.close();
      await s.stop();
    }
    const lines = logLines(s.log()).filter((l) => l.msg.startsWith('alarm'));
    assert.deepEqual(
      lines.map((l) => [l.level, l.msg, l.alarm, l.from]),
      [
        ['warn', 'alarm raised', 'NOSPACE', String(raised.memberID)],
        ['info', 'alarm disarmed', 'NOSPACE', String(raised.memberID)],
      ],
    );
  });

  it('console format, and --log-outputs to a file', async () => {
    const file = path.join(dir, 'out.log');
    const s = await spawnAdapter(['--backend', 'memory', '--log-format', 'console', '--log-outputs', `stderr,${file}`]);
    await s.stop();
    const stderr = s.log().trim().split('\n');
    assert.match(stderr[0], /^\d{4}-\d\d-\d\dT[\d:.]+Z\tinfo\tserving the etcd API\t\{.*\}$/);
    assert.equal(fs.readFileSync(file, 'utf8').trim(), s.log().trim(), 'the file gets the same lines');
    assert.equal((fs.statSync(file).mode & 0o777).toString(8), '600');
  });

  it('an idle server writes nothing at info for 16 s, its token sweeps included (checked last)', async () => {
    const left = IDLE_MS - (Date.now() - idleSince);
    if (left > 0) await new Promise((r) => setTimeout(r, left)); // this test is about time passing with nothing logged
    const lines = logLines(idle.log());
    assert.deepEqual(
      lines.map((l) => l.msg),
      ['serving the etcd API'],
      'one line at start, then nothing',
    );
  });
});

/** An etcd 3.4 configuration file, as etcd's sample has it (keys this server does not have included). */
function etcdConfig(o: { name: string; dataDir: string; client: string; peer: string; logLevel: string }): string {
  return `# This is the configuration file for the etcd server.
name: '${o.name}'
data-dir: ${o.dataDir}
wal-dir:
snapshot-count: 10000
heartbeat-interval: 100
election-timeout: 1000
quota-backend-bytes: 123456789
listen-peer-urls: ${o.peer}
listen-client-urls: ${o.client}
max-snapshots: 5
max-wals: 5
cors:
initial-advertise-peer-urls: ${o.peer}
advertise-client-urls: ${o.client}
discovery:
initial-cluster: ${o.name}=${o.peer}
initial-cluster-token: 'etcd-cluster'
initial-cluster-state: 'new'
strict-reconfig-check: false
enable-v2: false
enable-pprof: false
proxy: 'off'
max-request-bytes: 2048
max-txn-ops: 3
client-transport-security:
  cert-file:
  key-file:
  client-cert-auth: false
  trusted-ca-file:
  auto-tls: false
peer-transport-security:
  cert-file:
  key-file:
  client-cert-auth: false
  trusted-ca-file:
  auto-tls: false
debug: false
logger: zap
log-level: ${o.logLevel}
log-outputs: [stderr]
force-new-cluster: false
auto-compaction-mode: periodic
auto-compaction-retention: "1"
`;
}

describe('etcd\'s --config-file', () => {
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });
  const scratch = () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-adapter-config-'));
    dirs.push(d);
    return d;
  };

  /** Starts a process and waits for /health; returns its stderr and a stop. */
  async function run(cmd: string, args: string[], url: string) {
    const child = spawn(cmd, args, { env: { PATH: process.env.PATH }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    await waitFor(`${cmd} to serve`, async () => {
      if (child.exitCode !== null) throw new Error(`exited: ${stderr}`);
      return (await fetch(`${url}/health`).catch(() => null))?.ok ? true : undefined;
    });
    return {
      stderr: () => stderr,
      stop: async () => {
        child.kill('SIGTERM');
        await exited;
      },
    };
  }

  it('a real etcd configuration file: etcd starts from it, and so does this server, to the same effect as the flags', { skip: !etcdAvailable() && 'etcd is not installed' }, async () => {
    const make = async () => {
      const d = scratch();
      const client = `http://127.0.0.1:${await freePort()}`;
      const file = path.join(d, 'etcd.conf.yml');
      const peer = `http://127.0.0.1:${await freePort()}`;
      fs.writeFileSync(file, etcdConfig({ name: 'from-file', dataDir: path.join(d, 'data'), client, peer, logLevel: 'info' }));
      return { file, client, peer, endpoint: client.replace('http://', '') };
    };
    // etcd itself takes the file
    const forEtcd = await make();
    const etcd = await run('etcd', ['--config-file', forEtcd.file], forEtcd.client);
    // this server takes it too; flags beside it are ignored, as etcd ignores them
    const forUs = await make();
    const ours = await run(process.execPath, [BIN, '--config-file', forUs.file, '--name', 'ignored'], forUs.client);
    // and the same settings as flags
    const flagsUrl = `http://127.0.0.1:${await freePort()}`;
    const flagsDir = scratch();
    const flagsPeer = `http://127.0.0.1:${await freePort()}`;
    const flags = await run(
      process.execPath,
      [BIN, '--initial-advertise-peer-urls', flagsPeer, '--listen-peer-urls', flagsPeer, '--name', 'from-file', '--data-dir', path.join(flagsDir, 'data'), '--listen-client-urls', flagsUrl, '--quota-backend-bytes', '123456789', '--max-request-bytes', '2048', '--max-txn-ops', '3', '--auto-compaction-mode', 'periodic', '--auto-compaction-retention', '1', '--logger', 'zap'],
      flagsUrl,
    );
    try {
      for (const [label, endpoint, url, peer] of [
        ['etcd', forEtcd.endpoint, forEtcd.client, forEtcd.peer],
        ['file', forUs.endpoint, forUs.client, forUs.peer],
        ['flags', flagsUrl.replace('http://', ''), flagsUrl, flagsPeer],
      ] as const) {
        const c = new EtcdGrpcClient(endpoint);
        const members = await c.call(c.cluster, 'MemberList', {});
        assert.equal(members.members[0].name, 'from-file', `${label}: the name`);
        assert.deepEqual(members.members[0].peerURLs, [peer], `${label}: the peer URLs`);
        const refused = (pattern: RegExp) => (e: { details?: string }) => pattern.test(e.details ?? '');
        await assert.rejects(c.put({ key: b('big'), value: Buffer.alloc(4096) }), refused(/request is too large/), `${label}: max-request-bytes`);
        await assert.rejects(c.txn({ success: Array.from({ length: 4 }, (_, i) => ({ request_range: { key: b(`t${i}`) } })) }), refused(/too many operations/), `${label}: max-txn-ops`);
        c.close();
        assert.equal(value(await scrape(url), 'etcd_server_quota_backend_bytes'), 123456789, `${label}: the quota`);
      }
      assert.ok(fs.existsSync(path.join(path.dirname(forUs.file), 'data', 'state.db')), 'the data directory from the file');
      const lines = logLines(ours.stderr());
      const ignored = lines.filter((l) => /ignored settings this server does not have/.test(l.msg));
      assert.equal(ignored.length, 1, 'the settings it does not have are named once');
      assert.match(ignored[0].msg, /initial-cluster, .*peer-transport-security/);
      assert.ok(lines.some((l) => /--config-file is given: the other flags \(--name\) are ignored/.test(l.msg)));
    } finally {
      await Promise.all([etcd.stop(), ours.stop(), flags.stop()]);
    }
  });

  it('a bad file is a clear error', async () => {
    const d = scratch();
    const file = path.join(d, 'bad.yml');
    fs.writeFileSync(file, 'name: [unclosed');
    const child = spawn(process.execPath, [BIN, '--config-file', file], { env: { PATH: process.env.PATH }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (x) => (stderr += x));
    const code = await new Promise((resolve) => child.once('exit', resolve));
    assert.equal(code, 2);
    assert.match(stderr, /cannot read --config-file .*bad\.yml/);
  });
});

describe('etcd 3.5 and 3.6 flag names', () => {
  it('--watch-progress-notify-interval, --listen-metrics-urls, --log-level, --log-outputs', async () => {
    const metricsPort = await freePort();
    const s = await spawnAdapter(['--backend', 'memory', '--watch-progress-notify-interval', '200ms', '--listen-metrics-urls', `http://127.0.0.1:${metricsPort}`, '--log-level', 'warn', '--log-outputs', 'stderr']);
    try {
      const m = await scrape(`http://127.0.0.1:${metricsPort}`);
      assert.equal(value(m, 'etcd_server_has_leader'), 1, 'metrics on their own URL');
      assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).status, 200);
      assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/v3/kv/range`, { method: 'POST', body: '{}' })).status, 404, 'the metrics URL serves no API');
      const c = new EtcdGrpcClient(s.endpoint);
      const w = grpcWatch(c);
      w.send({ create_request: { key: b('p'), progress_notify: true } });
      await w.waitFor(2, 20000); // created, then a progress notification well before 10 minutes
      assert.ok(w.responses.length >= 2, 'progress notifications at the interval given');
      w.close();
      c.close();
    } finally {
      await s.stop();
    }
  });
});
