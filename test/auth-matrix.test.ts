// Auth, the whole matrix, against a real etcd 3.4: every RPC and every
// gateway path, called with no token, a garbage token, a forged one, an
// expired one, and the tokens of a read-only user, a read-write user and
// root. Both servers get the same calls in the same order (so their state
// stays the same) and must give the same outcome: success, or the same gRPC
// code and text. Where this server differs from etcd 3.4 on purpose, the row
// says so and pins this server's answer instead (see the README).
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { b, type EtcdGrpcClient } from './helpers/grpc-client';
import { startPair, type Pair } from './helpers/pair';
import { grpcWatch, httpWatch } from './helpers/watch-client';
import { waitFor } from './helpers/ports';

type Who = 'none' | 'garbage' | 'forged' | 'expired' | 'ro' | 'rw' | 'root';
const USERS = { ro: 'ro-pw', rw: 'rw-pw', root: 'root-pw' } as const;
const READ = 0;
const READWRITE = 2;

/** What a call came to: "ok", or "<code> <text>"; streams: what their first answer said. */
type Outcome = string;

interface Ctx {
  /** A lease with a key only root may write attached ("z/leased"). */
  foreignLease: string;
  /** A lease with a key under m/ attached. */
  ownLease: string;
  /** A lease for the revoke row. */
  revokeLease: string;
}

interface Row {
  name: string;
  service: 'kv' | 'lease' | 'maintenance' | 'cluster' | 'auth';
  method: string;
  /** gateway path (without /v3); absent: gRPC only */
  path?: string;
  req: (ctx: Ctx) => object;
  /** This server's outcome where it differs from etcd 3.4 on purpose, by identity (and why, in `because`). */
  ours?: Partial<Record<Who, Outcome>>;
  because?: string;
}

const k = (s: string) => b(s);
const INVALID = '16 etcdserver: invalid auth token';
const EMPTY = '3 etcdserver: user name is empty';
const DENIED = '7 etcdserver: permission denied';
/** etcd 3.4's maintenance guard returns the auth error raw (code Unknown, "auth: ..."); this server gives the etcdserver error, which clients know (etcd's Go client re-authenticates on it). */
const RAW_AUTH_ERRORS = { none: EMPTY, garbage: INVALID, forged: INVALID, expired: INVALID, ro: DENIED, rw: DENIED };
const RAW_BECAUSE = 'etcd 3.4 answers code 2 "auth: ..." here; this server answers with etcd\'s gRPC auth errors';

