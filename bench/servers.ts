// The servers a benchmark compares: Debian's etcd and this server, each in its
// own process so that neither shares an event loop with the load generator.
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { freePort, waitFor } from '../test/helpers/ports';
import { startRealEtcd } from '../test/helpers/real-etcd';

export interface BenchServer {
  name: string;
  endpoint: string;
  stop(): Promise<void>;
}

export async function realEtcd(): Promise<BenchServer> {
  const e = await startRealEtcd();
  return { name: 'etcd 3.4', endpoint: e.endpoint, stop: () => e.stop() };
}

export async function adapter(args: string[], name = 'etcd-adapter'): Promise<BenchServer> {
  const port = await freePort();
  const bin = path.resolve(__dirname, '..', '..', 'bin', 'etcd-adapter');
  const child = spawn(process.execPath, [bin, '--listen-client-urls', `http://127.0.0.1:${port}`, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitFor(`${name} to serve`, async () => {
    if (child.exitCode !== null) throw new Error(`${name} exited: ${stderr}`);
    const res = await fetch(`http://127.0.0.1:${port}/health`).catch(() => null);
    return res ? true : undefined;
  });
  return {
    name,
    endpoint: `127.0.0.1:${port}`,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}
