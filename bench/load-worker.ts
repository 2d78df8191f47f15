// One load-generating thread: `concurrency` request loops on one gRPC channel,
// for a fixed time, recording each request's latency after the warm-up.
import { parentPort, workerData } from 'node:worker_threads';
import * as grpc from '@grpc/grpc-js';
import { packageDefinition } from '../src/proto';

export interface LoadSpec {
  endpoint: string;
  op: 'put' | 'range';
  concurrency: number;
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
  const kv = packageDefinition['etcdserverpb.KV'] as grpc.ServiceDefinition;
  const value = Buffer.alloc(spec.valueBytes, 0x61);
  let rnd = spec.seed >>> 0;
  const next = () => (rnd = (Math.imul(rnd, 1664525) + 1013904223) >>> 0) % spec.keySpace;
  return Array.from({ length: 4096 }, () => {
    const k = key(next(), spec.keyBytes);
    return spec.op === 'put' ? kv.Put.requestSerialize({ key: k, value }) : kv.Range.requestSerialize({ key: k });
  });
}

async function run(spec: LoadSpec): Promise<LoadResult> {
  const channel = new grpc.Channel(spec.endpoint, grpc.credentials.createInsecure(), {});
  const path = spec.op === 'put' ? '/etcdserverpb.KV/Put' : '/etcdserverpb.KV/Range';
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
      c.sendMessageWithContext({}, requests[i++ & 4095]);
      c.halfClose();
      c.startRead();
    });
  const kv = channel;

  const latencies: number[] = [];
  let errors = 0;
  const start = performance.now();
  const measureFrom = start + spec.warmupMs;
  const end = measureFrom + spec.durationMs;
  const loop = async () => {
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
  kv.close();
  return { ops: latencies.length, errors, latencies: Float64Array.from(latencies), elapsedMs: spec.durationMs };
}

if (parentPort) {
  run(workerData as LoadSpec).then(
    (r) => parentPort!.postMessage(r),
    (err) => parentPort!.postMessage({ error: String(err) }),
  );
}
