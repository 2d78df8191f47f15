// This server as a child process (bin/etcd-adapter), on a free port: for tests
// and benchmarks that must not share an event loop with their clients.
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { freePort, waitFor } from './ports';

export interface SpawnedAdapter {
  endpoint: string;
  url: string;
  child: ChildProcess;
  /** Everything the process wrote to stderr so far. */
  log(): string;
  /** SIGTERM, and wait for the exit; resolves with the exit code. */
  stop(): Promise<number | null>;
}

export const BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'etcd-adapter');

export async function spawnAdapter(args: string[], env: NodeJS.ProcessEnv = {}): Promise<SpawnedAdapter> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, [BIN, '--listen-client-urls', url, ...args], {
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await waitFor(`etcd-adapter ${args.join(' ')} to serve`, async () => {
    if (child.exitCode !== null) throw new Error(`etcd-adapter exited: ${stderr}`);
    const res = await fetch(`${url}/health`).catch(() => null);
    return res?.ok ? true : undefined;
  });
  return {
    endpoint: `127.0.0.1:${port}`,
    url,
    child,
    log: () => stderr,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}
