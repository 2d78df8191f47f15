// The read lease: lets the one instance on a database answer linearizable
// reads from its cache with no query at all, as a lone etcd member does.
//
// Without it, every batch of linearizable reads first asks the database for
// its revision (ReadIndex, drivers/sql/read-cache.ts), because a write through any
// other instance must be seen by the next read here. While this instance holds
// the lease, no other instance can commit a write (drivers/sql/lease-fence.ts),
// so the cache, once it has the revision the lease was taken or renewed at,
// is the database's current view, and reads skip the query.
//
// Safety rests on elapsed time, not on clocks agreeing: the lease counts from
// before the renewal was sent, ends `margin` early, and a writer elsewhere
// waits the whole length after it last saw the lease renewed. The holder
// measures that time on both its monotonic and its wall clock and stops at
// whichever ends first: a virtual machine that was paused or suspended wakes
// with a monotonic clock that missed the pause, and a wall clock that is set
// right soon after.
//
// It is only taken by an instance that sees no other live member: with
// several instances, it would make their writes wait. Another instance that
// starts writing revokes it (the holder gives it up at its next renewal), and
// the holder then stays away from it for a while, longer each time. It is
// only held while linearizable reads come: an idle instance gives it up, so
// that it writes nothing to the database while nobody asks anything.
import type { Logger } from '../../src/logger';

/** What the database says when the lease is taken or renewed. */
export interface LeaseGrant {
  /** The revision under the lock: every write committed before the grant. */
  revision: number;
  compactRevision: number;
}

export interface ReadLeaseStore {
  leaseRenew(holder: string, ms: number, take: boolean): Promise<LeaseGrant | null>;
  leaseRelease(holder: string): Promise<void>;
}

export interface ReadLeaseOptions {
  /** The lease's length; renewed four times per length. */
  ms: number;
  /** Whether any other instance is alive (a member heartbeat that is not ours). */
  othersAlive(): Promise<boolean>;
  /** Whether the lease is worth holding (the cache is on). */
  wanted(): boolean;
  logger?: Logger;
}

const FIRST_BACKOFF_MS = 10_000;
const MAX_BACKOFF_MS = 10 * 60_000;

export class ReadLease {
  /** Our id in the lease row: one per process, never shared (member ids can be). */
  readonly holder = (BigInt(Math.floor(Math.random() * 2 ** 31)) * 2n ** 32n + BigInt(Math.floor(Math.random() * 2 ** 32))).toString();
  /** Reads may skip the ReadIndex until this time (performance.now()); 0: not held. */
  private until = 0;
  /** The same end by the wall clock, which a suspended machine catches up on (the monotonic clock does not). */
  private untilWall = 0;
  /** The revision the lease was last taken or renewed at (reads wait for the cache to reach it). */
  private granted: LeaseGrant = { revision: 0, compactRevision: -1 };
  private held = false;
  /** Bumped by suspend(); a renewal sent after the last bump lifts it. */
  private suspensions = 0;
  private vouchedFor = 0;
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private backoffMs = FIRST_BACKOFF_MS;
  private notBefore = 0;
  private readonly margin: number;
  /** When a read last asked for the lease (performance.now()). */
  private lastAsked = -Infinity;

  constructor(
    private readonly store: ReadLeaseStore,
    private readonly opts: ReadLeaseOptions,
  ) {
    // Clock rates differ by parts per million; the margin also covers timer lateness here.
    this.margin = Math.max(10, opts.ms / 10);
  }

  /**
   * The grant a read arriving now may rely on instead of a ReadIndex query,
   * or null; either way, reads want the lease (it is taken within a quarter
   * of its length). The caller must also be sure that no write of its own is
   * between commit and cache (another instance could already see it).
   */
  forRead(): LeaseGrant | null {
    this.lastAsked = performance.now();
    return this.current();
  }

  /** The grant, if the lease is held and may be relied on now. */
  current(): LeaseGrant | null {
    return this.held && this.vouchedFor === this.suspensions && performance.now() < this.until && Date.now() < this.untilWall ? this.granted : null;
  }

  /** After a write of ours whose outcome is unknown: rely on the lease again only from a renewal sent later. */
  suspend(): void {
    this.suspensions++;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.tick(), Math.max(5, this.opts.ms / 4));
    this.timer.unref();
    void this.tick();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.ticking;
    if (this.held) await this.drop().catch(() => undefined);
  }

  private tick(): Promise<void> {
    this.ticking ??= this.renew().finally(() => (this.ticking = null));
    return this.ticking;
  }

  private async renew(): Promise<void> {
    try {
      const idle = performance.now() - this.lastAsked > 2 * this.opts.ms;
      if (idle || !this.opts.wanted() || (await this.opts.othersAlive())) {
        if (this.held) await this.drop();
        return;
      }
      if (!this.held && performance.now() < this.notBefore) return;
      const sent = performance.now();
      const sentWall = Date.now();
      const suspensions = this.suspensions;
      const grant = await this.store.leaseRenew(this.holder, this.opts.ms, !this.held);
      if (!this.timer) {
        // Stopped meanwhile: give back what this renewal may have taken.
        if (grant) await this.store.leaseRelease(this.holder);
        return;
      }
      if (grant) {
        if (!this.held) this.opts.logger?.debug('read lease taken: linearizable reads are answered without a query while no other instance is alive');
        this.held = true;
        this.granted = grant;
        this.vouchedFor = suspensions;
        this.until = sent + this.opts.ms - this.margin;
        this.untilWall = sentWall + this.opts.ms - this.margin;
      } else if (this.held) {
        // Revoked by another instance's write (the store released it): keep away for a while.
        this.held = false;
        this.until = 0;
        this.notBefore = performance.now() + this.backoffMs;
        this.opts.logger?.debug('read lease given up: another instance writes', { 'retry-after': `${this.backoffMs / 1000}s` });
        this.backoffMs = Math.min(MAX_BACKOFF_MS, this.backoffMs * 2);
      }
    } catch {
      // The database is unreachable: the lease runs out by itself.
    }
  }

  /** Stops serving from the lease, then gives it up. */
  private async drop(): Promise<void> {
    this.held = false;
    this.until = 0;
    await this.store.leaseRelease(this.holder);
  }
}
