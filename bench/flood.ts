// Floods: one client sends a request body that never ends (1 GiB by default)
// on each path that reads a body - a unary gRPC call past its first message,
// a gateway put, a gateway watch and a gateway keepalive with an unterminated
// JSON value - and the server's peak RSS (VmHWM) is read after each. The
// server must refuse early and hold no more than one request's worth.
//   node dist/bench/flood.js            FLOOD_BYTES=1073741824
import * as fs from 'node:fs';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { spawnAdapter } from '../test/helpers/spawn';

const FLOOD_BYTES = Number(process.env.FLOOD_BYTES ?? 2 ** 30);
const CHUNK = 64 * 1024;

function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

interface Flooded {
  /** Bytes the client got onto the wire before the server stopped it (or FLOOD_BYTES). */
  sent: number;
  answer: string;
  ms: number;
}

/** gRPC: a unary call with a small first message, then more bytes forever: `second` is where they start. */
function grpcFlood(url: string, second: Buffer): Promise<Flooded> {
  return new Promise((resolve) => {
    const started = performance.now();
    const session = http2.connect(url);
    session.on('error', () => undefined);
    const req = session.request({ ':method': 'POST', ':path': '/etcdserverpb.KV/Range', 'content-type': 'application/grpc', te: 'trailers' });
    let sent = 0;
    let answer = 'none';
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      session.destroy();
      resolve({ sent, answer, ms: performance.now() - started });
    };
    req.on('trailers', (h) => (answer = `grpc-status ${h['grpc-status']}: ${decodeURIComponent(String(h['grpc-message'] ?? ''))}`));
    req.on('response', (h) => {
      if (h['grpc-status'] !== undefined) answer = `grpc-status ${h['grpc-status']}: ${decodeURIComponent(String(h['grpc-message'] ?? ''))}`;
    });
    req.on('error', () => undefined);
    req.on('data', () => undefined);
    req.on('close', finish);
    // message 1: a Range of key "a" (declared length 3); then bytes that never end a message
    req.write(Buffer.from([0, 0, 0, 0, 3, 0x0a, 0x01, 0x61]));
    req.write(second);
    const chunk = Buffer.alloc(CHUNK, 0x01);
    const pump = () => {
      while (!done && !req.destroyed && sent < FLOOD_BYTES) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      if (sent >= FLOOD_BYTES) req.end();
    };
    pump();
  });
}

/** HTTP/1.1: a body that starts `head` and then repeats `fill` forever, from a client that never stops. */
function httpFlood(port: number, path: string, head: string, fill: string): Promise<Flooded> {
  return new Promise((resolve) => {
    const started = performance.now();
    const s = net.connect(port, '127.0.0.1');
    let sent = 0;
    let got = '';
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      s.destroy();
      resolve({ sent, answer: got.split('\r\n')[0] + ' ' + (got.split('\r\n\r\n')[1] ?? '').slice(0, 120), ms: performance.now() - started });
    };
    s.on('data', (d) => (got += d));
    s.on('error', finish);
    s.on('close', finish);
    s.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n`);
    const first = Buffer.from(head);
    s.write(`${first.length.toString(16)}\r\n${head}\r\n`);
    const payload = fill.repeat(Math.ceil(CHUNK / fill.length)).slice(0, CHUNK);
    const chunk = Buffer.from(`${payload.length.toString(16)}\r\n${payload}\r\n`);
    const pump = () => {
      while (!done && sent < FLOOD_BYTES) {
        sent += payload.length;
        if (!s.write(chunk)) return void s.once('drain', pump);
      }
      finish();
    };
    pump();
  });
}

async function main(): Promise<void> {
  const server = await spawnAdapter(['--backend', 'memory']);
  const pid = server.child.pid!;
  const port = Number(new URL(server.url).port);
  try {
    // a few requests first, so that the baseline includes a warmed-up server
    for (let i = 0; i < 50; i++) await (await fetch(`${server.url}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key: 'YQ==', value: 'Yg==' }) })).text();
    const rows = [`| path | sent before the server stopped it | answer | peak RSS after (MiB) |`, '|---|---:|---|---:|'];
    rows.push(`| (baseline) | | | ${peakRssMiB(pid).toFixed(0)} |`);
    const floods: [string, () => Promise<Flooded>][] = [
      ['gRPC unary (KV.Range): a second message declaring 16 MiB', () => grpcFlood(server.url, Buffer.alloc(0))],
      ['gRPC unary (KV.Range): a second message within the limit', () => grpcFlood(server.url, Buffer.from([0, 0, 0x1f, 0xff, 0xff]))],
      ['gateway /v3/kv/put', () => httpFlood(port, '/v3/kv/put', '{"key":"YQ==","value":"', 'QUFB')],
      ['gateway /v3/watch, unterminated value', () => httpFlood(port, '/v3/watch', '{"create_request":{"key":"', 'QUFB')],
      ['gateway /v3/lease/keepalive, unterminated value', () => httpFlood(port, '/v3/lease/keepalive', '{"ID":"', '1111')],
    ];
    for (const [name, flood] of floods) {
      const r = await flood();
      rows.push(`| ${name} | ${(r.sent / 2 ** 20).toFixed(1)} MiB of ${(FLOOD_BYTES / 2 ** 20).toFixed(0)} | ${r.answer.replace(/\|/g, '/')} | ${peakRssMiB(pid).toFixed(0)} |`);
    }
    const ok = await fetch(`${server.url}/v3/kv/range`, { method: 'POST', body: '{"key":"YQ=="}' });
    console.log(`### Floods: one client, ${(FLOOD_BYTES / 2 ** 30).toFixed(2)} GiB that never ends a request, per path (memory backend)\n`);
    console.log(rows.join('\n'));
    console.log(`\nStill serving afterwards: ${ok.status === 200 ? 'yes' : `no (${ok.status})`}`);
  } finally {
    await server.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
