// What counting costs: the KV rows with `--metrics off` against the default
// (metrics on), two servers of the same backend. Each round measures both,
// back to back and in alternating order, and the table shows the median of
// the per-round ratios: a shared machine drifts by more than 3% between
// rounds, much less within one. The server's CPU time per request (from
// /proc) is shown beside, a second view of the same cost. The metrics server
// is scraped once a second while it is measured, harder than a Prometheus at
// its usual 15 s, so that rendering the text is in the price.
import * as fs from 'node:fs';
import { runLoad, type Measured } from './load';
import { alternate, rounds, seconds } from './compare';
import { THREADS } from './kv';
import type { BenchServer } from './servers';

const GOAL = 0.97; // issue 11: the put and range rows may not drop more than 3%
const WARMUP_MS = 1000;

/** CPU time (user + system) a process has used, in ms. */
function cpuMs(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // clock ticks: 100 per second on Linux
}

async function scrapedWhile<T>(server: BenchServer, work: () => Promise<T>): Promise<{ result: T; scrapes: number }> {
  let scrapes = 0;
  let failed: unknown;
  const timer = setInterval(() => {
    fetch(`http://${server.endpoint}/metrics`)
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

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

interface Round {
  ops: number;
  cpuUsPerOp: number;
}

/** `off` runs with --metrics off, `on` with the default; both on their own store of the same kind. */
export async function metricsCostTable(kind: string, off: BenchServer, on: BenchServer): Promise<string> {
  const pairs = Math.max(rounds, 5);
  let scrapes = 0;
  const base = { warmupMs: WARMUP_MS, durationMs: seconds * 1000, keySpace: 100_000, keyBytes: 8, valueBytes: 256, serializable: false };
  const lines = [
    `### Cost of metrics (${kind}): --metrics off vs on, ${pairs} rounds of ${seconds}s each, /metrics scraped every second while measured`,
    '',
    '| scenario | off ops/s | on ops/s | on/off (median of rounds) | off CPU µs/op | on CPU µs/op | goal |',
    '|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const [op, clients] of [['put', 16], ['range', 16], ['put', 1], ['range', 1]] as const) {
    const measure = async (s: BenchServer): Promise<Round> => {
      const load = () => runLoad({ ...base, endpoint: s.endpoint, op }, clients, THREADS);
      const before = cpuMs(s.pid);
      let m: Measured;
      if (s === on) {
        const r = await scrapedWhile(s, load);
        scrapes += r.scrapes;
        m = r.result;
      } else m = await load();
      const ops = (m.opsPerSec * (base.durationMs + WARMUP_MS)) / 1000;
      return { ops: m.opsPerSec, cpuUsPerOp: ((cpuMs(s.pid) - before) * 1000) / ops };
    };
    const [offs, ons] = await alternate(off, on, measure, pairs);
    const ratio = median(ons.map((r, i) => r.ops / offs[i].ops));
    const goal = clients === 16 ? `${ratio >= GOAL ? 'met' : 'MISSED'} (>= ${GOAL})` : '';
    lines.push(
      `| ${op}, ${clients} client${clients > 1 ? 's' : ''} | ${Math.round(median(offs.map((r) => r.ops)))} | ${Math.round(median(ons.map((r) => r.ops)))} | ${ratio.toFixed(3)} | ${median(offs.map((r) => r.cpuUsPerOp)).toFixed(0)} | ${median(ons.map((r) => r.cpuUsPerOp)).toFixed(0)} | ${goal} |`,
    );
  }
  lines.push('', `${scrapes} scrapes of /metrics during the "on" rounds.`);
  return lines.join('\n');
}
