// One robustness run: a store and one to three instances, random traffic and
// watches for a while with faults injected, then faults healed, a final read
// on every instance, every watch brought up to date, and every checker run on
// the recorded history. Histories and a readable report go to a folder.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { checkHistory, type Report } from './check';
import { GrpcConn, HttpConn, type Conn } from './conn';
import { Instance, openDatabase, type Database } from './cluster';
import { historyJson, type History } from './history';
import { Rng } from './rng';
import { clientLoop, record, Shared, Watchers, type WatchTarget } from './traffic';

export const FAULTS = ['kill', 'freeze', 'lease-holder', 'db-restart', 'slow-watcher', 'compact-behind', 'disconnect'] as const;
export type Fault = (typeof FAULTS)[number];

export interface RunOptions {
  /** memory, sqlite, mysql, postgres (a fresh database), or the backend URL of an empty store. */
  backend: string;
  /** For mysql and postgres: a private server of the run's own (needed by db-restart); else a database on the machine's server. */
  privateServer?: boolean;
  instances?: number;
  durationMs: number;
  seed: number;
  clients?: number;
  /** Requests per second over all clients (0: as fast as answered). Long runs keep histories checkable this way. */
  rate?: number;
  watchers?: number;
  /** Faults to choose from (those the backend allows); default all. */
  faults?: readonly Fault[];
  /** How many faults over the run (each allowed kind once before any repeats; all are injected, even past the duration). */
  faultCount?: number;
  /** A folder for history.json and report.txt. */
  out?: string;
  log?: (line: string) => void;
}

export interface RunResult {
  history: History;
  report: Report;
}

const REQUEST_TIMEOUT_MS = 3000;
const READ_LEASE_MS = 2000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runRobustness(o: RunOptions): Promise<RunResult> {
  const log = o.log ?? (() => undefined);
  const rng = new Rng(o.seed);
  const kinds = o.faults ?? FAULTS;
  const wantsDbRestart = kinds.includes('db-restart');
  const db: Database = await openDatabase(o.backend, o.privateServer ?? wantsDbRestart);
  const count = db.shared ? Math.max(1, Math.min(3, o.instances ?? 3)) : 1;
  const allowed = kinds.filter((k) => (k !== 'kill' || db.durable) && (k !== 'db-restart' || db.restart) && (k !== 'lease-holder' || (db.shared && count > 1)));
  const t0 = performance.now();
  const now = () => performance.now() - t0;
  const faults: History['faults'] = [];
  const instances: Instance[] = [];
  const conns: Conn[] = [];
  const grpcs: GrpcConn[] = [];
  let watchers: Watchers | null = null;
  let shared: Shared | null = null;
  try {
    const args = ['--backend', db.url, '--auto-compaction-retention', '0', '--experimental-watch-progress-notify-interval', '1s', '--read-lease', `${READ_LEASE_MS}ms`, '--poll-interval', '100ms', '--log-level', 'debug'];
    for (let i = 0; i < count; i++) instances.push(await Instance.create(i, args));
    log(`robustness: seed ${o.seed}, ${o.backend} (${db.url.replace(/:[^:@/]*@/, ':***@')}), ${count} instance(s), faults: ${allowed.join(', ') || 'none'}`);

    shared = new Shared(now);
    const s = shared;
    const targets: WatchTarget[] = instances.map((inst) => {
      const g = new GrpcConn(inst.index, inst.endpoint, REQUEST_TIMEOUT_MS);
      grpcs.push(g);
      return { index: inst.index, url: inst.url, watch: g.watch, running: () => inst.running && !inst.paused };
    });
    watchers = new Watchers(s, targets, new Rng(o.seed ^ 0x5bd1e995));
    watchers.start(o.watchers ?? 4);

    const clients = o.clients ?? 6;
    for (let c = 0; c < clients; c++) {
      const inst = instances[c % count];
      conns.push(c % 3 === 2 ? new HttpConn(inst.index, inst.url, REQUEST_TIMEOUT_MS) : new GrpcConn(inst.index, inst.endpoint, REQUEST_TIMEOUT_MS));
    }
    const interval = o.rate ? (1000 * clients) / o.rate : 0;
    const loops = conns.map((conn, c) => clientLoop(s, conn, c, new Rng(o.seed * 31 + c + 1), c === 0, interval));

    // faults, spread over the run; each allowed kind once before any repeats
    const faultCount = allowed.length ? (o.faultCount ?? Math.max(1, Math.round(o.durationMs / 6000))) : 0;
    const plan = [...allowed].sort(() => rng.next() - 0.5);
    const gap = o.durationMs / (faultCount + 1);
    for (let f = 0; f < faultCount; f++) {
      await sleep(gap * (0.5 + rng.next()));
      const kind = plan[f % plan.length];
      const what = await inject(kind, { rng, instances, db, watchers, shared: s, conns: grpcs });
      faults.push({ time: now(), what });
      log(`  fault at ${(now() / 1000).toFixed(1)} s: ${what}`);
    }
    while (now() < o.durationMs) await sleep(Math.min(200, o.durationMs - now()));

    // stop traffic, heal, and read the final state on every instance
    log(`  traffic stops at ${(now() / 1000).toFixed(1)} s`);
    s.stopped = true;
    await Promise.all(loops);
    await watchers.stopLoops();
    for (const inst of instances) inst.thaw();
    for (const inst of instances) if (!inst.running) await inst.start();
    let finalRevision = 0;
    for (const [i, g] of grpcs.entries()) {
      const deadline = now() + 60000;
      for (;;) {
        const op = await record(s, g, 1000 + i, { type: 'range', key: '\0', end: '\0' }, { final: true });
        const rev = (op.output as { revision?: number } | undefined)?.revision;
        if (typeof rev === 'number') {
          finalRevision = Math.max(finalRevision, rev);
          break;
        }
        if (now() > deadline) throw new Error(`instance ${i} never answered a read after the faults healed: ${op.unknown ?? JSON.stringify(op.output)}\n${instances[i].log()}`);
        await sleep(200);
      }
    }
    // every open watch up to date: a progress notification at the final revision (gRPC asks for one; HTTP ones get them every second)
    const open = [...watchers.open];
    const caughtUp = (w: (typeof open)[number]) =>
      w.record.ending !== 'open' ||
      (w.record.transport === 'http' && !w.record.create.progressNotify) ||
      w.record.responses.some((r) => r.canceled || (!r.created && !r.compactRevision && !r.events.length && r.revision >= finalRevision));
    const deadline = now() + 20000;
    while (now() < deadline && !open.every(caughtUp)) {
      for (const w of open) if (!caughtUp(w)) w.requestProgress();
      await sleep(300);
    }
    for (const w of open) w.close('end of run');
    log(`  final revision ${finalRevision}; watches caught up at ${(now() / 1000).toFixed(1)} s${open.every(caughtUp) ? '' : ` (${open.filter((w) => !caughtUp(w)).length} did not)`}`);

    const history: History = { seed: o.seed, backend: o.backend, instances: count, operations: s.operations, watches: watchers.records, faults, finalRevision };
    // the history first: a check that fails or is stopped leaves it to look at and check again
    if (o.out) {
      fs.mkdirSync(o.out, { recursive: true });
      fs.writeFileSync(path.join(o.out, 'history.json'), historyJson(history));
    }
    const report = checkHistory(history);
    log(`  checked at ${(now() / 1000).toFixed(1)} s`);
    if (o.out) fs.writeFileSync(path.join(o.out, 'report.txt'), report.text + '\n');
    return { history, report };
  } finally {
    if (shared) shared.stopped = true;
    for (const w of watchers?.open ?? []) w.close('end of run');
    for (const c of conns) c.close();
    for (const g of grpcs) g.close();
    for (const inst of instances) await inst.stop().catch(() => undefined);
    await db.destroy().catch(() => undefined);
  }
}

