// KV load: put and single-key range, 16 clients and 1, against two servers.
import { runLoad } from './load';
import { compare, seconds, table, type Row } from './compare';
import type { BenchServer } from './servers';

export const THREADS = 2;

/**
 * `second` starts another instance on the same database (SQL backends): with it alive, `ours`
 * gives up the read lease and each batch of linearizable reads costs a ReadIndex query.
 */
export async function kvTable(ref: BenchServer, ours: BenchServer, goals: { put: number; range: number }, second?: () => Promise<BenchServer>): Promise<string> {
  const rows: Row[] = [];
  const base = { warmupMs: 1000, durationMs: seconds * 1000, keySpace: 100_000, keyBytes: 8, valueBytes: 256 };
  const scenarios: [op: 'put' | 'range', clients: number, serializable: boolean][] = [['put', 16, false], ['put', 1, false], ['range', 16, false], ['range', 1, false]];
  // SQL backends: serializable reads skip the ReadIndex query, which shows what that round trip costs
  if (ours.name !== 'memory') scenarios.push(['range', 16, true]);
  const measureRow = async (scenario: string, op: 'put' | 'range', clients: number, serializable: boolean, goal?: number) => {
    const measure = (s: BenchServer) => runLoad({ ...base, endpoint: s.endpoint, op, serializable }, clients, THREADS);
    const [reference, mine] = await compare(ref, ours, measure);
    if (reference.errors || mine.errors) console.error(`${ours.name} ${scenario}: errors etcd=${reference.errors} ours=${mine.errors}`);
    rows.push({ scenario, reference, ours: mine, goal });
  };
  for (const [op, clients, serializable] of scenarios) {
    const name = `${op}${serializable ? ' (serializable)' : ''}, ${clients} client${clients > 1 ? 's' : ''}`;
    await measureRow(name, op, clients, serializable, clients === 16 && !serializable ? goals[op] : undefined);
  }
  if (second) {
    const other = await second();
    try {
      await measureRow('range, 16 clients, a second instance alive (no read lease)', 'range', 16, false);
    } finally {
      await other.stop();
    }
  }
  return table(`KV: ${ours.name} vs ${ref.name}`, ref.name, ours.name, rows);
}
