// One load-generating thread: `concurrency` request loops on one gRPC channel,
// for a fixed time, recording each request's latency after the warm-up.
import { parentPort, workerData } from 'node:worker_threads';
import * as grpc from '@grpc/grpc-js';
import { packageDefinition } from '../src/proto';

export interface LoadSpec {
  endpoint: string;
  op: 'put' | 'range' | 'authenticate' | 'keepalive';
  /** authenticate: the user and password; keepalive: the lease id (as user). */
  user?: string;
  password?: string;
  concurrency: number;
  /** range: serializable reads (no ReadIndex). */
  serializable?: boolean;
  warmupMs: number;
  durationMs: number;
  keySpace: number;
  keyBytes: number;
  valueBytes: number;
  seed: number;
}

export interface LoadResult {
  ops: number;
  errors: number;
  /** Latencies in microseconds of the requests completed in the measured window. */
  latencies: Float64Array;
  elapsedMs: number;
}

function key(i: number, bytes: number): Buffer {
  const k = Buffer.alloc(bytes, 0x30);
  k.write(i.toString(36).padStart(bytes, '0').slice(-bytes), 'latin1');
  return k;
}

/**
 * Requests are encoded ahead of time and answers are not decoded, so the
 * generator spends its CPU on the transport, not on protobuf.
 */
function encodedRequests(spec: LoadSpec): Buffer[] {
  if (spec.op === 'authenticate') {
    const auth = packageDefinition['etcdserverpb.Auth'] as grpc.ServiceDefinition;
    return [auth.Authenticate.requestSerialize({ name: spec.user, password: spec.password })];
  }
  const kv = packageDefinition['etcdserverpb.KV'] as grpc.ServiceDefinition;
  const value = Buffer.alloc(spec.valueBytes, 0x61);
  let rnd = spec.seed >>> 0;
  const next = () => (rnd = (Math.imul(rnd, 1664525) + 1013904223) >>> 0) % spec.keySpace;
  return Array.from({ length: 4096 }, () => {
    const k = key(next(), spec.keyBytes);
    return spec.op === 'put' ? kv.Put.requestSerialize({ key: k, value }) : kv.Range.requestSerialize({ key: k, serializable: spec.serializable ?? false });
  });
}

/** keepalive: one bidirectional stream per request loop; a call is one request and its answer. */
function keepAliveCaller(spec: LoadSpec): () => () => Promise<void> {
  const pkg = grpc.loadPackageDefinition(packageDefinition) as any;
  const lease = new pkg.etcdserverpb.Lease(spec.endpoint, grpc.credentials.createInsecure());
  return () => {
    const stream = lease.LeaseKeepAlive() as grpc.ClientDuplexStream<object, unknown>;
    let waiting: (() => void) | null = null;
    stream.on('data', () => waiting?.());
    stream.on('error', () => undefined);
    return () =>
      new Promise<void>((resolve) => {
        waiting = resolve;
        stream.write({ ID: spec.user });
      });
  };
}

async function run(spec: LoadSpec): Promise<LoadResult> {
  if (spec.op === 'keepalive') return measure(spec, keepAliveCaller(spec));
  const channel = new grpc.Channel(spec.endpoint, grpc.credentials.createInsecure(), {});
  const path = { put: '/etcdserverpb.KV/Put', range: '/etcdserverpb.KV/Range', authenticate: '/etcdserverpb.Auth/Authenticate' }[spec.op];
  const requests = encodedRequests(spec);
  let i = 0;
  // The channel's own call API: the least client-side work grpc-js can do per request.
  const call = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const c = channel.createCall(path, Infinity, undefined, null, 0);
      c.start(new grpc.Metadata(), {
        onReceiveMetadata: () => {},
        onReceiveMessage: () => {},
        onReceiveStatus: (s) => (s.code === grpc.status.OK ? resolve() : reject(new Error(s.details))),
      });
      c.sendMessageWithContext({}, requests[i++ % requests.length]);
      c.halfClose();
      c.startRead();
    });
  const result = await measure(spec, () => call);
  channel.close();
  return result;
}

/** Runs `concurrency` loops, each with its own caller, and records latencies after the warm-up. */
async function measure(spec: LoadSpec, newCaller: () => () => Promise<void>): Promise<LoadResult> {
  const latencies: number[] = [];
  let errors = 0;
  const start = performance.now();
  const measureFrom = start + spec.warmupMs;
  const end = measureFrom + spec.durationMs;
  const loop = async () => {
    const call = newCaller();
    while (performance.now() < end) {
      const t0 = performance.now();
      try {
        await call();
        if (t0 >= measureFrom) latencies.push((performance.now() - t0) * 1000);
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: spec.concurrency }, loop));
  return { ops: latencies.length, errors, latencies: Float64Array.from(latencies), elapsedMs: spec.durationMs };
}

if (parentPort) {
  run(workerData as LoadSpec).then(
    (r) => parentPort!.postMessage(r),
    (err) => parentPort!.postMessage({ error: String(err) }),
  );
}
