// Alternating rounds against two servers and a markdown table of the result.
import type { Measured } from './load';
import type { BenchServer } from './servers';

export const seconds = Number(process.env.BENCH_SECONDS ?? 5);
export const rounds = Number(process.env.BENCH_ROUNDS ?? 3);

function median(ms: Measured[]): Measured {
  return [...ms].sort((a, b) => a.opsPerSec - b.opsPerSec)[Math.floor(ms.length / 2)];
}

/** Measures both servers `n` times, alternating which goes first; returns every round of each (round i of one beside round i of the other). */
export async function alternate<T>(ref: BenchServer, ours: BenchServer, measure: (s: BenchServer) => Promise<T>, n = rounds): Promise<[T[], T[]]> {
  const a: T[] = [];
  const b: T[] = [];
  for (let i = 0; i < n; i++) {
    if (i % 2 === 0) {
      a.push(await measure(ref));
      b.push(await measure(ours));
    } else {
      b.push(await measure(ours));
      a.push(await measure(ref));
    }
  }
  return [a, b];
}

/** Alternating rounds; the median round of each server. */
export async function compare(ref: BenchServer, ours: BenchServer, measure: (s: BenchServer) => Promise<Measured>): Promise<[Measured, Measured]> {
  const [a, b] = await alternate(ref, ours, measure);
  return [median(a), median(b)];
}

export interface Row {
  scenario: string;
  reference: Measured;
  ours: Measured;
  goal?: number;
}

function fmt(m: Measured): string {
  return `${Math.round(m.opsPerSec)} | ${m.p50Ms.toFixed(2)} | ${m.p99Ms.toFixed(2)}`;
}

export function table(title: string, refName: string, oursName: string, rows: Row[]): string {
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
