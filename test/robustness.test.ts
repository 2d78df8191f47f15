// The short robustness run of every `npm test`: random traffic and watches
// with faults on memory, SQLite and MariaDB (three instances on a private
// server that a fault restarts), every history checked for linearizability
// and the watch guarantees. A fixed seed per backend, and one random seed,
// printed on failure: replay it with ROBUSTNESS_SEED=N (or `npm run
// robustness -- --backend B --seed N`). The recorded history of a failed run
// stays in the folder the failure names.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runRobustness, type Fault, type RunResult } from './robustness/run';
import { checkHistory } from './robustness/check';
import { backendsUnderTest } from './helpers/backends';
import { mariadbInstalled } from './helpers/mariadb';
import type { History } from './robustness/history';

async function run(backend: string, seed: number, durationMs: number, faults: Fault[], extra: { instances?: number } = {}): Promise<RunResult> {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), `etcd-adapter-robustness-${backend}-${seed}-`));
  const result = await runRobustness({ backend, seed, durationMs, faults, faultCount: faults.length, out, clients: 6, watchers: 4, ...extra });
  assert.ok(result.report.ok, `robustness run failed (replay: ROBUSTNESS_SEED=${seed}, backend ${backend}; history in ${out}):\n${result.report.text}`);
  assert.equal(result.report.linearizable, true, `the checker did not decide (replay: ROBUSTNESS_SEED=${seed}, backend ${backend}; history in ${out}):\n${result.report.text}`);
  assert.equal(result.history.faults.length, faults.length, 'every planned fault was injected');
  fs.rmSync(out, { recursive: true, force: true });
  return result;
}

const kinds = backendsUnderTest();
let recorded: History | null = null;

describe('robustness (short run)', () => {
  it('memory: watch faults (compaction behind a watcher that stopped reading, disconnect) and a frozen instance', { skip: !kinds.includes('memory') && 'memory not under test' }, async () => {
    const r = await run('memory', 101, 5000, ['compact-behind', 'disconnect', 'freeze']);
    recorded = r.history;
  });

  it('SQLite: kill -9 and restart, a frozen instance', { skip: !kinds.includes('sqlite') && 'sqlite not under test' }, async () => {
    await run('sqlite', 202, 5000, ['kill', 'freeze', 'slow-watcher']);
  });

  it('MariaDB: three instances, kill -9, the database restarted, a frozen instance', { skip: (!kinds.includes('mysql') && 'mysql not under test') || (!mariadbInstalled() && 'mariadbd not installed') }, async () => {
    await run('mysql', 303, 7000, ['kill', 'db-restart', 'freeze'], { instances: 3 });
  });

  it('a random seed (printed on failure)', { skip: !kinds.includes('memory') && !kinds.includes('sqlite') && 'needs memory or sqlite' }, async () => {
    const seed = process.env.ROBUSTNESS_SEED ? Number(process.env.ROBUSTNESS_SEED) : Math.floor(Math.random() * 2 ** 31);
    const backend = kinds.includes('sqlite') && (seed % 2 === 1 || !kinds.includes('memory')) ? 'sqlite' : 'memory';
    await run(backend, seed, 4000, backend === 'sqlite' ? ['kill', 'slow-watcher', 'disconnect'] : ['freeze', 'compact-behind', 'disconnect']);
  });

  it("the checkers catch bugs put into this run's recorded history", { skip: !kinds.includes('memory') && 'memory not under test' }, () => {
    const h = recorded!;
    assert.ok(h, 'the memory run recorded a history');
    const clone = (): History => structuredClone(h);
    const checks = (x: History) => checkHistory(x, { shrink: false }).violations.map((v) => v.check);

    // a lost watch event: drop one event (not at a compaction's revision) from a full-keyspace watch
    const lost = clone();
    const compactRevs = new Set(h.operations.filter((o) => o.input.type === 'compact').map((o) => (o.input as { revision: number }).revision));
    const ref = lost.watches.find((w) => w.reference && w.responses.some((r) => r.events.length > 1))!;
    const resp = ref.responses.find((r) => r.events.length > 0 && !compactRevs.has(r.events[0].kv.mod) && r.events.every((e) => e.type === 'PUT'))!;
    resp.events.splice(0, 1);
    assert.ok(checks(lost).length > 0, 'a dropped event is caught');

    // a stale read: a linearizable single-key read answered with an older value of its key
    const stale = clone();
    const read = stale.operations.find((o) => o.input.type === 'range' && !o.input.revision && !o.input.serializable && !o.input.end && (o.output as any)?.kvs?.[0]?.version > 1)!;
    const kv = (read.output as any).kvs[0];
    kv.value = `${kv.value}-old`;
    assert.deepEqual(checks(stale).slice(0, 1), ['linearizable'], 'a stale read is caught');

    // a revision reused: a put answered with the revision of the write before it
    const reused = clone();
    const puts = reused.operations.filter((o) => o.input.type === 'put' && (o.output as any)?.revision > 3);
    (puts[puts.length - 1].output as any).revision -= 1;
    assert.deepEqual(checks(reused).slice(0, 1), ['linearizable'], 'a reused revision is caught');
  });
});
