// What real clients do over the wire, against etcd 3.4 and this server, each
// with a TLS and a plain listener on one member:
// - etcdctl's per-endpoint commands with `http://`/`https://` endpoints and
//   their --cluster forms: etcd's Go client 3.4 sends `:authority` with the
//   scheme for those (h2-authority.ts);
// - curl negotiating HTTP/2 over TLS with the JSON gateway: the same JSON,
//   errors and streaming watches as over HTTP/1.1 (h2-gateway.ts).
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http2 from 'node:http2';
import * as os from 'node:os';
import * as path from 'node:path';
import { makeTestCa, type TestCa } from './helpers/certs';
import { etcdctl } from './helpers/etcdctl';
import { normalize } from './helpers/normalize';
import { freePort, waitFor } from './helpers/ports';
import { etcdAvailable } from './helpers/real-etcd';
import { BIN } from './helpers/spawn';
import { serviceDefinition } from '../src/proto';

interface Member {
  https: string;
  http: string;
  stop(): Promise<void>;
}

async function startMember(ca: TestCa, kind: 'etcd' | 'ours'): Promise<Member> {
  const [tlsPort, plainPort, peerPort] = [await freePort(), await freePort(), await freePort()];
  const https = `https://127.0.0.1:${tlsPort}`;
  const http = `http://127.0.0.1:${plainPort}`;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-adapter-transport-'));
  const tls = ['--cert-file', ca.serverCert, '--key-file', ca.serverKey];
  const urls = `${https},${http}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const child: ChildProcess =
    kind === 'etcd'
      ? spawn('etcd', ['--name', 'ref', '--data-dir', dataDir, '--listen-client-urls', urls, '--advertise-client-urls', urls, '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `ref=${peer}`, '--logger', 'zap', '--log-level', 'error', ...tls], { stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn(process.execPath, [BIN, '--backend', 'memory', '--listen-client-urls', urls, ...tls], { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: process.env.PATH } });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  await waitFor(`${kind} to serve`, async () => {
    if (child.exitCode !== null) throw new Error(`${kind} exited: ${stderr}`);
    return (await etcdctl(http.slice('http://'.length), ['endpoint', 'health'])).code === 0 ? true : undefined;
  });
  return {
    https,
    http,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** etcdctl's table lines with the member's URLs named and the measurements left out, sorted. */
function shape(stdout: string, m: Member): string[] {
  return stdout
    .replaceAll(m.https, 'HTTPS')
    .replaceAll(m.http, 'HTTP')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => l.replace(/: successfully committed proposal: took = .*$/, '').split(',')[0])
    .sort();
}

/**
 * Maintenance.Status calls on one HTTP/2 connection with `:authority` set to
 * the URL, as etcd's Go client 3.4 sends it: half one after another, half at
 * once. Returns each call's grpc-status.
 */
async function statusCalls(ca: TestCa, url: string, n: number): Promise<string[]> {
  const session = http2.connect(url, { ca: fs.readFileSync(ca.ca) });
  session.on('error', () => undefined);
  const call = () =>
    new Promise<string>((resolve, reject) => {
      const req = session.request({ ':method': 'POST', ':path': '/etcdserverpb.Maintenance/Status', ':authority': url, 'content-type': 'application/grpc', te: 'trailers' });
      let status = '';
      req.on('response', (h) => (status = String(h['grpc-status'] ?? status)));
      req.on('trailers', (t) => (status = String(t['grpc-status'] ?? status)));
      req.on('data', () => undefined);
      req.on('end', () => resolve(status || 'none'));
      req.on('error', (err) => reject(err));
      req.end(Buffer.alloc(5)); // one empty message
    });
  try {
    const out: string[] = [];
    for (let i = 0; i < n / 2; i++) out.push(await call());
    out.push(...(await Promise.all(Array.from({ length: n - out.length }, call))));
    return out;
  } finally {
    session.close();
  }
}

/** One unary gRPC call over a fresh HTTP/2 connection: its headers and trailers, all of them, as sent. */
async function unaryHeaders(ca: TestCa, url: string, method: string, body: Buffer): Promise<{ headers: http2.IncomingHttpHeaders; trailers?: http2.IncomingHttpHeaders }> {
  const session = http2.connect(url, { ca: fs.readFileSync(ca.ca) });
  session.on('error', () => undefined);
  try {
    return await new Promise((resolve, reject) => {
      const req = session.request({ ':method': 'POST', ':path': method, 'content-type': 'application/grpc', te: 'trailers' });
      const out: { headers: http2.IncomingHttpHeaders; trailers?: http2.IncomingHttpHeaders } = { headers: {} };
      req.on('response', (h) => (out.headers = { ...h }));
      req.on('trailers', (t) => (out.trailers = { ...t }));
      req.on('data', () => undefined);
      req.on('end', () => resolve(out));
      req.on('error', reject);
      const frame = Buffer.alloc(5 + body.length);
      frame.writeUInt32BE(body.length, 1);
      body.copy(frame, 5);
      req.end(frame);
    });
  } finally {
    session.close();
  }
}

interface CurlResult {
  version: string;
  status: number;
  type: string;
  body: string;
}

function curl(ca: TestCa, url: string, body?: string): Promise<CurlResult> {
  return new Promise((resolve, reject) => {
    const args = ['-s', '--http2', '--cacert', ca.ca, '-w', '\n%{http_version} %{http_code} %{content_type}', url];
    if (body !== undefined) args.push('--data-binary', body);
    const child = spawn('curl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.once('error', reject);
    child.once('close', () => {
      const cut = out.lastIndexOf('\n');
      const [version, status, type] = out.slice(cut + 1).split(' ');
      resolve({ version, status: Number(status), type: (type ?? '').split(';')[0], body: out.slice(0, cut) });
    });
  });
}

/** A JSON body without what must differ between two servers; a text body as it is. */
function comparable(body: string, extra: string[] = []): unknown {
  try {
    return normalize(JSON.parse(body), extra);
  } catch {
    return body;
  }
}

/** A watch over curl (HTTP/2): its lines as they come; stop() ends curl. */
function curlWatch(ca: TestCa, url: string, request: object) {
  const child = spawn('curl', ['-sN', '--http2', '--cacert', ca.ca, `${url}/v3/watch`, '--data-binary', JSON.stringify(request)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  return {
    lines: () => out.split('\n').filter((l) => l.trim()),
    stop: () => {
      child.kill('SIGKILL');
      return new Promise((resolve) => child.once('close', resolve));
    },
  };
}

describe('transports real clients use, against etcd 3.4', { skip: !etcdAvailable() && 'etcd is not installed' }, () => {
  let ca: TestCa;
  let etcd: Member;
  let ours: Member;
  before(async () => {
    ca = makeTestCa();
    // one at a time, so that `after` stops whichever started if the other fails
    etcd = await startMember(ca, 'etcd');
    ours = await startMember(ca, 'ours');
  });
  after(async () => {
    await Promise.all([etcd?.stop(), ours?.stop()]);
    ca?.remove();
  });

  const commands = [
    ['endpoint', 'status'],
    ['endpoint', 'hashkv'],
    ['defrag'],
    ['endpoint', 'status', '--cluster'],
    ['endpoint', 'hashkv', '--cluster'],
    ['endpoint', 'health', '--cluster'],
    ['defrag', '--cluster'],
  ];
  for (const scheme of ['http', 'https'] as const) {
    it(`etcdctl's per-endpoint commands with ${scheme}:// endpoints, and their --cluster forms`, async () => {
      for (const args of commands) {
        const run = (m: Member) => etcdctl(m[scheme], ['--cacert', ca.ca, ...args]);
        const [e, o] = await Promise.all([run(etcd), run(ours)]);
        assert.equal(e.code, 0, `etcd: ${args.join(' ')}: ${e.stderr}`);
        assert.equal(o.code, 0, `ours: ${args.join(' ')}: ${o.stderr}`);
        assert.deepEqual(shape(o.stdout, ours), shape(e.stdout, etcd), args.join(' '));
      }
    });
  }

  it('a connection whose authority has a scheme keeps working for every later request (HPACK table reused), plain and TLS', async () => {
    for (const m of [etcd, ours]) {
      for (const url of [m.http, m.https]) {
        const statuses = await statusCalls(ca, url, 6);
        assert.deepEqual(statuses, ['0', '0', '0', '0', '0', '0'], `${m === etcd ? 'etcd' : 'ours'} at ${url}`);
      }
    }
  });

  it('a unary call is answered with the headers and trailers etcd sends: no more (clients pay for each), the same status texts', async () => {
    const kv = serviceDefinition('etcdserverpb.KV');
    const calls: [string, Buffer][] = [
      ['an answer', kv.Range.requestSerialize({ key: Buffer.from('no-such-key') })],
      ['an error (a future revision)', kv.Range.requestSerialize({ key: Buffer.from('k'), revision: 1_000_000 })],
      ['an error of a write (an empty key)', kv.Put.requestSerialize({ key: Buffer.alloc(0), value: Buffer.from('v') })],
    ];
    for (const [name, body] of calls) {
      const method = name.includes('write') ? '/etcdserverpb.KV/Put' : '/etcdserverpb.KV/Range';
      const [e, o] = await Promise.all([unaryHeaders(ca, etcd.http, method, body), unaryHeaders(ca, ours.http, method, body)]);
      assert.deepEqual(o, e, name);
    }
  });

  it('curl over HTTP/2 (TLS) gets the JSON gateway: the same answers as from etcd', async () => {
    const calls: [string, string | undefined, string[]?][] = [
      ['/version', undefined, ['etcdserver', 'etcdcluster']],
      ['/health', undefined, ['reason']], // etcd 3.5 adds a reason, as this server does
      ['/v3/kv/put', JSON.stringify({ key: 'aDI=', value: 'eA==' })],
      ['/v3/kv/range', JSON.stringify({ key: 'aDI=' })],
      ['/v3/kv/range', '{"key":'],
      ['/v3/kv/range', '{"key":5}'],
      ['/v3/kv/deleterange', JSON.stringify({ key: 'aDI=', prev_kv: true })],
      ['/v3/no/such/path', '{}'],
      ['/v3/kv/range', undefined], // GET: 405
    ];
    for (const [p, body, extra] of calls) {
      const [e, o] = await Promise.all([curl(ca, etcd.https + p, body), curl(ca, ours.https + p, body)]);
      assert.equal(e.version, '2', `etcd answered ${p} over HTTP/2`);
      assert.equal(o.version, '2', `ours answered ${p} over HTTP/2`);
      assert.equal(o.status, e.status, p);
      assert.equal(o.type, e.type, p);
      assert.deepEqual(comparable(o.body, extra), comparable(e.body, extra), p);
    }
  });

  it('a watch over HTTP/2 streams line by line, as etcd streams it', async () => {
    const lines: Record<string, string[]> = {};
    for (const [name, m] of [['etcd', etcd], ['ours', ours]] as const) {
      const w = curlWatch(ca, m.https, { create_request: { key: 'dw==', prev_kv: true } });
      await waitFor(`${name}: the watch is created`, async () => (w.lines().length >= 1 ? true : undefined));
      for (const v of ['MQ==', 'Mg==']) assert.equal((await curl(ca, `${m.https}/v3/kv/put`, JSON.stringify({ key: 'dw==', value: v }))).status, 200);
      await waitFor(`${name}: both events arrive`, async () => (w.lines().length >= 3 ? true : undefined));
      await w.stop();
      lines[name] = w.lines();
    }
    // the servers' revisions differ by what earlier tests wrote: compare each line without them
    const strip = (l: string) => normalize(JSON.parse(l), ['revision', 'create_revision', 'mod_revision']);
    assert.deepEqual(lines.ours.map(strip), lines.etcd.map(strip));
  });
});
