// Cross-instance wakeups where the database announces nothing (MySQL,
// MariaDB, TiDB have no NOTIFY; PostgreSQL's NOTIFY does not get through
// PgBouncer in transaction mode, which the driver notices). After a commit, an instance tells every
// other live member of the store (their advertised client URLs, from the
// heartbeat rows) to read the log now, with a small HTTP request on a
// kept-alive connection; the member's log tail wakes at once instead of at
// its next poll. At most one request is in flight per member: commits made
// meanwhile cost one more request after it, however many they are. A member
// that cannot be reached (an address only it can use, TLS it will not take) is
// left alone for a while, doubling up to a minute: polling covers it, as it
// covers a lost wakeup. A wakeup carries nothing: anyone may send one, and the
// most it does is make the tail read the log once more (reads coalesce).
import * as http from 'node:http';
import * as https from 'node:https';
import { ANNOUNCEMENT_HEARD_WITHIN_MS, type Driver } from '../mvcc/driver';
import type { Logger } from '../logger';

export const WAKE_PATH = '/etcd-adapter/v1/wake';
const REQUEST_TIMEOUT_MS = 2000;
const MAX_BACKOFF_MS = 60_000;

export interface PeerTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

class Peer {
  private inFlight = false;
  private pending = false;
  private failures = 0;
  private quietUntil = 0;
  /** Wakeups sent and answered, for tests and logs. */
  delivered = 0;

  constructor(
    readonly url: URL,
    private readonly agent: http.Agent,
  ) {}

  wake(): void {
    if (performance.now() < this.quietUntil) return;
    if (this.inFlight) {
      this.pending = true;
      return;
    }
    this.inFlight = true;
    this.pending = false;
    const request = (this.url.protocol === 'https:' ? https : http).request(
      new URL(WAKE_PATH, this.url),
      { method: 'POST', agent: this.agent, timeout: REQUEST_TIMEOUT_MS, headers: { 'content-length': 0 } },
      (res) => {
        res.resume();
        res.on('end', () => this.done(res.statusCode === 204));
        res.on('error', () => this.done(false));
      },
    );
    request.on('timeout', () => request.destroy(new Error('timed out')));
    request.on('error', () => this.done(false));
    request.end();
  }

  private done(ok: boolean): void {
    if (!this.inFlight) return;
    this.inFlight = false;
    if (ok) {
      this.delivered++;
      this.failures = 0;
      if (this.pending) this.wake();
      return;
    }
    this.failures++;
    this.pending = false;
    this.quietUntil = performance.now() + Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.failures);
  }

  close(): void {
    this.agent.destroy();
  }
}

export class PeerWaker {
  private readonly peers = new Map<string, Peer>();

  constructor(private readonly tls: PeerTls | null) {}

  /** The other live members and their advertised client URLs (from each heartbeat). */
  setPeers(members: { id: string; clientUrls: string[] }[]): void {
    const seen = new Set<string>();
    for (const m of members) {
      const raw = m.clientUrls.find((u) => /^https?:\/\//.test(u));
      if (!raw) continue;
      const key = `${m.id} ${raw}`;
      seen.add(key);
      if (this.peers.has(key)) continue;
      const url = new URL(raw);
      const agent =
        url.protocol === 'https:'
          ? new https.Agent({ keepAlive: true, maxSockets: 1, ca: this.tls?.ca, cert: this.tls?.cert, key: this.tls?.key })
          : new http.Agent({ keepAlive: true, maxSockets: 1 });
      const peer = new Peer(url, agent);
      this.peers.set(key, peer);
      // commits made before it was known here woke it not: one wakeup now covers them
      peer.wake();
    }
    for (const [key, peer] of this.peers) {
      if (seen.has(key)) continue;
      peer.close();
      this.peers.delete(key);
    }
  }

  /** A local commit: wake every other member. */
  committed(): void {
    for (const peer of this.peers.values()) peer.wake();
  }

  /** Wakeups other members acknowledged. */
  get delivered(): number {
    let n = 0;
    for (const p of this.peers.values()) n += p.delivered;
    return n;
  }

  stop(): void {
    for (const peer of this.peers.values()) peer.close();
    this.peers.clear();
  }
}

/**
 * Wakes the other instances after each local commit that the store does not announce itself
 * (Driver.announcesCommits). An announced commit is looked at again once it should have been
 * heard: if it was not, the others are woken then rather than at the next commit. A change
 * between the two ways is logged.
 */
export function wakeOthersAfterCommits(store: { on(event: 'commit', fn: () => void): unknown }, driver: Pick<Driver, 'announcesCommits'>, waker: PeerWaker, logger: Logger): void {
  // as it starts: a store that announces is heard (nothing is unheard yet); one that never does, never
  let announced = driver.announcesCommits?.() ?? false;
  let recheck: NodeJS.Timeout | null = null;
  const announcing = (): boolean => {
    const now = driver.announcesCommits?.() ?? false;
    if (now !== announced) {
      if (now) logger.info('commit announcements are heard again: the other instances are woken by the database');
      else logger.warn('commit announcements (NOTIFY) are not heard back: waking the other instances over HTTP instead (is a connection pooler in transaction mode in between?)');
    }
    announced = now;
    return now;
  };
  store.on('commit', () => {
    if (!announcing()) return waker.committed();
    recheck ??= setTimeout(() => {
      recheck = null;
      if (!announcing()) waker.committed();
    }, ANNOUNCEMENT_HEARD_WITHIN_MS + 100).unref();
  });
}
