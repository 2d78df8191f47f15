// KV load: put and single-key range, 16 clients and 1, against two servers.
import { runLoad } from './load';
import { compare, seconds, table, type Row } from './compare';
import type { BenchServer } from './servers';

export const THREADS = 2;

export async function kvTable(ref: BenchServer, ours: BenchServer, goals: { put: number; range: number }): Promise<string> {
  const rows: Row[] = [];
  const base = { warmupMs: 1000, durationMs: seconds * 1000, keySpace: 100_000, keyBytes: 8, valueBytes: 256 };
  for (const [op, clients] of [['put', 16], ['put', 1], ['range', 16], ['range', 1]] as const) {
    const measure = (s: BenchServer) => runLoad({ ...base, endpoint: s.endpoint, op }, clients, THREADS);
    const [reference, mine] = await compare(ref, ours, measure);
    if (reference.errors || mine.errors) console.error(`${ours.name} ${op} x${clients}: errors etcd=${reference.errors} ours=${mine.errors}`);
    rows.push({ scenario: `${op}, ${clients} client${clients > 1 ? 's' : ''}`, reference, ours: mine, goal: clients === 16 ? goals[op] : undefined });
  }
  return table(`KV: ${ours.name} vs ${ref.name}`, ref.name, ours.name, rows);
}
