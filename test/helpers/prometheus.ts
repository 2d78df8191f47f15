// Scraping /metrics with a Prometheus text-format parser, for tests.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const parse = require('parse-prometheus-text-format') as (text: string) => Family[];

export interface Sample {
  value?: string;
  labels?: Record<string, string>;
  buckets?: Record<string, string>;
  count?: string;
  sum?: string;
}

export interface Family {
  name: string;
  help: string;
  type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED';
  metrics: Sample[];
}

export async function scrape(url: string): Promise<Map<string, Family>> {
  const res = await fetch(`${url}/metrics`);
  if (res.status !== 200) throw new Error(`GET ${url}/metrics: ${res.status}`);
  return new Map(parse(await res.text()).map((f) => [f.name, f]));
}

/** The sum of a family's samples whose labels include `match` (a counter's or gauge's value; for a histogram's count, histogramCount). */
export function value(families: Map<string, Family>, name: string, match: Record<string, string> = {}): number {
  const f = families.get(name);
  if (!f) return NaN;
  let total = 0;
  for (const m of f.metrics) {
    if (!Object.entries(match).every(([k, v]) => m.labels?.[k] === v)) continue;
    total += Number(m.value ?? m.count ?? 0);
  }
  return total;
}

/** The label names a family's samples carry (histograms' `le` aside). */
export function labelNames(f: Family): string[] {
  const names = new Set<string>();
  for (const m of f.metrics) for (const k of Object.keys(m.labels ?? {})) if (k !== 'le') names.add(k);
  return [...names].sort();
}

/**
 * A histogram's count for one set of labels (in the order they are exposed: `<name>_count{labels} n`). Read from the
 * text: the parser above keeps only the buckets of a histogram with labels.
 */
export async function histogramCount(url: string, name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(',');
  const line = text.split('\n').find((l) => l.startsWith(`${name}_count{${wanted}} `));
  if (!line) throw new Error(`${url}/metrics has no ${name}_count{${wanted}}`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}
