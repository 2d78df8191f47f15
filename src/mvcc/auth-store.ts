// etcd's auth, over any driver. Users, roles and the enabled flag are one
// shared document ("auth"), changed only inside a write batch (under the same
// lock as key writes) and read by every instance, which refreshes its copy
// every poll interval: a change made through one instance is in force on all
// of them within that interval.
//
// Passwords are stored only as bcrypt hashes, etcd's own form ($2a$, cost 10,
// as etcd's default --bcrypt-cost), so users move between us and etcd in
// snapshots with their passwords; stores from before keep scrypt hashes,
// which still verify. Tokens are random and
// live in the store by hash (auth-tokens.ts), so any instance accepts a token
// any other issued, and nothing in the store lets a reader make one. A token
// names the user, the user's password generation and the auth epoch, so
// changing the password, deleting the user, or disabling and enabling auth
// invalidates it.
//
// Users and roles are Maps in memory: their names come from clients, and
// names such as "__proto__" or "constructor" must be plain names.
//
// Authenticate is made cheap without weakening storage: after a slow hash
// check succeeds, this process remembers a keyed digest (HMAC with a random
// per-process key) of the credentials, tied to the stored hash; the same
// credentials later match the digest instead of running the hash again. Any
// password change or user deletion changes or removes the stored hash, which
// invalidates the digest. Wrong passwords always take the slow path.
import { createHmac, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import * as bcrypt from 'bcrypt';
import { AuthTokens, type TokenClaims } from './auth-tokens';
import {
  ErrAuthFailed,
  ErrNoPasswordUser,
  ErrAuthNotEnabled,
  ErrInvalidAuthMgmt,
  ErrInvalidAuthToken,
  ErrPermissionDenied,
  ErrPermissionNotGiven,
  ErrPermissionNotGranted,
  ErrRoleAlreadyExist,
  ErrRoleEmpty,
  ErrRoleNotFound,
  ErrRoleNotGranted,
  ErrRootRoleNotExist,
  ErrRootUserNotExist,
  ErrUserAlreadyExist,
  ErrUserEmpty,
  ErrUserNotFound,
  unimplemented,
} from '../errors';
import type { SharedDoc } from './driver';
import type { Header } from './requests';
import type { MvccStore } from './store';
import type { WriteView } from './write-view';

export const PermType = { READ: 0, WRITE: 1, READWRITE: 2 } as const;
const ROOT = 'root';
export const AUTH_DOC = 'auth';
const DOC = AUTH_DOC;

interface StoredPermission {
  permType: number;
  /** base64 */
  key: string;
  /** base64; "" = one key, "AA==" ("\0") = no upper bound */
  range_end: string;
}

interface StoredUser {
  /** a bcrypt hash ("$2a$10$..."; older stores: "scrypt$N$r$p$salt$hash"), or "" with no_password */
  password: string;
  noPassword: boolean;
  roles: string[];
  /** changes with every password change: tokens carry it */
  generation: string;
}

interface AuthDoc {
  enabled: boolean;
  revision: number;
  users: Map<string, StoredUser>;
  roles: Map<string, { perms: StoredPermission[] }>;
  /** Changes each time auth is enabled: tokens carry it. */
  epoch: string;
}

/** The document as stored (JSON): maps as objects. */
interface StoredDoc {
  enabled: boolean;
  revision: number;
  users: Record<string, StoredUser>;
  roles: Record<string, { perms: StoredPermission[] }>;
  epoch?: string;
}

function fromStored(s: StoredDoc): AuthDoc {
  // JSON.parse makes every name an own property ("__proto__" included); Object.entries reads them all.
  return { enabled: s.enabled, revision: s.revision, users: new Map(Object.entries(s.users ?? {})), roles: new Map(Object.entries(s.roles ?? {})), epoch: s.epoch ?? '' };
}

function toStored(d: AuthDoc): StoredDoc {
  // Object.fromEntries defines own properties, whatever the name.
  return { enabled: d.enabled, revision: d.revision, users: Object.fromEntries(d.users), roles: Object.fromEntries(d.roles), epoch: d.epoch };
}

/** A caller, when auth is on. `user` is '' for a caller that sent no token (refused wherever a permission is needed). */
export interface AuthInfo {
  user: string;
  root: boolean;
}

const ANONYMOUS: AuthInfo = Object.freeze({ user: '', root: false });

// ------------------------------------------------------------- passwords

function scryptAsync(password: string, salt: Buffer, N: number, r: number, p: number, keylen: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password, salt, keylen, { N, r, p, maxmem: 64 * 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** etcd's default --bcrypt-cost. */
const BCRYPT_COST = 10;

export async function hashPassword(password: string): Promise<string> {
  // $2a$, the form etcd's (Go's) bcrypt writes; computed on libuv's thread pool, off the event loop
  return bcrypt.hash(password, await bcrypt.genSalt(BCRYPT_COST, 'a'));
}

/** Whether a stored hash is in etcd's form (bcrypt). */
export function isBcryptHash(stored: string): boolean {
  return /^\$2[abxy]\$\d\d\$/.test(stored);
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  if (isBcryptHash(stored)) return bcrypt.compare(password, stored);
  const [kind, n, r, p, salt, hash] = stored.split('$');
  if (kind !== 'scrypt') return false;
  const want = Buffer.from(hash, 'base64');
  const got = await scryptAsync(password, Buffer.from(salt, 'base64'), Number(n), Number(r), Number(p), want.length);
  return got.length === want.length && timingSafeEqual(got, want);
}

// ------------------------------------------------------------- permissions

/** [start, end); end null = no upper bound. */
interface Interval {
  start: Buffer;
  end: Buffer | null;
}

function permInterval(p: StoredPermission): Interval {
  const key = Buffer.from(p.key, 'base64');
  const end = Buffer.from(p.range_end, 'base64');
  if (end.length === 0) return { start: key, end: Buffer.concat([key, Buffer.from([0])]) };
  if (end.length === 1 && end[0] === 0) return { start: key, end: null };
  return { start: key, end };
}

/** Whether the union of the intervals covers [start, end). */
function covers(intervals: Interval[], want: Interval): boolean {
  let cur = want.start;
  for (;;) {
    if (want.end !== null && Buffer.compare(cur, want.end) >= 0) return true;
    let best: Buffer | null | undefined;
    for (const iv of intervals) {
      if (Buffer.compare(iv.start, cur) > 0) continue;
      if (iv.end === null) return true;
      if (Buffer.compare(iv.end, cur) <= 0) continue;
      if (best === undefined || (best !== null && Buffer.compare(iv.end, best) > 0)) best = iv.end;
    }
    if (best === undefined || best === null) return best === null;
    cur = best;
  }
}

/** The interval of a request's key and range_end, etcd's way ("\0": no upper bound). */
export function requestInterval(key: Buffer, rangeEnd: Buffer | null | undefined): Interval {
  if (!rangeEnd || rangeEnd.length === 0) return { start: key, end: Buffer.concat([key, Buffer.from([0])]) };
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return { start: key, end: null };
  return { start: key, end: rangeEnd };
}

// ------------------------------------------------------------- the store

function emptyDoc(): AuthDoc {
  return { enabled: false, revision: 1, users: new Map(), roles: new Map(), epoch: '' };
}

function b64url(b: Buffer): string {
  return b.toString('base64url');
}

export interface AuthOptions {
  /** Token lifetime, seconds (etcd's --auth-token-ttl). */
  tokenTtlSeconds: number;
  /** How often to re-read the shared document (0: only this process writes it). */
  refreshMs: number;
}

export class AuthStore {
  private doc: AuthDoc = emptyDoc();
  private docVersion = 0;
  private timer: NodeJS.Timeout | null = null;
  /** per-user compiled permissions, for the current document */
  private perms = new Map<string, { read: Interval[]; write: Interval[] }>();
  /** keyed digests of credentials already verified: user -> (stored hash, digest) */
  private readonly verified = new Map<string, { stored: string; digest: Buffer }>();
  private readonly pepper = randomBytes(32);
  private readonly tokens: AuthTokens;

  constructor(
    private readonly store: MvccStore,
    private readonly opts: AuthOptions,
  ) {
    this.tokens = new AuthTokens(store.driver.tokens, opts.tokenTtlSeconds * 1000);
  }

  async open(): Promise<void> {
    this.tokens.start();
    await this.refresh();
    if (this.opts.refreshMs > 0) {
      this.timer = setInterval(() => void this.refresh().catch(() => undefined), this.opts.refreshMs);
      this.timer.unref();
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.tokens.stop();
  }

  get enabled(): boolean {
    return this.doc.enabled;
  }

  /** Re-read the shared document if another instance changed it. */
  async refresh(): Promise<void> {
    const stored = await this.store.driver.getDoc(DOC);
    // only forward: a refresh that read before a local change committed must not undo it here
    if (stored && stored.version > this.docVersion) this.adopt(fromStored(stored.value as StoredDoc), stored.version);
  }

  private adopt(doc: AuthDoc, version: number): void {
    if (!doc.enabled || doc.epoch !== this.doc.epoch) this.tokens.clear();
    this.doc = doc;
    this.docVersion = version;
    this.perms.clear();
  }

  /** Change the document inside a write batch; the change is in force here at once and elsewhere on their next refresh. */
  private async mutate<T>(fn: (doc: AuthDoc, view: WriteView) => Promise<T> | T): Promise<T & { header: Header }> {
    const { value, doc, version } = await this.store.write({
      run: async (view) => {
        const stored = await view.doc(DOC);
        const doc: AuthDoc = stored ? fromStored(structuredClone(stored.value as StoredDoc)) : emptyDoc();
        const value = await fn(doc, view);
        doc.revision++;
        const version = (stored?.version ?? 0) + 1;
        view.putDoc(DOC, { version, value: toStored(doc) });
        return { value, doc, version, revision: view.revision };
      },
    });
    this.adopt(doc, version);
    return { ...(value as T), header: await this.header() };
  }

  /** A read of the document as stored (fresh, for management answers). */
  private async current(): Promise<AuthDoc> {
    await this.refresh();
    return this.doc;
  }

  // ---- management ---------------------------------------------------------

  async userAdd(name: string, password: string, noPassword: boolean, hashedPassword: string) {
    if (!name) throw ErrUserEmpty;
    if (hashedPassword) throw unimplemented('etcd-adapter: hashedPassword is not supported: send the password, which is stored as a bcrypt hash');
    const hash = noPassword ? '' : await hashPassword(password);
    return this.mutate((doc) => {
      if (doc.users.has(name)) throw ErrUserAlreadyExist;
      doc.users.set(name, { password: hash, noPassword, roles: [], generation: b64url(randomBytes(9)) });
      return {};
    });
  }

  async userDelete(name: string) {
    return this.mutate((doc) => {
      if (doc.enabled && name === ROOT) throw ErrInvalidAuthMgmt;
      if (!doc.users.delete(name)) throw ErrUserNotFound;
      return {};
    });
  }

  async userChangePassword(name: string, password: string, hashedPassword: string) {
    if (hashedPassword) throw unimplemented('etcd-adapter: hashedPassword is not supported: send the password, which is stored as a bcrypt hash');
    const hash = await hashPassword(password);
    return this.mutate((doc) => {
      const u = doc.users.get(name);
      if (!u) throw ErrUserNotFound;
      u.password = u.noPassword ? '' : hash;
      u.generation = b64url(randomBytes(9));
      return {};
    });
  }

  async userGrantRole(user: string, role: string) {
    return this.mutate((doc) => {
      const u = doc.users.get(user);
      if (!u) throw ErrUserNotFound;
      if (role !== ROOT && !doc.roles.has(role)) throw ErrRoleNotFound;
      if (!u.roles.includes(role)) u.roles = [...u.roles, role].sort();
      return {};
    });
  }

  async userRevokeRole(name: string, role: string) {
    return this.mutate((doc) => {
      if (doc.enabled && name === ROOT && role === ROOT) throw ErrInvalidAuthMgmt;
      const u = doc.users.get(name);
      if (!u) throw ErrUserNotFound;
      if (!u.roles.includes(role)) throw ErrRoleNotGranted;
      u.roles = u.roles.filter((r) => r !== role);
      return {};
    });
  }

  async userGet(name: string) {
    const u = (await this.current()).users.get(name);
    if (!u) throw ErrUserNotFound;
    return { header: await this.header(), roles: u.roles };
  }

  async userList() {
    return { header: await this.header(), users: [...(await this.current()).users.keys()].sort() };
  }

  async roleAdd(name: string) {
    if (!name) throw ErrRoleEmpty;
    return this.mutate((doc) => {
      if (doc.roles.has(name)) throw ErrRoleAlreadyExist;
      doc.roles.set(name, { perms: [] });
      return {};
    });
  }

  async roleDelete(role: string) {
    return this.mutate((doc) => {
      if (doc.enabled && role === ROOT) throw ErrInvalidAuthMgmt;
      if (!doc.roles.delete(role)) throw ErrRoleNotFound;
      for (const u of doc.users.values()) u.roles = u.roles.filter((r) => r !== role);
      return {};
    });
  }

  async roleGet(role: string) {
    const r = (await this.current()).roles.get(role);
    if (!r) throw ErrRoleNotFound;
    const perm = r.perms.map((p) => ({ permType: p.permType, key: Buffer.from(p.key, 'base64'), range_end: Buffer.from(p.range_end, 'base64') }));
    // etcd shows the root role's implicit permission over everything first
    if (role === ROOT) perm.unshift({ permType: PermType.READWRITE, key: Buffer.alloc(0), range_end: Buffer.from([0]) });
    return { header: await this.header(), perm };
  }

  async roleList() {
    return { header: await this.header(), roles: [...(await this.current()).roles.keys()].sort() };
  }

  async roleGrantPermission(name: string, perm: { permType: number; key: Buffer; range_end: Buffer } | null) {
    if (!perm) throw ErrPermissionNotGiven;
    return this.mutate((doc) => {
      const r = doc.roles.get(name);
      if (!r) throw ErrRoleNotFound;
      const key = perm.key.toString('base64');
      const end = perm.range_end.toString('base64');
      const same = r.perms.find((p) => p.key === key && p.range_end === end);
      if (same) same.permType = perm.permType;
      else {
        r.perms.push({ permType: perm.permType, key, range_end: end });
        r.perms.sort((a, b) => Buffer.compare(Buffer.from(a.key, 'base64'), Buffer.from(b.key, 'base64')));
      }
      return {};
    });
  }

  async roleRevokePermission(role: string, key: Buffer, rangeEnd: Buffer) {
    return this.mutate((doc) => {
      const r = doc.roles.get(role);
      if (!r) throw ErrRoleNotFound;
      const k = key.toString('base64');
      const e = rangeEnd.toString('base64');
      const i = r.perms.findIndex((p) => p.key === k && p.range_end === e);
      if (i < 0) throw ErrPermissionNotGranted;
      r.perms.splice(i, 1);
      return {};
    });
  }

  async enable() {
    return this.mutate((doc) => {
      if (doc.enabled) return {};
      const root = doc.users.get(ROOT);
      if (!root) throw ErrRootUserNotExist;
      if (!root.roles.includes(ROOT)) throw ErrRootRoleNotExist;
      doc.enabled = true;
      // Tokens issued before an earlier disable stay dead.
      doc.epoch = b64url(randomBytes(9));
      return {};
    });
  }

  async disable() {
    return this.mutate((doc) => {
      doc.enabled = false;
      return {};
    });
  }

  async status() {
    const doc = await this.current();
    return { header: await this.header(), enabled: doc.enabled, authRevision: doc.revision };
  }

  /** The revision this process knows: what auth answers report, as etcd reports its current one. */
  private async header(): Promise<Header> {
    return { revision: this.store.knownRevision };
  }

  // ---- authentication -----------------------------------------------------

  private digest(name: string, password: string): Buffer {
    return createHmac('sha256', this.pepper).update(name).update('\0').update(password).digest();
  }

  /**
   * Checks against this process's copy of the document, which the periodic
   * refresh keeps within one poll interval of the store (local changes apply
   * at once). As in etcd, the password is checked first; a token sent along
   * must then be valid.
   */
  async authenticate(name: string, password: string, callerToken?: string): Promise<{ header: Header; token: string }> {
    const doc = this.doc;
    if (!doc.enabled) throw ErrAuthNotEnabled;
    const user = doc.users.get(name);
    if (!user) throw ErrAuthFailed;
    if (user.noPassword) throw ErrNoPasswordUser;
    const digest = this.digest(name, password);
    const known = this.verified.get(name);
    const fast = known !== undefined && known.stored === user.password && timingSafeEqual(known.digest, digest);
    if (!fast) {
      if (!(await verifyPassword(password, user.password))) throw ErrAuthFailed;
      this.verified.set(name, { stored: user.password, digest });
    }
    await this.identify(callerToken);
    const token = await this.tokens.issue({ user: name, generation: user.generation, epoch: doc.epoch });
    return { header: await this.header(), token };
  }

  /**
   * Who a request is, when auth is on: null when auth is off; an anonymous
   * caller when no token was sent (or the client certificate's user, see
   * CallMeta.certUser); `invalid auth token` for a token that is
   * not (or no longer) good, whatever the request asks for. Synchronous for
   * a token this process knows; a promise when the store must be asked.
   */
  identify(token: string | undefined, certUser?: string): AuthInfo | null | Promise<AuthInfo> {
    if (!this.doc.enabled) return null;
    // etcd: a token wins; without one, a verified client certificate's Common Name is the user
    if (!token) return certUser ? { user: certUser, root: this.doc.users.get(certUser)?.roles.includes(ROOT) ?? false } : ANONYMOUS;
    const known = this.tokens.cached(token);
    if (known !== undefined) return this.infoOf(token, known);
    return this.tokens.lookup(token).then((claims) => this.infoOf(token, claims));
  }

  private infoOf(token: string, claims: TokenClaims | null): AuthInfo {
    const doc = this.doc;
    const user = claims ? doc.users.get(claims.user) : undefined;
    if (!claims || !user || user.generation !== claims.generation || claims.epoch !== doc.epoch) {
      if (claims) this.tokens.drop(token);
      throw ErrInvalidAuthToken;
    }
    return { user: claims.user, root: user.roles.includes(ROOT) };
  }

  /** Refuses unless the user may do `type` over the whole interval. */
  check(info: AuthInfo | null, type: 'read' | 'write', key: Buffer, rangeEnd?: Buffer | null): void {
    if (!info || info.root) return;
    if (!info.user) throw ErrUserEmpty;
    const perms = this.compiled(info.user);
    if (!covers(type === 'read' ? perms.read : perms.write, requestInterval(key, rangeEnd))) throw ErrPermissionDenied;
  }

  /** Refuses unless the user has the root role. */
  requireAdmin(info: AuthInfo | null): void {
    if (!info || info.root) return;
    throw info.user ? ErrPermissionDenied : ErrUserEmpty;
  }

  hasRole(info: AuthInfo | null, role: string): boolean {
    return !info || info.root || (this.doc.users.get(info.user)?.roles.includes(role) ?? false);
  }

  private compiled(user: string): { read: Interval[]; write: Interval[] } {
    let p = this.perms.get(user);
    if (!p) {
      const read: Interval[] = [];
      const write: Interval[] = [];
      for (const role of this.doc.users.get(user)?.roles ?? []) {
        for (const perm of this.doc.roles.get(role)?.perms ?? []) {
          const iv = permInterval(perm);
          if (perm.permType !== PermType.WRITE) read.push(iv);
          if (perm.permType !== PermType.READ) write.push(iv);
        }
      }
      this.perms.set(user, (p = { read, write }));
    }
    return p;
  }
}

// ------------------------------------------------------------- snapshots

/** The auth state as etcd's snapshot buckets (auth, authUsers, authRoles) hold it. */
export interface AuthData {
  enabled: boolean;
  revision: number;
  /** Sorted by name. `password` is the stored hash ('' with noPassword). */
  users: { name: string; password: string; noPassword: boolean; roles: string[] }[];
  /** Sorted by name. Keys and range ends as etcd stores them ("" = one key, "\0" = no upper bound). */
  roles: { name: string; perms: { permType: number; key: Buffer; range_end: Buffer }[] }[];
}

const byName = <T extends { name: string }>(a: T, b: T) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name));

/** The auth state of a store's shared document (null: never touched). */
export function authDataOf(stored: SharedDoc | null): AuthData {
  const doc = stored ? fromStored(stored.value as StoredDoc) : emptyDoc();
  return {
    enabled: doc.enabled,
    revision: doc.revision,
    users: [...doc.users].map(([name, u]) => ({ name, password: u.password, noPassword: u.noPassword, roles: [...u.roles] })).sort(byName),
    roles: [...doc.roles]
      .map(([name, r]) => ({ name, perms: r.perms.map((p) => ({ permType: p.permType, key: Buffer.from(p.key, 'base64'), range_end: Buffer.from(p.range_end, 'base64') })) }))
      .sort(byName),
  };
}

/** The shared document for auth state loaded from a snapshot (tokens of the old store mean nothing here: a new epoch). */
export function authDocOf(data: AuthData): SharedDoc {
  const doc: AuthDoc = {
    enabled: data.enabled,
    revision: data.revision,
    users: new Map(data.users.map((u) => [u.name, { password: u.noPassword ? '' : u.password, noPassword: u.noPassword, roles: [...u.roles].sort(), generation: b64url(randomBytes(9)) }])),
    roles: new Map(data.roles.map((r) => [r.name, { perms: r.perms.map((p) => ({ permType: p.permType, key: p.key.toString('base64'), range_end: p.range_end.toString('base64') })) }])),
    epoch: b64url(randomBytes(9)),
  };
  return { version: 1, value: toStored(doc) };
}
