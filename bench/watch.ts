// Watch benchmarks: fan-out latency (put sent -> event delivered at every
// watcher), memory per idle watcher, and how many idle HTTP watches fit.
import { Worker } from 'node:worker_threads';
import * as http from 'node:http';
import * as path from 'node:path';
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { packageDefinition } from '../src/proto';
import { percentile } from './load';
import type { BenchServer } from './servers';
import type { WatchControl, WatchSpec } from './watch-worker';

const now = () => performance.timeOrigin + performance.now();

export interface FanoutResult {
  p50Ms: number;
  p99Ms: number;
  delivered: number;
  expected: number;
  /** Every delivery's latency in ms, sorted. */
  latencies: Float64Array;
}

function summary(latencies: Float64Array, expected: number): FanoutResult {
  latencies.sort();
  return { p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), delivered: latencies.length, expected, latencies };
}

/** Several rounds as one sample: their deliveries pooled. */
export function pooled(results: FanoutResult[]): FanoutResult {
  const all = new Float64Array(results.reduce((n, r) => n + r.latencies.length, 0));
  let o = 0;
  for (const r of results) {
    all.set(r.latencies, o);
    o += r.latencies.length;
  }
  return summary(all, results.reduce((n, r) => n + r.expected, 0));
}

/**
 * W watchers on one prefix over S streams (spread over 2 threads) on `server`;
 * puts at `rate` per second sent to `writeTo` (another instance, for
 * cross-instance latency; by default the same server).
 */
export async function fanout(server: BenchServer, watchers: number, streams: number, rate: number, seconds: number, writeTo: BenchServer = server): Promise<FanoutResult> {
  const prefix = `wb${watchers}/`;
  const warmupMs = 1000;
  const threads = Math.min(2, streams);
  const workers = Array.from({ length: threads }, () => {
    const spec: WatchSpec = { endpoint: server.endpoint, streams: streams / threads, perStream: watchers / streams, prefix };
    return new Worker(path.join(__dirname, 'watch-worker.js'), { workerData: spec });
  });
  await Promise.all(workers.map((w) => new Promise((resolve) => w.once('message', resolve))));
  // The clock starts once every watcher is created: puts are paced from here, the first second is warm-up.
  const measureFrom = now() + warmupMs;
  for (const w of workers) w.postMessage({ measureFrom } satisfies WatchControl);

  const pkg = grpc.loadPackageDefinition(packageDefinition) as any;
  const kv = new pkg.etcdserverpb.KV(writeTo.endpoint, grpc.credentials.createInsecure());
  let sentMeasured = 0;
  const total = Math.round(rate * (seconds + warmupMs / 1000));
  for (let i = 0; i < total; i++) {
    const t = now();
    if (t >= measureFrom) sentMeasured++;
    kv.Put({ key: Buffer.from(`${prefix}${i % 10}`), value: Buffer.from(String(t)) }, () => undefined);
    const next = measureFrom - warmupMs + ((i + 1) * 1000) / rate;
    await new Promise((r) => setTimeout(r, Math.max(0, next - now())));
  }
  await new Promise((r) => setTimeout(r, 1500)); // let the last events arrive
  const reports = await Promise.all(
    workers.map(
      (w) =>
        new Promise<{ latencies: Float64Array }>((resolve) => {
          w.once('message', resolve);
          w.postMessage('report' satisfies WatchControl);
        }),
    ),
  );
  kv.close();
  await Promise.all(workers.map((w) => w.terminate()));
  const all = new Float64Array(reports.reduce((n, r) => n + r.latencies.length, 0));
  let o = 0;
  for (const r of reports) {
    all.set(r.latencies, o);
    o += r.latencies.length;
  }
  return summary(all, sentMeasured * watchers);
}

export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Server memory per idle gRPC watcher: RSS growth for `n` watchers on 10 streams, divided by n. */
export async function memoryPerWatcher(server: BenchServer, n: number): Promise<number> {
  const pkg = grpc.loadPackageDefinition(packageDefinition) as any;
  const before = rssBytes(server.pid);
  const clients: any[] = [];
  let created = 0;
  await new Promise<void>((resolve) => {
    for (let s = 0; s < 10; s++) {
      const client = new pkg.etcdserverpb.Watch(server.endpoint, grpc.credentials.createInsecure());
      const call = client.Watch();
      call.on('data', () => ++created === n && resolve());
      call.on('error', () => undefined);
      for (let i = 0; i < n / 10; i++) call.write({ create_request: { key: Buffer.from(`idle/${s}/${i}`), range_end: Buffer.from(`idle/${s}/${i}0`) } });
      clients.push({ client, call });
    }
  });
  await new Promise((r) => setTimeout(r, 1000));
  const after = rssBytes(server.pid);
  for (const c of clients) {
    c.call.cancel();
    c.client.close();
  }
  return (after - before) / n;
}

/** Opens `n` idle HTTP watches (one connection each); returns the server's RSS once all are created. */
export async function idleHttpWatches(server: BenchServer, n: number): Promise<{ opened: number; rss: number; before: number }> {
  const before = rssBytes(server.pid);
  const url = `http://${server.endpoint}`;
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const reqs: http.ClientRequest[] = [];
  let opened = 0;
  const body = JSON.stringify({ create_request: { key: Buffer.from('/apisix/').toString('base64'), range_end: Buffer.from('/apisix0').toString('base64') } });
  for (let batch = 0; batch < n; batch += 250) {
    await Promise.all(
      Array.from({ length: Math.min(250, n - batch) }, () => new Promise<void>((resolve) => {
        const req = http.request(`${url}/v3/watch`, { method: 'POST', agent }, (res) => {
          res.once('data', () => {
            opened++;
            resolve();
          });
        });
        req.on('error', () => resolve());
        req.end(body);
        reqs.push(req);
      })),
    );
  }
  await new Promise((r) => setTimeout(r, 1000));
  const rss = rssBytes(server.pid);
  for (const r of reqs) r.destroy();
  return { opened, rss, before };
}
