// Random traffic for a robustness run: clients that each send one request at a
// time (a mix of reads, writes, txns, leases and compactions over a small key
// set, so that operations collide) and record it, and watchers that open,
// pause, cancel and resume watches of every kind.
import type { Compare, Operation, Request, TxnOp, WatchCreate, WatchRecord } from './history';
import { Unknown, type Conn } from './conn';
import type { Rng } from './rng';
import { openGrpcWatch, openHttpWatch, type OpenWatch } from './watchers';
import type * as grpc from '@grpc/grpc-js';

const KEYS = 10;
const key = (i: number) => `key${i}`;

/** What the clients know together: enough to pick plausible revisions, leases and compactions. */
export class Shared {
  lastRevision = 1;
  compactedTo = 0;
  leases: string[] = [];
  stopped = false;
  private nextId = 0;
  readonly operations: Operation[] = [];
  constructor(readonly now: () => number) {}
  id(): number {
    return this.nextId++;
  }
}

function distinctKeys(rng: Rng, n: number): string[] {
  const picked = new Set<number>();
  while (picked.size < n) picked.add(rng.int(KEYS));
  return [...picked].map(key);
}

export function nextRequest(rng: Rng, client: number, seq: number, s: Shared, compacts: boolean): Request {
  const value = `c${client}.${seq}`;
  const k = key(rng.int(KEYS));
  const kind = rng.weighted({ get: 20, getSerializable: 5, getRange: 8, getAt: 5, put: 25, putLease: 5, del: 5, delRange: 1, cas: 10, txn: 5, grant: 2, revoke: 2, compact: compacts ? 1 : 0 });
  switch (kind) {
    case 'get':
      return { type: 'range', key: k };
    case 'getSerializable':
      return { type: 'range', key: k, serializable: true };
    case 'getRange':
      return { type: 'range', key: 'key', end: 'kez', ...(rng.chance(0.3) ? { limit: 1 + rng.int(4) } : {}) };
    case 'getAt': {
      // mostly above the compaction; now and then below it (which must answer "compacted")
      const low = rng.chance(0.1) ? 1 : s.compactedTo + 1;
      const revision = low + rng.int(Math.max(1, s.lastRevision - low + 1));
      return { type: 'range', key: 'key', end: 'kez', revision };
    }
    case 'put':
      return { type: 'put', key: k, value };
    case 'putLease':
      return s.leases.length ? { type: 'put', key: k, value, lease: rng.pick(s.leases.slice(-5)) } : { type: 'put', key: k, value };
    case 'del':
      return { type: 'delete', key: k };
    case 'delRange': {
      const [a, b] = distinctKeys(rng, 2).sort();
      return { type: 'delete', key: a, end: b };
    }
    case 'cas': {
      const compare: Compare[] = [{ key: k, target: rng.pick(['MOD', 'VERSION'] as const), result: rng.pick(['EQUAL', 'GREATER', 'LESS'] as const), value: rng.int(s.lastRevision + 1) }];
      return { type: 'txn', compare, success: [{ put: { key: k, value } }], failure: [{ range: { key: k } }] };
    }
    case 'txn': {
      // distinct keys for the writes of one branch, as etcd requires
      const [a, b, c, d] = distinctKeys(rng, 4);
      const success: TxnOp[] = [{ put: { key: a, value: `${value}a` } }, { put: { key: b, value: `${value}b` } }, { del: { key: c } }, { range: { key: 'key', end: 'kez' } }];
      const failure: TxnOp[] = [{ range: { key: a } }, { put: { key: d, value: `${value}d` } }];
      return { type: 'txn', compare: [{ key: c, target: 'VALUE', result: 'NOT_EQUAL', value: 'none' }], success, failure };
    }
    case 'grant':
      return { type: 'leaseGrant', ttl: 2 + rng.int(3) };
    case 'revoke':
      return s.leases.length ? { type: 'leaseRevoke', id: rng.pick(s.leases.slice(-5)) } : { type: 'range', key: k };
    case 'compact': {
      const revision = s.lastRevision - 5 - rng.int(30);
      return revision > s.compactedTo ? { type: 'compact', revision } : { type: 'range', key: k };
    }
  }
}

/** Sends one request and records it. */
export async function record(s: Shared, conn: Conn, client: number, req: Request, extra: Partial<Operation> = {}): Promise<Operation> {
  const op: Operation = { id: s.id(), client, instance: conn.instance, transport: conn.transport, call: s.now(), ret: Infinity, input: req, ...extra };
  try {
    op.output = await conn.send(req);
    op.ret = s.now();
  } catch (err) {
    if (!(err instanceof Unknown)) throw err;
    op.unknown = err.message;
  }
  s.operations.push(op);
  const o = op.output as any;
  if (o && !o.error) {
    if (o.revision > s.lastRevision) s.lastRevision = o.revision;
    if (req.type === 'leaseGrant') s.leases.push(o.id);
    if (req.type === 'compact') s.compactedTo = Math.max(s.compactedTo, req.revision);
  }
  return op;
}

