// npm run bench: this server against a real etcd started here, in one run,
// with the same load generator; prints throughput, latency and the ratio.
//   BENCH_SECONDS=5   measured seconds per round (after 1 s of warm-up)
//   BENCH_ROUNDS=3    rounds per scenario, alternating which server goes
//                     first; the round with the median throughput is shown
import { runLoad, type Measured } from './load';
import { adapter, realEtcd, type BenchServer } from './servers';
import { fanout, idleHttpWatches, memoryPerWatcher } from './watch';

const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const suites = new Set((process.env.BENCH_SUITES ?? 'kv,watch').split(','));
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const THREADS = 2;

function median(ms: Measured[]): Measured {
  return [...ms].sort((a, b) => a.opsPerSec - b.opsPerSec)[Math.floor(ms.length / 2)];
}

/** Measures both servers `rounds` times, alternating the order; returns the median rounds. */
export async function compare(ref: BenchServer, ours: BenchServer, measure: (s: BenchServer) => Promise<Measured>): Promise<[Measured, Measured]> {
  const a: Measured[] = [];
  const b: Measured[] = [];
  for (let i = 0; i < rounds; i++) {
    if (i % 2 === 0) {
      a.push(await measure(ref));
      b.push(await measure(ours));
    } else {
      b.push(await measure(ours));
      a.push(await measure(ref));
    }
  }
  return [median(a), median(b)];
}

interface Row {
  scenario: string;
  reference: Measured;
  ours: Measured;
  goal?: number;
}

function fmt(m: Measured): string {
  return `${Math.round(m.opsPerSec).toString().padStart(7)} | ${m.p50Ms.toFixed(2).padStart(6)} | ${m.p99Ms.toFixed(2).padStart(6)}`;
}

function table(title: string, refName: string, oursName: string, rows: Row[]): string {
  const lines = [
    `### ${title}`,
    '',
    `| scenario | ${refName} ops/s | p50 ms | p99 ms | ${oursName} ops/s | p50 ms | p99 ms | ratio | goal |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const ratio = r.ours.opsPerSec / r.reference.opsPerSec;
    const goal = r.goal === undefined ? '' : `${ratio >= r.goal ? 'met' : 'MISSED'} (>= ${r.goal}x)`;
    lines.push(`| ${r.scenario} | ${fmt(r.reference)} | ${fmt(r.ours)} | ${ratio.toFixed(2)}x | ${goal} |`);
  }
  return lines.join('\n');
}

async function kvRows(ref: BenchServer, ours: BenchServer, goals: { put: number; range: number }): Promise<Row[]> {
  const rows: Row[] = [];
  const base = { warmupMs: 1000, durationMs: seconds * 1000, keySpace: 100_000, keyBytes: 8, valueBytes: 256 };
  for (const [op, clients] of [['put', 16], ['put', 1], ['range', 16], ['range', 1]] as const) {
    const measure = (s: BenchServer) => runLoad({ ...base, endpoint: s.endpoint, op }, clients, THREADS);
    const [reference, mine] = await compare(ref, ours, measure);
    if (reference.errors || mine.errors) console.error(`${op} x${clients}: errors etcd=${reference.errors} ours=${mine.errors}`);
    rows.push({ scenario: `${op}, ${clients} client${clients > 1 ? 's' : ''}`, reference, ours: mine, goal: clients === 16 ? goals[op] : undefined });
  }
  return rows;
}

async function watchTables(ref: BenchServer, ours: BenchServer): Promise<string> {
  const lines = [
    `### Watch fan-out: puts at 20/s for ${seconds}s, latency from sending the put to delivery at each watcher`,
    '',
    `| watchers / streams | ${ref.name} p50 ms | p99 ms | ${ours.name} p50 ms | p99 ms | p99 ours/etcd | delivered (etcd, ours) | goal |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const [w, s] of [[100, 10], [1000, 20]] as const) {
    const e = await fanout(ref, w, s, 20, seconds);
    const o = await fanout(ours, w, s, 20, seconds);
    const ratio = o.p99Ms / e.p99Ms;
    lines.push(
      `| ${w} / ${s} | ${e.p50Ms.toFixed(2)} | ${e.p99Ms.toFixed(2)} | ${o.p50Ms.toFixed(2)} | ${o.p99Ms.toFixed(2)} | ${ratio.toFixed(2)} | ${e.delivered}/${e.expected}, ${o.delivered}/${o.expected} | ${ratio <= 1 ? 'met' : 'MISSED'} (p99 <= etcd's) |`,
    );
  }
  const me = await memoryPerWatcher(ref, 1000);
  const mo = await memoryPerWatcher(ours, 1000);
  lines.push('', `Memory per idle gRPC watcher (1,000 watchers on 10 streams, RSS growth): ${ref.name} ${(me / 1024).toFixed(1)} KiB, ${ours.name} ${(mo / 1024).toFixed(1)} KiB`);
  const idle = await idleHttpWatches(ours, 10_000);
  lines.push(
    `Idle HTTP watches held by one ${ours.name} process: ${idle.opened} open, RSS ${(idle.rss / 2 ** 20).toFixed(0)} MiB (from ${(idle.before / 2 ** 20).toFixed(0)} MiB), ${((idle.rss - idle.before) / idle.opened / 1024).toFixed(1)} KiB each; goal >= 10,000 under 1 GiB: ${idle.opened >= 10_000 && idle.rss < 2 ** 30 ? 'met' : 'MISSED'}`,
  );
  return lines.join('\n');
}

async function main(): Promise<void> {
  console.log(
    `etcd-adapter benchmark: ${rounds} rounds of ${seconds}s per scenario (median shown), load from ${THREADS} worker threads, 8-byte keys from 100k, 256-byte values\n`,
  );
  const etcd = await realEtcd();
  try {
    const memory = await adapter(['--backend', 'memory'], 'memory');
    try {
      if (suites.has('kv')) console.log(table('KV, memory driver vs etcd', 'etcd', 'memory', await kvRows(etcd, memory, { put: 1.2, range: 1.0 })) + '\n');
      if (suites.has('watch')) console.log((await watchTables(etcd, memory)) + '\n');
    } finally {
      await memory.stop();
    }
  } finally {
    await etcd.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
