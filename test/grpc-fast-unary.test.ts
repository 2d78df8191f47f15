// The short road for unary calls (src/server/grpc-fast-unary.ts) must answer
// as grpc-js does (status, text, body, deadline, size limit), with etcd's
// headers (test/transport-differential.test.ts compares those with etcd's). Differential: the same handlers behind two
// servers, one plain grpc-js and one with the short road installed, and the
// same calls to both, from grpc-js clients and from a raw HTTP/2 client for
// what clients never send (no message, two messages, a bad grpc-timeout).
// It also pins that the short road is found at all with the grpc-js we ship.
import { describe, it, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { grpcMessage, installFastUnary, UnaryBody, type FastMethod } from '../src/server/grpc-fast-unary';
import { callMeta } from '../src/server/grpc-server';
import { EtcdError, toStatus } from '../src/errors';

const identity = (b: Buffer) => b;
const MAX = 1024;
const PATH = '/test.Echo/Echo';
const service: grpc.ServiceDefinition = {
  Echo: { path: PATH, requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
};

/** The handler behind both servers: echoes, fails with an etcd error, waits, or reports the token. */
async function handler(req: unknown, meta: { token?: string }): Promise<unknown> {
  const text = (req as Buffer).toString();
  if (text === 'fail') throw new EtcdError(grpc.status.FAILED_PRECONDITION, 'etcdserver: a test failure, with spaces & %');
  if (text === 'crash') throw new Error('boom');
  if (text === 'slow') await new Promise((r) => setTimeout(r, 300));
  if (text === 'token') return Buffer.from(String(meta.token));
  return Buffer.from(`echo:${text}`);
}

interface Running {
  port: number;
  installed: number;
  close(): void;
}

/** A grpc-js server fed through a connection injector, as ours is; with or without the short road. */
async function serve(fast: boolean): Promise<Running> {
  const server = new grpc.Server({ 'grpc.max_receive_message_length': MAX });
  server.addService(service, {
    Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      handler(call.request, callMeta(call.metadata)).then(
        (res) => cb(null, res as Buffer),
        (err) => cb(toStatus(err)),
      );
    },
  });
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const methods = new Map<string, FastMethod>([[PATH, { decode: identity, encode: (r) => r as Buffer, handler }]]);
  const installed = fast ? installFastUnary(server, methods, MAX) : 0;
  const tcp = net.createServer((socket) => injector.injectConnection(socket));
  const port = await new Promise<number>((resolve) => tcp.listen(0, '127.0.0.1', () => resolve((tcp.address() as net.AddressInfo).port)));
  return {
    port,
    installed,
    close: () => {
      tcp.close();
      server.forceShutdown();
    },
  };
}

interface Outcome {
  code: number;
  details?: string;
  value?: string;
}

function call(port: number, body: Buffer, opts: { token?: string; deadlineMs?: number; gzip?: boolean } = {}): Promise<Outcome> {
  const Client = grpc.makeGenericClientConstructor(service, 'Echo');
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), opts.gzip ? { 'grpc.default_compression_algorithm': 2 } : {});
  const md = new grpc.Metadata();
  if (opts.token) md.set('token', opts.token);
  const options = opts.deadlineMs ? { deadline: Date.now() + opts.deadlineMs } : {};
  return new Promise((resolve) => {
    (client as any).Echo(body, md, options, (err: grpc.ServiceError | null, res?: Buffer) => {
      client.close();
      resolve(err ? { code: err.code, details: err.details } : { code: 0, value: res!.toString() });
    });
  });
}

interface RawAnswer {
  status?: string;
  /** The status text as clients read it (grpc-js decodes it with decodeURI). */
  message?: string;
  body: string;
  /** As sent: the content type, the status text before decoding, and every header name. */
  wire: { contentType?: string; message?: string; names: string[] };
}