const ROWS: Row[] = [
  { name: 'Range inside m/', service: 'kv', method: 'Range', path: '/kv/range', req: () => ({ key: k('m/a') }) },
  { name: 'Range outside', service: 'kv', method: 'Range', path: '/kv/range', req: () => ({ key: k('z/a') }) },
  { name: 'Range of a prefix', service: 'kv', method: 'Range', path: '/kv/range', req: () => ({ key: k('m/'), range_end: k('m0') }) },
  { name: 'Put inside m/', service: 'kv', method: 'Put', path: '/kv/put', req: () => ({ key: k('m/p'), value: k('v') }) },
  { name: 'Put with prev_kv', service: 'kv', method: 'Put', path: '/kv/put', req: () => ({ key: k('m/p'), value: k('v'), prev_kv: true }) },
  { name: 'Put outside', service: 'kv', method: 'Put', path: '/kv/put', req: () => ({ key: k('z/p'), value: k('v') }) },
  { name: 'Put with a lease whose keys the caller may not write', service: 'kv', method: 'Put', path: '/kv/put', req: (c) => ({ key: k('m/l2'), value: k('v'), lease: c.foreignLease }) },
  { name: 'Put with a lease of its own keys', service: 'kv', method: 'Put', path: '/kv/put', req: (c) => ({ key: k('m/l3'), value: k('v'), lease: c.ownLease }) },
  { name: 'Put of an empty key', service: 'kv', method: 'Put', path: '/kv/put', req: () => ({ key: k(''), value: k('v') }) },
  { name: 'DeleteRange inside m/', service: 'kv', method: 'DeleteRange', path: '/kv/deleterange', req: () => ({ key: k('m/nothing') }) },
  { name: 'DeleteRange outside', service: 'kv', method: 'DeleteRange', path: '/kv/deleterange', req: () => ({ key: k('z/nothing') }) },
  { name: 'Txn read-only', service: 'kv', method: 'Txn', path: '/kv/txn', req: () => ({ compare: [{ key: k('m/a'), target: 0, result: 0, version: 1 }], success: [{ request_range: { key: k('m/a') } }] }) },
  { name: 'Txn with a put', service: 'kv', method: 'Txn', path: '/kv/txn', req: () => ({ success: [{ request_put: { key: k('m/t'), value: k('v') } }] }) },
  { name: 'Txn with a put outside', service: 'kv', method: 'Txn', path: '/kv/txn', req: () => ({ success: [{ request_put: { key: k('z/t'), value: k('v') } }] }) },
  { name: 'Txn with a put under a lease with foreign keys', service: 'kv', method: 'Txn', path: '/kv/txn', req: (c) => ({ success: [{ request_put: { key: k('m/t2'), value: k('v'), lease: c.foreignLease } }] }) },
  { name: 'Txn empty', service: 'kv', method: 'Txn', path: '/kv/txn', req: () => ({}) },
  { name: 'Txn with too many ops', service: 'kv', method: 'Txn', path: '/kv/txn', req: () => ({ success: Array.from({ length: 129 }, (_, i) => ({ request_range: { key: k(`m/${i}`) } })) }) },
  { name: 'Compact', service: 'kv', method: 'Compact', path: '/kv/compaction', req: () => ({ revision: 2 }) },
  { name: 'LeaseGrant', service: 'lease', method: 'LeaseGrant', path: '/lease/grant', req: () => ({ TTL: 60 }) },
  { name: 'LeaseTimeToLive', service: 'lease', method: 'LeaseTimeToLive', path: '/lease/timetolive', req: (c) => ({ ID: c.foreignLease }) },
  {
    name: 'LeaseTimeToLive with the keys of a lease with foreign keys',
    service: 'lease',
    method: 'LeaseTimeToLive',
    path: '/lease/timetolive',
    req: (c) => ({ ID: c.foreignLease, keys: true }),
    ours: { none: EMPTY, garbage: INVALID, forged: INVALID, expired: INVALID, ro: DENIED, rw: DENIED },
    because: 'key names are data: read permission over them is needed, as etcd 3.4.26 and 3.5.9 require',
  },
  { name: 'LeaseLeases', service: 'lease', method: 'LeaseLeases', path: '/lease/leases', req: () => ({}) },
  { name: 'LeaseRevoke of a lease with foreign keys', service: 'lease', method: 'LeaseRevoke', path: '/lease/revoke', req: (c) => ({ ID: c.revokeLease }) },
  { name: 'LeaseRevoke of an unknown lease', service: 'lease', method: 'LeaseRevoke', path: '/kv/lease/revoke', req: () => ({ ID: 12345 }) },
  {
    name: 'Alarm GET',
    service: 'maintenance',
    method: 'Alarm',
    path: '/maintenance/alarm',
    req: () => ({ action: 0 }),
    ours: { garbage: INVALID, forged: INVALID, expired: INVALID },
    because: RAW_BECAUSE,
  },
  { name: 'Status', service: 'maintenance', method: 'Status', path: '/maintenance/status', req: () => ({}) },
  { name: 'Defragment', service: 'maintenance', method: 'Defragment', path: '/maintenance/defragment', req: () => ({}), ours: RAW_AUTH_ERRORS, because: RAW_BECAUSE },
  { name: 'Hash', service: 'maintenance', method: 'Hash', path: '/maintenance/hash', req: () => ({}), ours: RAW_AUTH_ERRORS, because: RAW_BECAUSE },
  { name: 'HashKV', service: 'maintenance', method: 'HashKV', req: () => ({ revision: 0 }), ours: RAW_AUTH_ERRORS, because: RAW_BECAUSE },
  { name: 'MemberList', service: 'cluster', method: 'MemberList', path: '/cluster/member/list', req: () => ({}) },
  { name: 'AuthEnable', service: 'auth', method: 'AuthEnable', path: '/auth/enable', req: () => ({}) },
  { name: 'Authenticate', service: 'auth', method: 'Authenticate', path: '/auth/authenticate', req: () => ({ name: 'ro', password: USERS.ro }) },
  { name: 'Authenticate, wrong password', service: 'auth', method: 'Authenticate', path: '/auth/authenticate', req: () => ({ name: 'ro', password: 'wrong' }) },
  { name: 'UserAdd', service: 'auth', method: 'UserAdd', path: '/auth/user/add', req: () => ({ name: 'newbie', password: 'pw' }) },
  { name: 'UserGet of oneself', service: 'auth', method: 'UserGet', path: '/auth/user/get', req: () => ({ name: 'ro' }) },
  { name: 'UserGet of root', service: 'auth', method: 'UserGet', path: '/auth/user/get', req: () => ({ name: 'root' }) },
  { name: 'UserList', service: 'auth', method: 'UserList', path: '/auth/user/list', req: () => ({}) },
  { name: 'UserChangePassword', service: 'auth', method: 'UserChangePassword', path: '/auth/user/changepw', req: () => ({ name: 'nobody', password: 'x' }) },
  { name: 'UserGrantRole', service: 'auth', method: 'UserGrantRole', path: '/auth/user/grant', req: () => ({ user: 'nobody', role: 'reader' }) },
  { name: 'UserRevokeRole', service: 'auth', method: 'UserRevokeRole', path: '/auth/user/revoke', req: () => ({ name: 'nobody', role: 'reader' }) },
  { name: 'UserDelete', service: 'auth', method: 'UserDelete', path: '/auth/user/delete', req: () => ({ name: 'nobody' }) },
  { name: 'RoleAdd', service: 'auth', method: 'RoleAdd', path: '/auth/role/add', req: () => ({ name: 'newrole' }) },
  { name: 'RoleGet of an own role', service: 'auth', method: 'RoleGet', path: '/auth/role/get', req: () => ({ role: 'reader' }) },
  { name: 'RoleGet of another role', service: 'auth', method: 'RoleGet', path: '/auth/role/get', req: () => ({ role: 'root' }) },
  { name: 'RoleList', service: 'auth', method: 'RoleList', path: '/auth/role/list', req: () => ({}) },
  { name: 'RoleGrantPermission', service: 'auth', method: 'RoleGrantPermission', path: '/auth/role/grant', req: () => ({ name: 'nosuchrole', perm: { permType: READ, key: k('x') } }) },
  { name: 'RoleRevokePermission', service: 'auth', method: 'RoleRevokePermission', path: '/auth/role/revoke', req: () => ({ role: 'nosuchrole', key: k('x') }) },
  { name: 'RoleDelete', service: 'auth', method: 'RoleDelete', path: '/auth/role/delete', req: () => ({ role: 'nosuchrole' }) },
];

