// Leases, as etcd's lessor, over any driver. A lease is a row: granted TTL
// and expiry on the store's clock (the database's for SQL, so instances on
// different hosts agree and a restart of every instance does not reset what
// is left). Keys name their lease in their own kv (the `lease` field).
//
// Every lease change is a write through the store's batches, under the same
// lock as key writes: a revoke (or an expiry) deletes every attached key in
// one revision; two instances expiring the same lease race on that lock and
// the second finds it gone, so each expiry happens once.
import { randomBytes } from 'node:crypto';
import { ErrLeaseExist, ErrLeaseNotFound, ErrLeaseTTLTooLarge } from '../errors';
import type { LeaseRecord } from './driver';
import { big, leaseId, type Header, type Int64 } from './requests';
import type { MvccStore } from './store';

/** etcd's minimum TTL with its default election timeout (1 s): 1.5 x, rounded up. */
export const MIN_TTL = 2;
export const MAX_TTL = 9_000_000_000;
/** How often expired leases are looked for (etcd: 500 ms). */
const EXPIRY_CHECK_MS = 500;
const EXPIRIES_PER_CHECK = 256;

export interface GrantResult {
  header: Header;
  ID: string;
  TTL: number;
}

function randomLeaseId(): string {
  return (randomBytes(8).readBigUInt64BE() & 0x7fff_ffff_ffff_ffffn || 1n).toString();
}

export class Lessor {
  private timer: NodeJS.Timeout | null = null;
  private expiring = false;

  constructor(private readonly store: MvccStore) {}

  async grant(ttl: Int64, id: Int64): Promise<GrantResult> {
    let granted = Number(big(ttl));
    if (granted > MAX_TTL) throw ErrLeaseTTLTooLarge;
    if (granted < MIN_TTL) granted = MIN_TTL;
    const requested = leaseId(id);
    return this.store.write({
      run: async (view) => {
        let chosen = requested;
        if (chosen === '0') {
          do chosen = randomLeaseId();
          while (await view.leaseExists(chosen));
        } else if (await view.leaseExists(chosen)) {
          throw ErrLeaseExist;
        }
        view.putLease({ id: chosen, ttl: granted, expiresAt: (await view.now()) + granted * 1000 });
        return { header: { revision: view.revision }, ID: chosen, TTL: granted };
      },
    });
  }

  /** Deletes the lease and every key attached to it, in one revision. */
  async revoke(id: Int64): Promise<{ header: Header }> {
    const lease = leaseId(id);
    return this.store.write({
      run: async (view) => {
        if (!(await view.leaseExists(lease))) throw ErrLeaseNotFound;
        for (const kv of await view.keysWithLease(lease)) view.delete(kv);
        view.deleteLease(lease);
        return { header: { revision: view.revision } };
      },
    });
  }

  /** Extends the lease by its TTL from now; TTL 0 when there is no such live lease (as etcd answers). */
  async keepAlive(id: Int64): Promise<{ header: Header; ID: string; TTL: number }> {
    const lease = leaseId(id);
    return this.store.write({
      run: async (view) => {
        const l = await view.lease(lease);
        const now = await view.now();
        if (!l || l.expiresAt <= now) return { header: { revision: view.revision }, ID: lease, TTL: 0 };
        view.putLease({ ...l, expiresAt: now + l.ttl * 1000 });
        return { header: { revision: view.revision }, ID: lease, TTL: l.ttl };
      },
    });
  }

  /** Remaining seconds (truncated, as etcd), -1 for an unknown lease; the attached keys when asked. */
  async timeToLive(id: Int64, withKeys: boolean): Promise<{ header: Header; ID: string; TTL: number; grantedTTL: number; keys: Buffer[] }> {
    const lease = leaseId(id);
    const revision = this.store.knownRevision;
    const [l, now] = await Promise.all([this.store.driver.getLease(lease), this.store.driver.now()]);
    if (!l) return { header: { revision }, ID: lease, TTL: -1, grantedTTL: 0, keys: [] };
    const keys = withKeys ? await this.store.driver.keysWithLease(lease) : [];
    return { header: { revision }, ID: lease, TTL: Math.max(0, Math.trunc((l.expiresAt - now) / 1000)), grantedTTL: l.ttl, keys };
  }

  /** The keys attached to a lease now (none for an unknown lease). */
  keysOf(id: Int64): Promise<Buffer[]> {
    return this.store.driver.keysWithLease(leaseId(id));
  }

  async leases(): Promise<{ header: Header; leases: { ID: string }[] }> {
    const revision = this.store.knownRevision;
    const all = await this.store.driver.listLeases();
    all.sort((a, b) => a.expiresAt - b.expiresAt || (big(a.id) < big(b.id) ? -1 : 1));
    return { header: { revision }, leases: all.map((l) => ({ ID: l.id })) };
  }

  /** Looks for expired leases every half second and revokes them. */
  start(onError: (err: unknown) => void): void {
    this.timer = setInterval(() => {
      if (this.expiring) return;
      this.expiring = true;
      this.expireDue()
        .catch(onError)
        .finally(() => (this.expiring = false));
    }, EXPIRY_CHECK_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** One expiry pass; returns how many leases it revoked. */
  async expireDue(): Promise<number> {
    const [all, now] = await Promise.all([this.store.driver.listLeases(), this.store.driver.now()]);
    const due = all.filter((l) => l.expiresAt <= now).slice(0, EXPIRIES_PER_CHECK);
    const revoked = await Promise.all(due.map((l) => this.revokeIfExpired(l)));
    return revoked.filter(Boolean).length;
  }

  /** Revoke, unless someone kept it alive or revoked it meanwhile (another instance). */
  private revokeIfExpired(seen: LeaseRecord): Promise<boolean> {
    return this.store.write({
      run: async (view) => {
        const l = await view.lease(seen.id);
        if (!l || l.expiresAt > (await view.now())) return false;
        for (const kv of await view.keysWithLease(l.id)) view.delete(kv);
        view.deleteLease(l.id);
        return true;
      },
    });
  }
}
