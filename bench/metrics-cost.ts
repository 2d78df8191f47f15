// What counting costs: the KV rows with `--metrics off` against the default
// (metrics on), two servers of the same backend, alternating rounds. The
// metrics server is scraped once a second while it is measured, harder than a
// Prometheus at its usual 15 s, so that rendering the text is in the price.
import { runLoad, type Measured } from './load';
import { compare, seconds, type Row, table } from './compare';
import { THREADS } from './kv';
import type { BenchServer } from './servers';

const GOAL = 0.97; // issue 11: the put and range rows may not drop more than 3%

async function scrapedWhile<T>(server: BenchServer, work: () => Promise<T>): Promise<{ result: T; scrapes: number }> {
  let scrapes = 0;
  let failed: unknown;
  const timer = setInterval(() => {
    fetch(`${server.endpoint}/metrics`)
      .then(async (r) => {
        if (!r.ok) throw new Error(`/metrics answered ${r.status}`);
        await r.text();
        scrapes++;
      })
      .catch((e) => (failed = e));
  }, 1000);
  try {
    const result = await work();
    if (failed) throw failed;
    return { result, scrapes };
  } finally {
    clearInterval(timer);
  }
}

/** `off` runs with --metrics off, `on` with the default; both on their own store of the same kind. */
export async function metricsCostTable(kind: string, off: BenchServer, on: BenchServer): Promise<string> {
  const rows: Row[] = [];
  let scrapes = 0;
  const base = { warmupMs: 1000, durationMs: seconds * 1000, keySpace: 100_000, keyBytes: 8, valueBytes: 256, serializable: false };
  for (const [op, clients] of [['put', 16], ['range', 16], ['put', 1], ['range', 1]] as const) {
    const measure = async (s: BenchServer): Promise<Measured> => {
      const load = () => runLoad({ ...base, endpoint: s.endpoint, op }, clients, THREADS);
      if (s !== on) return load();
      const r = await scrapedWhile(s, load);
      scrapes += r.scrapes;
      return r.result;
    };
    const [a, b] = await compare(off, on, measure);
    rows.push({ scenario: `${op}, ${clients} client${clients > 1 ? 's' : ''}`, reference: a, ours: b, goal: clients === 16 ? GOAL : undefined });
  }
  return `${table(`Cost of metrics (${kind}): --metrics off vs on, /metrics scraped every second while measured (${scrapes} scrapes)`, 'off', 'on', rows)}`;
}
