// `etcd-adapter migrate --from URL --backend URL`: moves a running etcd's
// data to us without a gap in revisions. It takes etcd's snapshot through the
// Snapshot RPC and loads it (so revisions, history since etcd's compaction,
// leases, users and roles come over as they are), then follows etcd's watch
// from the next revision and writes each revision here under the same number,
// until it is stopped (SIGINT/SIGTERM) once clients have moved. Clients that
// switch see revisions continue where etcd's were: APISIX resumes its watches
// instead of reloading everything.
//
// While it follows, leases here do not expire on their own (etcd decides:
// its expiries arrive as deletions through the watch); etcd's lease list is
// read every second for leases granted and revoked. When it stops, every
// lease gets the time it had left on etcd. Instances serving the target store
// meanwhile serve reads; a write through them would fork the history, so the
// migration stops with an error if the store's revision moves under it.
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import type { Driver, LeaseRecord } from '../mvcc/driver';
import type { LogEntry } from '../mvcc/kv';
import { packageDefinition } from '../proto';
import type { Logger } from '../logger';
import { HELD_LEASE_EXPIRY, historyBatch, importSnapshot, logEntryOf, SnapshotError } from './import';

const LEASE_SYNC_MS = 1000;

export interface MigrateOptions {
  /** etcd's client URL: http://host:port or https://host:port. */
  from: string;
  /** "name:password" when etcd has auth on (root: only root may take a snapshot). */
  user?: string;
  /** CA certificate (PEM) for an https:// source. */
  caPem?: Buffer;
  /** Resolves when the migration should stop (clients have moved). */
  stop: Promise<void>;
  /** Told each revision written (after the snapshot: every one followed). */
  onRevision?: (revision: number) => void;
}

const pkg = grpc.loadPackageDefinition(packageDefinition) as any;