/** JSON for the gateway: bytes as base64, int64 as strings, the rest as it is. */
function toJson(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return v.toString('base64');
  if (Array.isArray(v)) return v.map(toJson);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([key, x]) => [key, toJson(x)]));
  return v;
}

function grpcOutcome(p: Promise<unknown>): Promise<Outcome> {
  return p.then(
    () => 'ok',
    (err: { code: number; details: string }) => `${err.code} ${err.details}`,
  );
}

async function httpOutcome(url: string, path: string, body: object, token: string | undefined): Promise<Outcome> {
  const res = await fetch(`${url}/v3${path}`, { method: 'POST', body: JSON.stringify(toJson(body)), headers: token ? { authorization: token } : {} });
  const json = (await res.json()) as { code?: number; error?: string };
  return res.status === 200 ? 'ok' : `${json.code} ${json.error}`;
}

/** The first answer of a watch on `key`: created, or canceled and why. */
async function watchOutcome(c: EtcdGrpcClient, url: string, key: string, token: string | undefined, http: boolean): Promise<Outcome> {
  const create = { create_request: { key: k(key) } };
  if (http) {
    const w = httpWatch(url, [toJson(create) as object], token ? { authorization: token } : {});
    const [first] = await w.waitFor(1);
    w.close();
    const r = first?.result;
    if (!r) return first?.error ? `${first.error.grpc_code ?? first.code} ${first.error.message ?? first.error}` : 'no answer';
    return r.canceled ? `canceled ${r.cancel_reason ?? ''}` : 'created';
  }
  const md = new grpc.Metadata();
  if (token) md.set('token', token);
  const w = grpcWatch(c, md);
  w.send(create);
  const [first] = await w.waitFor(1);
  w.close();
  if (!first) return 'no answer';
  return first.canceled ? `canceled ${first.cancel_reason ?? ''}` : 'created';
}

