// One thread of watchers for the fan-out benchmark: `streams` gRPC streams,
// each with `perStream` watchers on the prefix. A put's value is the time it
// was sent (ms since the epoch, sub-millisecond); latency is arrival minus that.
import { parentPort, workerData } from 'node:worker_threads';
import * as grpc from '@grpc/grpc-js';
import { packageDefinition } from '../src/proto';

export interface WatchSpec {
  endpoint: string;
  streams: number;
  perStream: number;
  prefix: string;
}

/** Messages from the benchmark: when measuring starts (puts sent earlier are warm-up), and the request for the report. */
export type WatchControl = { measureFrom: number } | 'report';

const now = () => performance.timeOrigin + performance.now();

if (parentPort) {
  const spec = workerData as WatchSpec;
  const pkg = grpc.loadPackageDefinition(packageDefinition) as any;
  const latencies: number[] = [];
  let measureFrom = Infinity;
  let created = 0;
  let events = 0;
  const calls: grpc.ClientDuplexStream<object, any>[] = [];
  const end = Buffer.from(spec.prefix.slice(0, -1) + String.fromCharCode(spec.prefix.charCodeAt(spec.prefix.length - 1) + 1));
  for (let s = 0; s < spec.streams; s++) {
    // a channel per stream, as separate clients would have
    const client = new pkg.etcdserverpb.Watch(spec.endpoint, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': -1 });
    const call = client.Watch() as grpc.ClientDuplexStream<object, any>;
    call.on('data', (r: any) => {
      if (r.created) {
        if (++created === spec.streams * spec.perStream) parentPort!.postMessage({ ready: true });
        return;
      }
      const t = now();
      for (const ev of r.events ?? []) {
        events++;
        const sent = Number(ev.kv.value.toString());
        if (sent >= measureFrom) latencies.push(t - sent);
      }
    });
    call.on('error', () => undefined);
    for (let i = 0; i < spec.perStream; i++) call.write({ create_request: { key: Buffer.from(spec.prefix), range_end: end } });
    calls.push(call);
  }
  parentPort.on('message', (m: WatchControl) => {
    if (m !== 'report') measureFrom = m.measureFrom;
    else {
      for (const c of calls) c.cancel();
      parentPort!.postMessage({ latencies: Float64Array.from(latencies), events });
    }
  });
}
