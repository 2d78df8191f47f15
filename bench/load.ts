// Runs a load over several worker threads and merges what they measured.
import { Worker } from 'node:worker_threads';
import * as path from 'node:path';
import type { LoadResult, LoadSpec } from './load-worker';

export interface Measured {
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** `clients` request loops spread over up to `threads` worker threads. */
export async function runLoad(spec: Omit<LoadSpec, 'concurrency' | 'seed'>, clients: number, threads: number): Promise<Measured> {
  const n = Math.min(clients, threads);
  const results = await Promise.all(
    Array.from({ length: n }, (_, i) => {
      const concurrency = Math.floor(clients / n) + (i < clients % n ? 1 : 0);
      return new Promise<LoadResult>((resolve, reject) => {
        const w = new Worker(path.join(__dirname, 'load-worker.js'), { workerData: { ...spec, concurrency, seed: 7919 * (i + 1) } });
        w.once('message', (m) => {
          void w.terminate();
          if (m.error) reject(new Error(m.error));
          else resolve(m);
        });
        w.once('error', reject);
      });
    }),
  );
  const all = new Float64Array(results.reduce((s, r) => s + r.latencies.length, 0));
  let o = 0;
  for (const r of results) {
    all.set(r.latencies, o);
    o += r.latencies.length;
  }
  all.sort();
  const ops = results.reduce((s, r) => s + r.ops, 0);
  return {
    opsPerSec: ops / (spec.durationMs / 1000),
    p50Ms: percentile(all, 50) / 1000,
    p99Ms: percentile(all, 99) / 1000,
    errors: results.reduce((s, r) => s + r.errors, 0),
  };
}