/** The first answer of a keepalive of `id`. */
async function keepAliveOutcome(c: EtcdGrpcClient, url: string, id: string, token: string | undefined, http: boolean): Promise<Outcome> {
  if (http) {
    const res = await fetch(`${url}/v3/lease/keepalive`, { method: 'POST', body: JSON.stringify({ ID: id }), headers: token ? { authorization: token } : {} });
    const line = JSON.parse((await res.text()).split('\n')[0]);
    return line.result ? `ttl ${line.result.TTL ? 'granted' : '0'}` : `${line.error?.grpc_code ?? line.code} ${line.error?.message ?? line.error}`;
  }
  const md = new grpc.Metadata();
  if (token) md.set('token', token);
  return new Promise((resolve) => {
    const call = (c.lease as any).LeaseKeepAlive(md) as grpc.ClientDuplexStream<object, any>;
    call.once('data', (r) => {
      resolve(`ttl ${Number(r.TTL) > 0 ? 'granted' : '0'}`);
      call.end();
    });
    call.once('error', (e: grpc.ServiceError) => resolve(`${e.code} ${e.details}`));
    call.write({ ID: id });
  });
}

interface Side {
  client: EtcdGrpcClient;
  url: string;
  tokens: Partial<Record<Who, string>>;
  ctx: Ctx;
}

async function setUp(pair: Pair): Promise<{ etcd: Side; ours: Side }> {
  const sides = { etcd: { client: pair.etcd, url: pair.etcdServer.url }, ours: { client: pair.ours, url: pair.oursServer.url } };
  const out: Record<string, Side> = {};
  for (const [name, { client: c, url }] of Object.entries(sides)) {
    const auth = (method: string, req: object) => c.call(c.auth, method, req);
    for (const [user, pw] of Object.entries(USERS)) await auth('UserAdd', { name: user, password: pw });
    await auth('UserGrantRole', { user: 'root', role: 'root' });
    await auth('RoleAdd', { name: 'reader' });
    await auth('RoleAdd', { name: 'writer' });
    await auth('RoleGrantPermission', { name: 'reader', perm: { permType: READ, key: k('m/'), range_end: k('m0') } });
    await auth('RoleGrantPermission', { name: 'writer', perm: { permType: READWRITE, key: k('m/'), range_end: k('m0') } });
    await auth('UserGrantRole', { user: 'ro', role: 'reader' });
    await auth('UserGrantRole', { user: 'rw', role: 'writer' });
    await c.put({ key: k('m/a'), value: k('a') });
    const grant = async () => String((await c.call(c.lease, 'LeaseGrant', { TTL: 600 })).ID);
    const ctx: Ctx = { foreignLease: await grant(), ownLease: await grant(), revokeLease: await grant() };
    await c.put({ key: k('z/leased'), value: k('v'), lease: ctx.foreignLease });
    await c.put({ key: k('z/leased2'), value: k('v'), lease: ctx.revokeLease });
    await c.put({ key: k('m/leased'), value: k('v'), lease: ctx.ownLease });
    await auth('AuthEnable', {});
    const tokens: Partial<Record<Who, string>> = { garbage: 'garbage' };
    for (const [user, pw] of Object.entries(USERS)) tokens[user as Who] = (await auth('Authenticate', { name: user, password: pw })).token;
    // Forged: a token of the server's own shape, one character changed.
    const real = tokens.root!;
    tokens.forged = real.slice(0, -1) + (real.endsWith('A') ? 'B' : 'A');
    out[name] = { client: c, url, tokens, ctx };
  }
  return out as { etcd: Side; ours: Side };
}

