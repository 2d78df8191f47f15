// A real etcd and this server side by side, each with a gRPC client, for
// differential tests: the same request goes to both and the answers must match.
import * as assert from 'node:assert/strict';
import { startServer, type RunningServer, type StartOptions } from '../../src/index';
import { EtcdGrpcClient } from './grpc-client';
import { normalize } from './normalize';
import { startRealEtcd, type RealEtcd } from './real-etcd';
import { freshBackend, type BackendKind } from './backends';

export interface Pair {
  etcd: EtcdGrpcClient;
  ours: EtcdGrpcClient;
  etcdServer: RealEtcd;
  oursServer: RunningServer;
  close(): Promise<void>;
}

/** A real etcd and this server on a fresh store of the given kind. */
export async function startPair(options: Omit<StartOptions, 'backend'> & { backend?: BackendKind } = {}, etcdArgs: string[] = []): Promise<Pair> {
  const fresh = await freshBackend(options.backend ?? 'memory');
  const [etcdServer, oursServer] = await Promise.all([startRealEtcd(etcdArgs), startServer({ ...options, backend: fresh.url })]);
  const etcd = new EtcdGrpcClient(etcdServer.endpoint);
  const ours = new EtcdGrpcClient(oursServer.endpoint);
  return {
    etcd,
    ours,
    etcdServer,
    oursServer,
    close: async () => {
      etcd.close();
      ours.close();
      await Promise.all([etcdServer.stop(), oursServer.close()]);
      await fresh.drop();
    },
  };
}

type Outcome = { ok: unknown } | { err: { code: number; details: string } };

async function outcome(fn: () => Promise<unknown>): Promise<Outcome> {
  try {
    return { ok: await fn() };
  } catch (err) {
    const e = err as { code?: number; details?: string; message?: string };
    if (e && typeof e.code === 'number') return { err: { code: e.code, details: e.details ?? '' } };
    throw err;
  }
}

/**
 * Runs `fn` against real etcd, then against this server, and asserts the
 * answers (or errors: code and text) are the same once ids are removed.
 * Returns this server's answer.
 */
export async function same<T = any>(pair: Pair, fn: (c: EtcdGrpcClient) => Promise<unknown>, ignore: string[] = []): Promise<T> {
  const expected = await outcome(() => fn(pair.etcd));
  const actual = await outcome(() => fn(pair.ours));
  assert.deepEqual(normalize(actual, ignore), normalize(expected, ignore));
  return ('ok' in actual ? actual.ok : actual.err) as T;
}

/** As `same`, for requests whose error text comes from the gRPC library (it differs): compares codes. */
export async function sameCode(pair: Pair, fn: (c: EtcdGrpcClient) => Promise<unknown>): Promise<number | 'ok'> {
  const expected = await outcome(() => fn(pair.etcd));
  const actual = await outcome(() => fn(pair.ours));
  const code = (o: Outcome) => ('ok' in o ? 'ok' : o.err.code);
  assert.equal(code(actual), code(expected), `ours: ${JSON.stringify(actual)}\netcd: ${JSON.stringify(expected)}`);
  return code(actual);
}
