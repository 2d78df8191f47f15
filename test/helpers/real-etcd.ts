// Starts Debian's etcd (3.4) on free loopback ports with a fresh data dir:
// the reference every differential test compares against.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort, waitFor } from './ports';

export interface RealEtcd {
  endpoint: string;
  pid: number;
  url: string;
  dataDir: string;
  stop(): Promise<void>;
}

export function etcdAvailable(): boolean {
  return spawnSync('etcd', ['--version']).status === 0;
}

/** `restore`: a snapshot file that `etcdctl snapshot restore` turns into the data directory etcd starts on. */
export async function startRealEtcd(extraArgs: string[] = [], opts: { restore?: string } = {}): Promise<RealEtcd> {
  if (!etcdAvailable()) throw new Error('etcd is not installed: apt-get install etcd-server etcd-client (.ci/run does this)');
  const clientPort = await freePort();
  const peerPort = await freePort();
  let dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'real-etcd-'));
  const url = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  if (opts.restore) {
    const parent = dataDir;
    dataDir = path.join(parent, 'restored');
    const r = spawnSync('etcdctl', ['snapshot', 'restore', opts.restore, '--data-dir', dataDir, '--name', 'ref', '--initial-cluster', `ref=${peer}`, '--initial-advertise-peer-urls', peer], { env: { ...process.env, ETCDCTL_API: '3' }, encoding: 'utf8' });
    if (r.status !== 0) {
      fs.rmSync(parent, { recursive: true, force: true });
      throw new Error(`etcdctl snapshot restore failed: ${r.stderr}`);
    }
  }
  const child: ChildProcess = spawn(
    'etcd',
    [
      '--name', 'ref',
      '--data-dir', dataDir,
      '--listen-client-urls', url,
      '--advertise-client-urls', url,
      '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `ref=${peer}`,
      '--logger', 'zap',
      '--log-level', 'error',
      ...extraArgs,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await waitFor('etcd to serve', async () => {
      if (child.exitCode !== null) throw new Error(`etcd exited: ${stderr}`);
      const res = await fetch(`${url}/health`);
      return res.ok ? true : undefined;
    });
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    endpoint: `127.0.0.1:${clientPort}`,
    pid: child.pid!,
    url,
    dataDir,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      fs.rmSync(opts.restore ? path.dirname(dataDir) : dataDir, { recursive: true, force: true });
    },
  };
}