/** A raw HTTP/2 unary request: what it got, decoded and as sent. */
function raw(port: number, frames: Buffer, extra: http2.OutgoingHttpHeaders = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const req = session.request({ ':method': 'POST', ':path': PATH, 'content-type': 'application/grpc', te: 'trailers', ...extra });
    let status: string | undefined;
    let message: string | undefined;
    let contentType: string | undefined;
    const names: string[] = [];
    const chunks: Buffer[] = [];
    const take = (h: http2.IncomingHttpHeaders) => {
      names.push(...Object.keys(h));
      if (h['grpc-status'] !== undefined) status = String(h['grpc-status']);
      if (h['grpc-message'] !== undefined) message = String(h['grpc-message']);
      if (h['content-type'] !== undefined) contentType = String(h['content-type']);
    };
    req.on('response', take);
    req.on('trailers', take);
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('close', () => {
      session.close();
      resolve({ status, message: message === undefined ? undefined : decodeURI(message), body: Buffer.concat(chunks).toString('hex'), wire: { contentType, message, names: names.sort() } });
    });
    req.end(frames);
  });
}

/**
 * A raw HTTP/2 request that never ends: `first`, then filler bytes, 16 KiB at
 * a time, until the server answers (or `capBytes` were sent, then it ends).
 * grpc-js answers as soon as the filler makes a second message or declares
 * one over the limit; the server must never wait for the end of a flood.
 */
function flood(port: number, first: Buffer, fill: number, capBytes = 64 << 20): Promise<{ status?: string; message?: string; answeredWhileOpen: boolean }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const req = session.request({ ':method': 'POST', ':path': PATH, 'content-type': 'application/grpc', te: 'trailers' });
    let status: string | undefined;
    let message: string | undefined;
    let sent = 0;
    let ended = false;
    let answeredWhileOpen = false;
    const take = (h: http2.IncomingHttpHeaders) => {
      if (h['grpc-status'] !== undefined) {
        status = String(h['grpc-status']);
        answeredWhileOpen = !ended;
      }
      if (h['grpc-message'] !== undefined) message = decodeURI(String(h['grpc-message']));
      // Answered: stop sending (a server may also have reset the stream already).
      if (status !== undefined) setImmediate(() => req.close());
    };
    req.on('response', take);
    req.on('trailers', take);
    req.on('error', () => undefined);
    req.on('data', () => undefined);
    req.on('close', () => {
      session.close();
      resolve({ status, message, answeredWhileOpen });
    });
    const chunk = Buffer.alloc(16 * 1024, fill);
    req.write(first);
    const pump = () => {
      while (status === undefined && !req.destroyed && !ended) {
        if (sent >= capBytes) {
          ended = true;
          req.end();
          return;
        }
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
    };
    pump();
  });
}

const frame = (text: string) => {
  const body = Buffer.from(text);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
};

