// Auth tokens as etcd's "simple" tokens behave: random, opaque, valid for
// --auth-token-ttl seconds from their last use (a token in use never
// expires), shared by every instance on the store.
//
// The store keeps only the SHA-256 of each token (TokenStore): a reader of the
// database or of a backup cannot make or recover a token. Each process keeps
// the tokens it has seen in memory, so a request with a known token costs a
// hash and a map lookup. A token issued by another instance is read from the
// store once. Uses are written back in batches, at most every quarter of the
// TTL per token, which is how often another instance learns that a token is
// still in use; an instance that thinks a token has expired asks the store
// before refusing it.
import { createHash, randomBytes } from 'node:crypto';
import type { TokenRecord, TokenStore } from './driver';

/** How often used tokens are written back. */
const FLUSH_MS = 1000;
/** How often expired tokens are removed from the store: every TTL, at most every minute, at least every second. */
const sweepMs = (ttlMs: number) => Math.min(60_000, Math.max(1000, ttlMs));
/** Tokens known not to exist, remembered (they cannot come to exist: tokens are random). */
const MAX_UNKNOWN = 10_000;
/** Tokens remembered here; past this the oldest are forgotten (the store still has them). */
const MAX_KNOWN = 100_000;

export interface TokenClaims {
  user: string;
  generation: string;
  epoch: string;
}

interface Known {
  claims: TokenClaims;
  hash: Buffer;
  /** performance.now() at which the token expires unless used again. */
  expiresAt: number;
  /** performance.now() of the last use written to the store. */
  writtenAt: number;
  used: boolean;
}

function hashOf(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

export class AuthTokens {
  private readonly known = new Map<string, Known>();
  private readonly unknown = new Set<string>();
  private flushTimer: NodeJS.Timeout | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private flushing = false;

  constructor(
    private readonly store: TokenStore,
    private readonly ttlMs: number,
    private readonly onError: (err: unknown) => void = () => undefined,
    private readonly maxKnown = MAX_KNOWN,
  ) {}

  start(): void {
    this.flushTimer = setInterval(() => void this.flush(), FLUSH_MS);
    this.flushTimer.unref();
    const every = sweepMs(this.ttlMs);
    this.sweepTimer = setInterval(() => void this.store.dropIdle(this.ttlMs + every).catch(this.onError), every);
    this.sweepTimer.unref();
  }

  stop(): void {
    if (this.flushTimer) clearInterval(this.flushTimer);
    if (this.sweepTimer) clearInterval(this.sweepTimer);
  }

  /** A new token for these claims, recorded in the store before it is handed out. */
  async issue(claims: TokenClaims): Promise<string> {
    const token = randomBytes(32).toString('base64url');
    const hash = hashOf(token);
    await this.store.put(hash, claims);
    const now = performance.now();
    this.remember(hash.toString('base64'), { claims, hash, expiresAt: now + this.ttlMs, writtenAt: now, used: false });
    return token;
  }

  /**
   * The claims of a live token, counting this as a use; null for a token that
   * does not exist or has expired. Synchronous when the token is known here
   * and alive (`undefined`: ask `lookup`).
   */
  cached(token: string): TokenClaims | null | undefined {
    const key = hashOf(token).toString('base64');
    if (this.unknown.has(key)) return null;
    const k = this.known.get(key);
    if (!k || k.expiresAt <= performance.now()) return undefined;
    return this.use(k);
  }

  /** As cached, asking the store when this process cannot tell. */
  async lookup(token: string): Promise<TokenClaims | null> {
    const quick = this.cached(token);
    if (quick !== undefined) return quick;
    const hash = hashOf(token);
    const key = hash.toString('base64');
    const row: TokenRecord | null = await this.store.get(hash);
    if (!row || row.idleMs >= this.ttlMs) {
      this.known.delete(key);
      if (!row) this.forget(key);
      return null;
    }
    const now = performance.now();
    const k: Known = { claims: { user: row.user, generation: row.generation, epoch: row.epoch }, hash, expiresAt: now + this.ttlMs - row.idleMs, writtenAt: now - row.idleMs, used: false };
    this.remember(key, k);
    return this.use(k);
  }

  /** Drop a token from this process's memory (it was found invalid). */
  drop(token: string): void {
    this.known.delete(hashOf(token).toString('base64'));
  }

  /** Forget every token this process knows (auth was disabled). */
  clear(): void {
    this.known.clear();
  }

  private remember(key: string, k: Known): void {
    if (this.known.size >= this.maxKnown) {
      // Map order is insertion order: drop the oldest tenth (their uses go to the store first).
      const drop = [...this.known.entries()].slice(0, Math.max(1, Math.floor(this.maxKnown / 10)));
      const used = drop.filter(([, old]) => old.used).map(([, old]) => old.hash);
      if (used.length > 0) void this.store.touch(used).catch(this.onError);
      for (const [oldKey] of drop) this.known.delete(oldKey);
    }
    this.known.set(key, k);
  }

  private use(k: Known): TokenClaims {
    k.expiresAt = performance.now() + this.ttlMs;
    k.used = true;
    return k.claims;
  }

  private forget(key: string): void {
    if (this.unknown.size >= MAX_UNKNOWN) this.unknown.clear();
    this.unknown.add(key);
  }

  /** Writes back the uses other instances need to know about; drops what has expired. */
  async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      const now = performance.now();
      const due: Known[] = [];
      for (const [key, k] of this.known) {
        if (k.expiresAt <= now) this.known.delete(key);
        else if (k.used && now - k.writtenAt >= this.ttlMs / 4) due.push(k);
      }
      if (due.length === 0) return;
      await this.store.touch(due.map((k) => k.hash));
      for (const k of due) {
        k.writtenAt = now;
        k.used = false;
      }
    } catch (err) {
      this.onError(err);
    } finally {
      this.flushing = false;
    }
  }
}
