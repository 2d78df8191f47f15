// Compaction while writing: a store with N superseded versions (one key
// overwritten N times, or N keys each overwritten once), then a physical
// Compact to the current revision while one client keeps writing other keys.
// Reports how long the compaction took and how long writes waited meanwhile
// (worst and p99), for etcd and for this server, each on a fresh store.
import { b, EtcdGrpcClient } from '../test/helpers/grpc-client';
import type { BenchServer } from './servers';

export type CompactionShape = 'one key' | 'many keys';

export interface CompactionResult {
  compactMs: number;
  writes: number;
  worstMs: number;
  p99Ms: number;
}

/** `n` superseded versions, written by 16 clients at once. */
async function fill(c: EtcdGrpcClient, shape: CompactionShape, n: number): Promise<void> {
  const value = Buffer.alloc(64, 0x76);
  const jobs: Buffer[] = [];
  if (shape === 'one key') for (let i = 0; i <= n; i++) jobs.push(b('hot'));
  else for (let round = 0; round < 2; round++) for (let i = 0; i < n; i++) jobs.push(b(`k/${String(i).padStart(6, '0')}`));
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < jobs.length) await c.put({ key: jobs[next++], value });
    }),
  );
}

export async function measureCompaction(server: BenchServer, shape: CompactionShape, n: number): Promise<CompactionResult> {
  const c = new EtcdGrpcClient(server.endpoint);
  try {
    await fill(c, shape, n);
    const revision = Number((await c.range({ key: b('hot') })).header.revision);
    const latencies: { at: number; ms: number }[] = [];
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        const at = performance.now();
        await c.put({ key: b(`w/${i % 100}`), value: b('x') });
        latencies.push({ at, ms: performance.now() - at });
      }
    })();
    // a moment of writes before, for a baseline of the same client
    while (latencies.length < 20) await new Promise((r) => setTimeout(r, 5));
    const start = performance.now();
    await c.compact({ revision, physical: true });
    const end = performance.now();
    writing = false;
    await writer;
    // every write that was waiting at some point during the compaction
    const during = latencies.filter((l) => l.at + l.ms >= start && l.at <= end).map((l) => l.ms).sort((x, y) => x - y);
    return {
      compactMs: end - start,
      writes: during.length,
      worstMs: during[during.length - 1] ?? 0,
      p99Ms: during[Math.min(during.length - 1, Math.floor(during.length * 0.99))] ?? 0,
    };
  } finally {
    c.close();
  }
}

/** One table: each shape and size on a fresh etcd and a fresh server of ours. */
export async function compactionTable(
  oursName: string,
  fresh: { etcd: () => Promise<BenchServer>; ours: () => Promise<BenchServer> },
  cases: [CompactionShape, number][],
): Promise<string> {
  const lines = [
    `### Compaction while writing (${oursName}): physical Compact of N superseded versions, one client writing other keys meanwhile`,
    '',
    '| versions | etcd 3.4 compaction s | worst write ms | p99 ms | ours compaction s | worst write ms | p99 ms | worst ours/etcd |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const [shape, n] of cases) {
    const results: CompactionResult[] = [];
    for (const start of [fresh.etcd, fresh.ours]) {
      const server = await start();
      try {
        results.push(await measureCompaction(server, shape, n));
      } finally {
        await server.stop();
      }
    }
    const [e, o] = results;
    const cell = (r: CompactionResult) => `${(r.compactMs / 1000).toFixed(2)} | ${r.worstMs.toFixed(1)} | ${r.p99Ms.toFixed(1)}`;
    lines.push(`| ${n.toLocaleString('en')} (${shape}) | ${cell(e)} | ${cell(o)} | ${(o.worstMs / Math.max(e.worstMs, 0.001)).toFixed(2)} |`);
  }
  return lines.join('\n');
}