interface FaultContext {
  rng: Rng;
  instances: Instance[];
  db: Database;
  watchers: Watchers;
  shared: Shared;
  conns: GrpcConn[];
}

/** Injects one fault and heals it; returns what it did. */
async function inject(kind: Fault, c: FaultContext): Promise<string> {
  const { rng, instances } = c;
  const inst = rng.pick(instances);
  switch (kind) {
    case 'kill': {
      await inst.kill();
      await sleep(300 + rng.int(700));
      await inst.start();
      return `kill -9 of instance ${inst.index}, restarted`;
    }
    case 'freeze': {
      inst.freeze();
      await sleep(READ_LEASE_MS + 1000);
      inst.thaw();
      return `SIGSTOP of instance ${inst.index} for ${READ_LEASE_MS + 1000} ms (longer than the read lease), then SIGCONT`;
    }
    case 'lease-holder': {
      // The one instance left on the database takes the read lease; frozen past it, the others come
      // back and write; thawed, its clients' reads must show those writes (no stale read).
      const [holder, ...others] = instances;
      for (const o of others) await o.stop();
      const before = holder.leasesTaken;
      const deadline = performance.now() + 15000;
      while (holder.leasesTaken === before && performance.now() < deadline) await sleep(100);
      const took = holder.leasesTaken > before;
      holder.freeze();
      const frozenAt = performance.now();
      for (const o of others) await o.start();
      await sleep(Math.max(0, READ_LEASE_MS + 1000 - (performance.now() - frozenAt)));
      holder.thaw();
      return `instance ${holder.index} alone (${took ? 'took the read lease' : 'did not take the read lease in 15 s'}), frozen past the lease while the others came back and wrote, then thawed`;
    }
    case 'db-restart': {
      const down = 1000 + rng.int(1000);
      await c.db.restart!(down);
      return `database killed, restarted after ${down} ms`;
    }
    case 'slow-watcher': {
      const w = c.watchers.pickGrpc();
      if (!w) return 'slow watcher: no gRPC watch open';
      w.pause();
      await sleep(2000 + rng.int(2000));
      w.resume();
      return `watch ${w.record.id} stopped reading for a while`;
    }
    case 'compact-behind': {
      const w = c.watchers.pickGrpc();
      w?.pause();
      await sleep(1000);
      const revision = c.shared.lastRevision;
      const res = revision > c.shared.compactedTo ? await record(c.shared, c.conns[inst.index], 2000, { type: 'compact', revision }) : null;
      w?.resume();
      return `compaction to ${revision} (${res?.output ? JSON.stringify(res.output) : res?.unknown ?? 'skipped'}) while watch ${w?.record.id ?? '-'} was not reading`;
    }
    case 'disconnect': {
      const w = c.watchers.pickAny();
      if (!w) return 'disconnect: no watch open';
      w.close('client disconnected mid-stream');
      return `watch ${w.record.id} (${w.record.transport}) disconnected mid-stream`;
    }
  }
}