describe('short road for unary gRPC calls', () => {
  let plain: Running;
  let fast: Running;
  before(async () => {
    plain = await serve(false);
    fast = await serve(true);
  });
  after(() => {
    plain.close();
    fast.close();
  });

  it('is installed on the HTTP/2 server grpc-js made (a private field of grpc-js)', () => {
    assert.equal(fast.installed, 1);
  });

  const cases: [string, Buffer, Parameters<typeof call>[2]][] = [
    ['an answer', Buffer.from('hello'), {}],
    ['an empty message', Buffer.alloc(0), {}],
    ['an etcd error (status text percent-encoded on the wire)', Buffer.from('fail'), {}],
    ['an unexpected error', Buffer.from('crash'), {}],
    ['metadata: the auth token', Buffer.from('token'), { token: 'tok-1' }],
    ['a message over the size limit', Buffer.alloc(MAX + 1, 0x61), {}],
    ['a compressed request (left to grpc-js)', Buffer.from('squeezed'), { gzip: true }],
  ];
  for (const [name, body, opts] of cases) {
    it(`answers as grpc-js does: ${name}`, async () => {
      const want = await call(plain.port, body, opts);
      const got = await call(fast.port, body, opts);
      assert.deepEqual(got, want);
    });
  }

  const rawCases: [string, Buffer, http2.OutgoingHttpHeaders][] = [
    ['a well-formed request', frame('raw'), {}],
    ['no message at all', Buffer.alloc(0), {}],
    ['two messages', Buffer.concat([frame('a'), frame('b')]), {}],
    ['a bad grpc-timeout', frame('x'), { 'grpc-timeout': 'soon' }],
    ['a message cut short', frame('whole').subarray(0, 7), {}],
    ['a second message cut short', Buffer.concat([frame('a'), frame('bb').subarray(0, 6)]), {}],
    ['the compressed flag under the identity encoding', Buffer.concat([Buffer.from([1]), frame('flagged').subarray(1)]), {}],
    ['a deadline that passes first', frame('slow'), { 'grpc-timeout': '50m' }],
    ['a deadline long enough', frame('slow'), { 'grpc-timeout': '5S' }],
    ['a declared length over the limit', Buffer.from([0, 0, 0, 0x10, 0]), {}],
  ];
  it('a client deadline that passes first ends the call on both', async () => {
    const want = await call(plain.port, Buffer.from('slow'), { deadlineMs: 50 });
    const got = await call(fast.port, Buffer.from('slow'), { deadlineMs: 50 });
    assert.equal(want.code, grpc.status.DEADLINE_EXCEEDED);
    assert.equal(got.code, want.code);
  });

  const floods: [string, number][] = [
    ['a flood after the message that declares a length over the limit', 0x7f],
    ['a flood after the message that makes a second message', 0],
  ];
  for (const [name, fill] of floods) {
    it(`answers as grpc-js does, without waiting for the end: ${name}`, async () => {
      const want = await flood(plain.port, frame('a'), fill);
      const got = await flood(fast.port, frame('a'), fill);
      assert.ok(want.answeredWhileOpen, 'grpc-js answers while the request is still open');
      assert.deepEqual(got, want);
    });
  }

  for (const [name, frames, extra] of rawCases) {
    it(`answers as grpc-js does on the wire, with etcd's headers: ${name}`, async () => {
      const { wire: plainWire, ...want } = await raw(plain.port, frames, extra);
      const { wire, ...got } = await raw(fast.port, frames, extra);
      // a success says nothing more than its status, as etcd (grpc-js says "OK")
      assert.deepEqual(got, want.status === '0' ? { ...want, message: '' } : want);
      assert.equal(plainWire.contentType, 'application/grpc+proto');
      // etcd's (grpc-go's) headers: no grpc-accept-encoding, grpc-encoding or date
      assert.equal(wire.contentType, 'application/grpc');
      assert.deepEqual(wire.names.filter((n) => !['grpc-status', 'grpc-message', ':status', 'content-type'].includes(n)), []);
      if (got.message !== undefined) assert.equal(wire.message, grpcMessage(got.message));
    });
  }

  it('status texts go out percent-encoded as grpc-go encodes them: bytes outside printable ASCII and % only', () => {
    assert.equal(grpcMessage('etcdserver: key not found'), 'etcdserver: key not found');
    assert.equal(grpcMessage('100% sure \u00e9\n'), '100%25 sure %C3%A9%0A');
    for (const text of ['a b%c', 'caf\u00e9 \u{1f600}', 'tab\there', '%41']) assert.equal(decodeURI(grpcMessage(text)), text);
  });
});

describe('a unary request body read as its bytes arrive', () => {
  /** Feeds `bytes` cut at `cuts`; what the reader said and kept. */
  const read = (bytes: Buffer, cuts: number[], max = 64) => {
    const body = new UnaryBody(max);
    let verdict: string | null = null;
    let at = 0;
    for (const cut of [...cuts, bytes.length]) {
      verdict ??= body.push(bytes.subarray(at, cut));
      at = cut;
    }
    return { verdict, messages: body.messages, declared: body.declared, first: body.messages ? body.first().toString() : undefined };
  };
  const whole = Buffer.concat([frame('hello'), frame('x')]);

  it('reads the same wherever the chunks are cut, the 5-byte prefix included', () => {
    const want = read(whole, []);
    assert.deepEqual(want, { verdict: 'second', messages: 2, declared: 1, first: 'hello' });
    for (let a = 0; a <= whole.length; a++) {
      for (let b = a; b <= whole.length; b++) assert.deepEqual(read(whole, [a, b]), want, `cut at ${a} and ${b}`);
    }
    assert.deepEqual(read(whole, Array.from({ length: whole.length }, (_, i) => i)), want, 'one byte at a time');
  });

  it('says too large as soon as a prefix declares more than the limit, however the prefix arrives', () => {
    const big = Buffer.from([0, 0, 0, 0, 65]);
    for (let a = 0; a <= 5; a++) assert.deepEqual(read(big, [a]), { verdict: 'too-large', messages: 0, declared: 65, first: undefined }, `cut at ${a}`);
  });
});