/** One client's requests, one at a time, at most one per `intervalMs` (0: as fast as they are answered). */
export async function clientLoop(s: Shared, conn: Conn, client: number, rng: Rng, compacts: boolean, intervalMs = 0): Promise<void> {
  let seq = 0;
  while (!s.stopped) {
    const started = s.now();
    const op = await record(s, conn, client, nextRequest(rng, client, seq++, s, compacts));
    const left = intervalMs - (s.now() - started);
    if (left > 0) await new Promise((r) => setTimeout(r, left * (0.5 + rng.next())));
    // the instance or its database is away
    if (!op.output || ('error' in op.output && op.output.error.code === 14)) await new Promise((r) => setTimeout(r, 100));
  }
}

export interface WatchTarget {
  index: number;
  url: string;
  watch: grpc.Client;
  running(): boolean;
}

/**
 * Watches over the run. Reference watches (the whole keyspace with prev_kv, one
 * per instance, over gRPC) stay open and resume after their stream breaks;
 * random watches open with random options, stay a while (sometimes not
 * reading), and are canceled and resumed from where they were, or replaced.
 */
export class Watchers {
  readonly open = new Set<OpenWatch>();
  readonly records: WatchRecord[] = [];
  private loops: Promise<void>[] = [];
  constructor(private readonly s: Shared, private readonly targets: WatchTarget[], private readonly rng: Rng) {}

  private openOn(t: WatchTarget, create: WatchCreate, transport: 'grpc' | 'http', reference = false): OpenWatch {
    const w = transport === 'grpc' ? openGrpcWatch(t.watch, t.index, create, this.s.now, reference) : openHttpWatch(t.url, t.index, create, this.s.now);
    this.records.push(w.record);
    this.open.add(w);
    void w.ended.then(() => this.open.delete(w));
    return w;
  }

  private randomCreate(): WatchCreate {
    const r = this.rng;
    const range = r.pick([{ key: key(r.int(KEYS)) }, { key: 'key', end: 'kez' }, { key: '\0', end: '\0' }, { key: 'key3', end: 'key7' }]);
    const from = r.weighted({ now: 4, recent: 4, compacted: 1 });
    const startRevision = from === 'now' ? 0 : from === 'recent' ? Math.max(this.s.compactedTo, this.s.lastRevision - r.int(200)) : Math.max(1, this.s.compactedTo - 1 - r.int(5));
    const filters: WatchCreate['filters'] = r.chance(0.15) ? [r.pick(['NOPUT', 'NODELETE'] as const)] : [];
    return { ...range, startRevision, prevKv: r.chance(0.5), filters, progressNotify: r.chance(0.3), fragment: false };
  }

  private async sleep(ms: number): Promise<void> {
    const until = this.s.now() + ms;
    while (!this.s.stopped && this.s.now() < until) await new Promise((r) => setTimeout(r, Math.min(100, until - this.s.now())));
  }

  private async referenceLoop(t: WatchTarget): Promise<void> {
    let from = 2;
    while (!this.s.stopped) {
      if (!t.running()) {
        await this.sleep(100);
        continue;
      }
      const w = this.openOn(t, { key: '\0', end: '\0', startRevision: from, prevKv: true, filters: [], progressNotify: true, fragment: false }, 'grpc', true);
      await Promise.race([w.ended, this.until(() => this.s.stopped)]);
      if (this.s.stopped) return;
      from = w.lastRevision() + 1;
      await this.sleep(100);
    }
  }

  private async until(cond: () => boolean): Promise<void> {
    while (!cond()) await new Promise((r) => setTimeout(r, 50));
  }

  private async randomLoop(): Promise<void> {
    const r = this.rng;
    type Resume = { create: WatchCreate; from: number; target: WatchTarget; transport: 'grpc' | 'http' };
    let resume: Resume | null = null;
    while (!this.s.stopped) {
      const was = resume as Resume | null;
      const target = was?.target ?? r.pick(this.targets);
      if (!target.running()) {
        resume = null;
        await this.sleep(100);
        continue;
      }
      const transport = was?.transport ?? (r.chance(0.3) ? 'http' : 'grpc');
      const create: WatchCreate = was ? { ...was.create, startRevision: was.from } : this.randomCreate();
      // HTTP watches get progress notifications so that the end of the run can tell when they caught up
      if (transport === 'http') create.progressNotify = true;
      const w = this.openOn(target, create, transport);
      const stayMs = 300 + r.int(2500);
      if (transport === 'grpc' && r.chance(0.3)) {
        await this.sleep(r.int(stayMs));
        w.requestProgress();
      }
      await Promise.race([w.ended, this.sleep(stayMs)]);
      if (this.s.stopped) return;
      const broken = w.record.ending !== 'open';
      if (!broken) w.close();
      const canceled = w.record.responses.some((x) => x.canceled);
      // resume where it was (resumable), or start another
      resume = !canceled && r.chance(0.5) ? { create, from: w.lastRevision() + 1, target, transport } : null;
    }
  }

  start(randomWatchers: number): void {
    this.loops = [...this.targets.map((t) => this.referenceLoop(t)), ...Array.from({ length: randomWatchers }, () => this.randomLoop())];
  }

  /** An open gRPC watch that is not a reference, if any. */
  pickGrpc(): OpenWatch | undefined {
    const xs = [...this.open].filter((w) => w.record.transport === 'grpc' && !w.record.reference);
    return xs.length ? this.rng.pick(xs) : undefined;
  }

  pickAny(): OpenWatch | undefined {
    const xs = [...this.open].filter((w) => !w.record.reference);
    return xs.length ? this.rng.pick(xs) : undefined;
  }

  async stopLoops(): Promise<void> {
    await Promise.all(this.loops);
  }
}
