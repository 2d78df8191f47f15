// npm run robustness -- --backend memory|sqlite|mysql|postgres|URL [--duration 10m]
//   [--seed N] [--instances 3] [--clients 6] [--rate 150] [--watchers 4] [--faults kill,freeze,...]
//   [--out DIR] [--runs N]
// npm run robustness -- --check DIR/<backend>-<seed>/history.json   (check a recorded history again)
// Long robustness runs: writes each run's history.json and report.txt to
// DIR/<backend>-<seed>/, prints the report, and exits 1 on any violation (3 when
// the linearizability search reached its bound and so decided nothing).
// --rate caps requests per second over all clients (0: no cap), which keeps a
// long run's history small enough to check (150/s: 90,000 requests in 10 min).
import * as path from 'node:path';
import * as os from 'node:os';
import { parseArgs } from 'node:util';
import * as fs from 'node:fs';
import { parseDuration } from '../../src/config';
import { checkHistory } from './check';
import { parseHistory } from './history';
import { FAULTS, runRobustness, type Fault } from './run';

function duration(s: string): number {
  const ms = parseDuration(s);
  if (ms === null) throw new Error(`not a duration: ${s} (use 90s, 10m, ...)`);
  return ms;
}

/** --check FILE: checks a history.json written by an earlier run again (after a change to the checkers). */
function recheck(file: string): number {
  const report = checkHistory(parseHistory(fs.readFileSync(file, 'utf8')));
  console.log(report.text);
  return !report.ok ? 1 : report.linearizable !== true ? 3 : 0;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      backend: { type: 'string', default: 'memory' },
      duration: { type: 'string', default: '60s' },
      seed: { type: 'string' },
      instances: { type: 'string', default: '3' },
      clients: { type: 'string', default: '6' },
      rate: { type: 'string', default: '150' },
      watchers: { type: 'string', default: '4' },
      faults: { type: 'string', default: FAULTS.join(',') },
      out: { type: 'string', default: path.join(os.tmpdir(), 'etcd-adapter-robustness') },
      runs: { type: 'string', default: '1' },
      'shared-server': { type: 'boolean', default: false },
      check: { type: 'string' },
    },
  });
  if (values.check) return recheck(values.check);
  const faults = values.faults ? (values.faults.split(',').filter(Boolean) as Fault[]) : [];
  for (const f of faults) if (!FAULTS.includes(f)) throw new Error(`unknown fault ${f}: use ${FAULTS.join(', ')}`);
  let failed = 0;
  let undecided = 0;
  for (let run = 0; run < Number(values.runs); run++) {
    const seed = values.seed !== undefined ? Number(values.seed) + run : Math.floor(Math.random() * 2 ** 31);
    const label = /^[a-z]+$/.test(values.backend!) ? values.backend! : 'url';
    const out = path.join(values.out!, `${label}-${seed}`);
    const { report } = await runRobustness({
      backend: values.backend!,
      privateServer: !values['shared-server'],
      durationMs: duration(values.duration!),
      seed,
      instances: Number(values.instances),
      clients: Number(values.clients),
      rate: Number(values.rate),
      watchers: Number(values.watchers),
      faults,
      out,
      log: (l) => console.log(l),
    });
    console.log(report.text);
    console.log(`history and report: ${out}`);
    if (!report.ok) failed++;
    else if (report.linearizable !== true) undecided++;
  }
  return failed ? 1 : undecided ? 3 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(2);
  },
);