export async function migrate(driver: Driver, opts: MigrateOptions, logger: Logger): Promise<{ revision: number }> {
  const url = new URL(/^[a-z]+:\/\//i.test(opts.from) ? opts.from : `http://${opts.from}`);
  const creds = url.protocol === 'https:' ? grpc.credentials.createSsl(opts.caPem ?? null) : grpc.credentials.createInsecure();
  const endpoint = `${url.hostname}:${url.port || 2379}`;
  const channelOpts = { 'grpc.max_receive_message_length': -1 };
  const kv = new pkg.etcdserverpb.KV(endpoint, creds, channelOpts);
  const make = (ctor: any) => new ctor(endpoint, creds, { ...channelOpts, channelOverride: kv.getChannel() });
  const maintenance = make(pkg.etcdserverpb.Maintenance);
  const lease = make(pkg.etcdserverpb.Lease);
  const auth = make(pkg.etcdserverpb.Auth);
  const watch = make(pkg.etcdserverpb.Watch);
  const md = new grpc.Metadata();
  const unary = <T>(client: any, method: string, req: object): Promise<T> =>
    new Promise((resolve, reject) => client[method](req, md, (err: Error | null, res: T) => (err ? reject(err) : resolve(res))));
  try {
    if (opts.user) {
      const i = opts.user.indexOf(':');
      const { token } = await unary<{ token: string }>(auth, 'Authenticate', { name: opts.user.slice(0, i), password: opts.user.slice(i + 1) });
      md.set('token', token);
    }
    // 1. the snapshot, loaded as it is
    const dir = await mkdtemp(path.join(tmpdir(), 'etcd-adapter-migrate-'));
    let revision: number;
    try {
      const file = path.join(dir, 'etcd.db');
      await download(maintenance, md, file);
      const loaded = await importSnapshot(driver, file, { holdLeases: true });
      revision = loaded.revision;
      logger.info('loaded etcd\'s snapshot', { from: url.origin, revision, 'compact-revision': loaded.compactRevision, versions: loaded.versions, leases: loaded.leases, users: loaded.users });
      opts.onRevision?.(revision);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }

    // 2. follow: every revision after it, written here under its own number
    let failure: Error | null = null;
    let stopped = false;
    const call = watch.Watch(md) as grpc.ClientDuplexStream<object, any>;
    let queue = Promise.resolve();
    const fail = (err: Error) => {
      failure ??= err;
      call.cancel();
    };
    call.on('data', (res: any) => {
      if (res.canceled || Number(res.compact_revision) > 0) return fail(new SnapshotError(`etcd ended the watch (${res.cancel_reason || `compacted past revision ${revision}`}): start the migration again`));
      const events = res.events as any[];
      if (events.length === 0) return;
      call.pause();
      queue = queue.then(async () => {
        try {
          revision = await applyEvents(driver, revision, events);
          opts.onRevision?.(revision);
        } catch (err) {
          fail(err as Error);
        } finally {
          call.resume();
        }
      });
    });
    const ended = new Promise<void>((resolve) => {
      call.on('error', (err: grpc.ServiceError) => {
        if (!stopped && err.code !== grpc.status.CANCELLED) failure ??= new Error(`the watch on etcd failed: ${err.details}`);
        resolve();
      });
      call.on('end', resolve);
    });
    call.write({ create_request: { key: Buffer.from([0]), range_end: Buffer.from([0]), start_revision: revision + 1 } });

    // leases granted and revoked on etcd (grants bump no revision: the watch does not show them)
    const etcdLeases = async () => {
      const { leases } = await unary<{ leases: { ID: string }[] }>(lease, 'LeaseLeases', {});
      const out = new Map<string, LeaseTimes>();
      for (const l of leases) {
        const t = await unary<{ TTL: string; grantedTTL: string }>(lease, 'LeaseTimeToLive', { ID: l.ID });
        // a lease revoked since the list answers TTL -1: gone
        if (Number(t.TTL) >= 0) out.set(String(l.ID), { granted: Number(t.grantedTTL), left: Math.max(1, Number(t.TTL)) });
      }
      return out;
    };
    const syncLeases = async () => syncLeaseRecords(driver, await etcdLeases(), null);
    const timer = setInterval(() => void syncLeases().catch((err) => logger.warn('could not read etcd\'s leases', { error: (err as Error).message })), LEASE_SYNC_MS);
    await Promise.race([opts.stop, ended]);
    stopped = true;
    clearInterval(timer);
    call.cancel();
    await ended;
    await queue;
    if (failure) throw failure;

    // 3. the switch: leases get the time they had left on etcd (or their TTL when etcd cannot say)
    try {
      await syncLeaseRecords(driver, await etcdLeases(), 'release');
    } catch (err) {
      logger.warn('etcd could not say what its leases have left: each gets its whole TTL', { error: (err as Error).message });
      await syncLeaseRecords(driver, null, 'release');
    }
    return { revision };
  } finally {
    for (const c of [kv, maintenance, lease, auth, watch]) c.close();
  }
}

/** Saves etcd's snapshot stream to `file` (the hash trailer is checked when it is loaded). */
async function download(maintenance: any, md: grpc.Metadata, file: string): Promise<void> {
  const out = createWriteStream(file, { mode: 0o600 });
  const call = maintenance.Snapshot({}, md) as grpc.ClientReadableStream<{ blob: Buffer }>;
  try {
    for await (const res of call) if (!out.write(res.blob)) await once(out, 'drain');
  } catch (err) {
    out.destroy();
    throw new Error(`could not take etcd's snapshot: ${(err as grpc.ServiceError).details ?? (err as Error).message}`);
  }
  out.end();
  await once(out, 'finish');
}

/** Writes the events of one or more whole revisions (a watch response) at their own revisions. */
async function applyEvents(driver: Driver, revision: number, events: any[]): Promise<number> {
  const byRevision = new Map<number, LogEntry[]>();
  for (const e of events) {
    const rev = Number(e.kv.mod_revision);
    let list = byRevision.get(rev);
    if (!list) byRevision.set(rev, (list = []));
    list.push(logEntryOf(e.kv, rev, list.length, e.type === 1 || e.type === 'DELETE'));
  }
  for (const [rev, entries] of byRevision) {
    await driver.write(async (tx) => {
      if (tx.revision !== revision) throw new SnapshotError(`the target store moved to revision ${tx.revision} while following etcd at ${revision}: something else writes to it; the migration stopped`);
      await tx.apply(await historyBatch(tx, entries));
    });
    revision = rev;
  }
  return revision;
}

interface LeaseTimes {
  granted: number;
  left: number;
}

/**
 * Makes the store's leases those of `ttls` (by id). While following they are
 * held (never expire here); 'release' gives each the seconds it has left.
 * `ttls` null: keep the leases there are, each with its whole TTL.
 */
async function syncLeaseRecords(driver: Driver, ttls: Map<string, LeaseTimes> | null, mode: 'release' | null): Promise<void> {
  const mine = await driver.listLeases(); // only this command writes the store meanwhile
  await driver.write(async (tx) => {
    const now = await tx.now();
    const leasePuts: LeaseRecord[] = [];
    const leaseDeletes: string[] = [];
    const want = ttls ?? new Map(mine.map((l) => [l.id, { granted: l.ttl, left: l.ttl }]));
    const have = new Set(mine.map((l) => l.id));
    for (const id of have) if (!want.has(id)) leaseDeletes.push(id);
    for (const [id, t] of want) {
      if (mode === 'release') leasePuts.push({ id, ttl: t.granted, expiresAt: now + t.left * 1000 });
      else if (!have.has(id)) leasePuts.push({ id, ttl: t.granted, expiresAt: HELD_LEASE_EXPIRY });
    }
    if (leasePuts.length || leaseDeletes.length) await tx.apply({ leasePuts, leaseDeletes, docs: [], entries: [], puts: [], deletes: [], revision: tx.revision });
  });
}
