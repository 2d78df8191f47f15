// Request bodies on the HTTP gateway: never held beyond one request's worth,
// split in linear time, and refused with an answer (not a connection reset)
// while the client is still sending. Bodies that fit are compared with etcd in
// gateway-differential.test.ts.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import { JsonSplitter } from '../src/gateway/json-stream';
import { startServer, type RunningServer } from '../src/index';

interface Flooded {
  status?: number;
  body: string;
  /** The answer came while the request body was still being sent. */
  answeredWhileSending: boolean;
  /** Bytes sent before the answer (or in all). */
  sent: number;
  error?: string;
}

/**
 * POSTs `head`, then `fill` over and over (never finishing the JSON) until the
 * server answers or `capBytes` were sent.
 */
function flood(url: string, path: string, head: string, fill: string, capBytes: number): Promise<Flooded> {
  return new Promise((resolve) => {
    const out: Flooded = { body: '', answeredWhileSending: false, sent: 0 };
    let sending = true;
    const req = http.request(`${url}${path}`, { method: 'POST', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
      out.status = res.statusCode;
      out.answeredWhileSending = sending;
      sending = false;
      res.setEncoding('utf8');
      res.on('data', (d: string) => (out.body += d));
      res.on('end', () => {
        req.destroy();
        resolve(out);
      });
      res.on('error', () => resolve(out));
    });
    req.on('error', (err) => {
      out.error = (err as NodeJS.ErrnoException).code ?? err.message;
      resolve(out);
    });
    const chunk = Buffer.from(fill.repeat(Math.ceil((64 * 1024) / fill.length)));
    req.write(head);
    const pump = () => {
      while (sending) {
        if (out.sent >= capBytes) {
          sending = false;
          req.end();
          return;
        }
        out.sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
    };
    pump();
  });
}

async function post(url: string, path: string, body: string): Promise<{ status: number; json: any }> {
  const res = await fetch(`${url}${path}`, { method: 'POST', body });
  return { status: res.status, json: await res.json() };
}

describe('gateway request bodies', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({ maxRequestBytes: 64 * 1024 });
  });
  after(async () => {
    await server?.close();
  });

  it('an unterminated watch message is refused once it passes the limit, while the client is still sending', { timeout: 120_000 }, async () => {
    const r = await flood(server.url, '/v3/watch', '{"create_request":{"key":"', 'QUFB', 256 << 20);
    assert.equal(r.error, undefined, 'an answer, not a reset');
    assert.ok(r.answeredWhileSending, `answered after ${r.sent} bytes, before the client stopped`);
    assert.equal(r.status, 429);
    assert.match(JSON.parse(r.body).error, /^etcd-adapter: request body larger than \d+ bytes$/);
    assert.equal((await post(server.url, '/v3/kv/range', '{"key":"YQ=="}')).status, 200, 'still serving');
  });

  it('an unterminated keepalive message likewise', { timeout: 120_000 }, async () => {
    const r = await flood(server.url, '/v3/lease/keepalive', '{"ID":"', '1111', 256 << 20);
    assert.ok(r.answeredWhileSending);
    assert.equal(r.status, 429);
  });

  it('an over-long unary body gets its answer while the client is still sending', { timeout: 120_000 }, async () => {
    const r = await flood(server.url, '/v3/kv/put', '{"key":"YQ==","value":"', 'QUFB', 32 << 20);
    assert.equal(r.error, undefined, 'an answer, not a reset');
    assert.ok(r.answeredWhileSending);
    assert.equal(r.status, 429);
    assert.equal(JSON.parse(r.body).code, 8);
  });

  it('a client that goes on sending long after the answer is disconnected', { timeout: 120_000 }, async () => {
    // HTTP clients stop sending when an answer comes early; this raw one never does. The
    // server reads and drops 64 MiB after the answer, then closes the connection.
    const port = new URL(server.url).port;
    const r = await new Promise<{ answered: boolean; closed: boolean; sent: number }>((resolve) => {
      const s = net.connect(Number(port), '127.0.0.1');
      let got = '';
      let sent = 0;
      const done = (closed: boolean) => resolve({ answered: got.startsWith('HTTP/1.1 429'), closed, sent });
      s.on('data', (d) => (got += d));
      s.on('error', () => done(true));
      s.on('close', () => done(true));
      s.write('POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
      const payload = 'A'.repeat(256 * 1024);
      const chunk = Buffer.from(`${payload.length.toString(16)}\r\n${payload}\r\n`);
      const pump = () => {
        while (sent < 1 << 30) {
          sent += chunk.length;
          if (!s.write(chunk)) return void s.once('drain', pump);
        }
        done(false);
        s.destroy();
      };
      pump();
    });
    assert.ok(r.answered, 'the answer came first');
    assert.ok(r.closed, `the server closed the connection (after ${r.sent} bytes)`);
  });

  it('a watch whose first message is JSON of the wrong type is answered and ended', async () => {
    for (const [body, message] of [
      ['{"create_request":{"key":5}}', 'json: cannot unmarshal number into Go value of type []uint8'],
      ['[1,2]', 'json: cannot unmarshal array into Go value of type map[string]json.RawMessage'],
    ]) {
      const { status, json } = await post(server.url, '/v3/watch', body);
      assert.equal(status, 400, body);
      assert.deepEqual(json, { error: message, message, code: 3 });
    }
  });
});

describe('JsonSplitter', () => {
  const split = (chunks: string[], max = 1000) => {
    const s = new JsonSplitter(max);
    const out: string[] = [];
    for (const c of chunks) out.push(...s.push(c));
    return { out, rest: s.rest() };
  };

  it('splits values across chunk boundaries, strings and escapes included', () => {
    const values = ['{"a":"}{"}', '{"b":"\\"}"}', '[1,{"c":[2]}]', '{}'];
    const text = values.join(' \n');
    for (let cut = 1; cut < text.length; cut++) {
      assert.deepEqual(split([text.slice(0, cut), text.slice(cut)]).out, values, `cut at ${cut}`);
    }
    assert.deepEqual(split([...text]).out, values, 'one character at a time');
  });

  it('keeps an unfinished value for the end of the body', () => {
    assert.deepEqual(split(['{"a":1} {"b":', '2']), { out: ['{"a":1}'], rest: '{"b":2' });
  });

  it('hands a bare value to the parser', () => {
    assert.deepEqual(split(['  nonsense']).out, ['nonsense']);
  });

  it('refuses a value longer than the limit as soon as it passes it', () => {
    const s = new JsonSplitter(10);
    assert.deepEqual(s.push('{"a":1}'), ['{"a":1}']);
    s.push('{"abc":');
    assert.throws(() => s.push('"defgh"'), /request body larger than 10 bytes/);
  });
});
