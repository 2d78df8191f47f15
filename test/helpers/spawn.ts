// This server as a child process (bin/etcd-adapter), on a free port: for tests
// and benchmarks that must not share an event loop with their clients.
import * as assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import * as path from 'node:path';
import { b, EtcdGrpcClient } from './grpc-client';
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

/** A start that must fail: the server on `backend`, waited for until it exits; its exit status and stderr. */
export function failedStart(backend: string): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [BIN, '--backend', backend, '--listen-client-urls', 'http://127.0.0.1:0'], { encoding: 'utf8', timeout: 30000, env: { PATH: process.env.PATH } });
}

/** The server started on `backend` takes a put and reads it back; `whileUp` runs before it stops (its result is returned). */
export async function servesOn<T>(backend: string, whileUp?: () => Promise<T>): Promise<T | undefined> {
  const s = await spawnAdapter(['--backend', backend]);
  try {
    const c = new EtcdGrpcClient(s.endpoint);
    try {
      await c.put({ key: b('k'), value: b(backend) });
      assert.equal((await c.range({ key: b('k') })).kvs[0].value.toString(), backend);
    } finally {
      c.close();
    }
    return await whileUp?.();
  } finally {
    await s.stop();
  }
}