/**
 * Tokens that have expired unused. Tokens issued together expire together; each probe
 * spends one of them (a use would keep an etcd token alive), and once a probe is refused
 * the tokens not yet spent are expired too.
 */
async function expiredToken(side: Side): Promise<string> {
  const c = side.client;
  const md = (t: string) => {
    const m = new grpc.Metadata();
    m.set('token', t);
    return m;
  };
  const fresh: string[] = [];
  for (let i = 0; i < 80; i++) fresh.push((await c.call(c.auth, 'Authenticate', { name: 'ro', password: USERS.ro })).token);
  await waitFor('tokens to expire', async () => {
    const probe = fresh.shift();
    if (!probe) throw new Error('ran out of probe tokens');
    const o = await grpcOutcome(c.call(c.kv, 'Range', { key: k('m/a') }, md(probe)));
    return o === INVALID ? true : undefined;
  }, 30000);
  return fresh[0];
}

describe('auth matrix against etcd 3.4: every RPC and gateway path x every kind of caller', () => {
  let pair: Pair;
  let shortPair: Pair;
  let sides: { etcd: Side; ours: Side };
  let short: { etcd: Side; ours: Side };
  before(async () => {
    pair = await startPair();
    sides = await setUp(pair);
    shortPair = await startPair({ authTokenTtl: 2 }, ['--auth-token-ttl', '2']);
    short = await setUp(shortPair);
    short.etcd.tokens.expired = await expiredToken(short.etcd);
    short.ours.tokens.expired = await expiredToken(short.ours);
  });
  after(async () => {
    await pair?.close();
    await shortPair?.close();
  });

  const mismatches: string[] = [];
  const check = (label: string, who: Who, row: Row | null, etcd: Outcome, ours: Outcome) => {
    const want = row?.ours?.[who] ?? etcd;
    if (ours !== want) mismatches.push(`${label} as ${who}: ours ${JSON.stringify(ours)}, want ${JSON.stringify(want)}${want !== etcd ? ` (etcd: ${JSON.stringify(etcd)}; ${row?.because})` : ''}`);
  };

  async function runRows(s: { etcd: Side; ours: Side }, whos: Who[]): Promise<void> {
    const grpcCall = (side: Side, row: Row, token: string | undefined) => {
      const md = new grpc.Metadata();
      if (token) md.set('token', token);
      const c = side.client;
      return grpcOutcome(c.call(c[row.service], row.method, row.req(side.ctx), md));
    };
    for (const row of ROWS) {
      for (const who of whos) {
        const te = who === 'none' ? undefined : s.etcd.tokens[who];
        const to = who === 'none' ? undefined : s.ours.tokens[who];
        check(`gRPC ${row.name}`, who, row, await grpcCall(s.etcd, row, te), await grpcCall(s.ours, row, to));
        if (row.path) {
          check(`HTTP ${row.path} (${row.name})`, who, row, await httpOutcome(s.etcd.url, row.path, row.req(s.etcd.ctx), te), await httpOutcome(s.ours.url, row.path, row.req(s.ours.ctx), to));
        }
      }
    }
    for (const who of whos) {
      const te = who === 'none' ? undefined : s.etcd.tokens[who];
      const to = who === 'none' ? undefined : s.ours.tokens[who];
      for (const http of [false, true]) {
        const via = http ? 'HTTP /watch' : 'gRPC Watch';
        for (const key of ['m/a', 'z/a']) {
          check(`${via} on ${key}`, who, null, await watchOutcome(s.etcd.client, s.etcd.url, key, te, http), await watchOutcome(s.ours.client, s.ours.url, key, to, http));
        }
        const ka = http ? 'HTTP /lease/keepalive' : 'gRPC LeaseKeepAlive';
        check(ka, who, null, await keepAliveOutcome(s.etcd.client, s.etcd.url, s.etcd.ctx.ownLease, te, http), await keepAliveOutcome(s.ours.client, s.ours.url, s.ours.ctx.ownLease, to, http));
      }
    }
  }

  it('no token, garbage, forged, read-only, read-write and root callers get what etcd gives them', async () => {
    await runRows(sides, ['none', 'garbage', 'forged', 'ro', 'rw', 'root']);
    assert.deepEqual(mismatches.splice(0), []);
  });

  it('an expired token gets what etcd gives it', async () => {
    await runRows(short, ['expired']);
    assert.deepEqual(mismatches.splice(0), []);
  });

  it('a token in use stays valid past --auth-token-ttl (2 s), over gRPC and HTTP, as etcd\'s simple tokens do', async () => {
    // the scenario is time passing: a token used every half second for three TTLs
    const fresh = async (side: Side) => (await side.client.call(side.client.auth, 'Authenticate', { name: 'rw', password: USERS.rw })).token as string;
    const tokens = { etcd: await fresh(short.etcd), ours: await fresh(short.ours) };
    const seen = { etcd: new Set<Outcome>(), ours: new Set<Outcome>() };
    const started = Date.now();
    while (Date.now() - started < 3 * 2000) {
      for (const side of ['etcd', 'ours'] as const) {
        const md = new grpc.Metadata();
        md.set('token', tokens[side]);
        const c = short[side].client;
        seen[side].add(await grpcOutcome(c.call(c.kv, 'Range', { key: Buffer.from('m/a') }, md)));
        seen[side].add(await httpOutcome(short[side].url, '/kv/range', { key: Buffer.from('m/a') }, tokens[side]));
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.deepEqual([...seen.etcd], ['ok'], 'etcd: never refused');
    assert.deepEqual([...seen.ours], ['ok'], 'ours: never refused');
  });

  it('auth disable, then enable: tokens issued before are refused', async () => {
    for (const side of [sides.etcd, sides.ours]) {
      const c = side.client;
      const md = new grpc.Metadata();
      md.set('token', side.tokens.root!);
      await c.call(c.auth, 'AuthDisable', {}, md);
      await c.call(c.auth, 'AuthEnable', {});
    }
    for (const who of ['ro', 'rw', 'root'] as const) {
      const outcome = async (side: Side) => {
        const md = new grpc.Metadata();
        md.set('token', side.tokens[who]!);
        return grpcOutcome(side.client.call(side.client.kv, 'Range', { key: k('m/a') }, md));
      };
      check('gRPC Range after auth disable and enable', who, null, await outcome(sides.etcd), await outcome(sides.ours));
      check('HTTP /kv/range after auth disable and enable', who, null, await httpOutcome(sides.etcd.url, '/kv/range', { key: k('m/a') }, sides.etcd.tokens[who]), await httpOutcome(sides.ours.url, '/kv/range', { key: k('m/a') }, sides.ours.tokens[who]));
    }
    assert.deepEqual(mismatches.splice(0), []);
  });
});
