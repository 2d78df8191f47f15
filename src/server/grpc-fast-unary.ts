// A shorter road for unary calls. Per unary call grpc-js spends more CPU than
// the etcd handler behind it: an interceptor chain, call and metadata objects,
// a stream decoder, a deadline timer object, several promise hops. This takes
// the HTTP/2 streams of our unary methods straight from the HTTP/2 server that
// grpc-js made for our connections and answers them on the wire as grpc-js
// does: the same response headers, message framing, trailers, status texts,
// message size limit and deadline. Everything else (streaming methods,
// compressed requests, unknown paths, wrong content types) goes to grpc-js
// untouched.
//
// grpc-js keeps its HTTP/2 servers in a private field: if it is not found,
// nothing is installed and every call goes through grpc-js as before.
// test/grpc-fast-unary.test.ts fails if that happens.
import * as http2 from 'node:http2';
import type * as grpc from '@grpc/grpc-js';
import type { CallMeta } from '../api/context';
import { toStatus } from '../errors';

export interface FastMethod {
  /** Request bytes to the request object (grpc-js's requestDeserialize). */
  decode(buf: Buffer): unknown;
  /** Response object to bytes (grpc-js's responseSerialize). */
  encode(res: unknown): Buffer;
  handler(req: unknown, meta: CallMeta): Promise<unknown>;
}

type StreamListener = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number) => void;

const RESPONSE_HEADERS = {
  ':status': 200,
  'content-type': 'application/grpc+proto',
  'grpc-accept-encoding': 'identity,deflate,gzip',
  'grpc-encoding': 'identity',
};
const OK_TRAILERS = { 'grpc-status': '0', 'grpc-message': 'OK' };
const DEADLINE = /^(\d{1,8})([HMSmun])$/;
const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };
const STATUS_INTERNAL = 13;
const STATUS_UNIMPLEMENTED = 12;
const STATUS_RESOURCE_EXHAUSTED = 8;
const STATUS_DEADLINE_EXCEEDED = 4;

/** The HTTP/2 servers grpc-js created (a private field, see above). */
function http2ServersOf(server: grpc.Server): http2.Http2Server[] {
  const servers = (server as unknown as { http2Servers?: Map<http2.Http2Server, unknown> }).http2Servers;
  return servers instanceof Map ? [...servers.keys()] : [];
}

/**
 * Puts the short road in front of grpc-js on every HTTP/2 server it has made
 * so far (call after createConnectionInjector). Returns how many it took over.
 */
export function installFastUnary(server: grpc.Server, methods: Map<string, FastMethod>, maxReceiveBytes: number): number {
  let installed = 0;
  for (const h2 of http2ServersOf(server)) {
    const original = h2.listeners('stream') as StreamListener[];
    if (original.length !== 1) continue;
    h2.removeAllListeners('stream');
    h2.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number) => {
      const method = methods.get(headers[':path'] ?? '');
      const encoding = headers['grpc-encoding'];
      const type = headers['content-type'];
      if (!method || (encoding !== undefined && encoding !== 'identity') || typeof type !== 'string' || !type.startsWith('application/grpc')) {
        original[0].call(h2, stream, headers, flags);
        return;
      }
      serveUnary(stream, headers, method, maxReceiveBytes);
    });
    installed++;
  }
  return installed;
}

function header(headers: http2.IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function serveUnary(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, method: FastMethod, maxReceiveBytes: number): void {
  let done = false;
  let timer: NodeJS.Timeout | null = null;
  // No status can be sent on a stream that broke; its 'close' ends the call.
  stream.on('error', () => undefined);
  stream.once('close', () => finish());

  function finish(): boolean {
    if (done) return false;
    done = true;
    if (timer) clearTimeout(timer);
    return !stream.destroyed && !stream.closed;
  }

  function fail(code: number, details: string): void {
    if (!finish()) return;
    const trailers = { 'grpc-status': String(code), 'grpc-message': encodeURI(details) };
    if (stream.headersSent) stream.sendTrailers(trailers);
    else stream.respond({ ...trailers, ':status': 200, 'content-type': 'application/grpc+proto' }, { endStream: true });
  }

  function reply(res: unknown): void {
    let body: Buffer;
    try {
      body = method.encode(res);
    } catch (err) {
      fail(STATUS_INTERNAL, `Error serializing response: ${(err as Error).message}`);
      return;
    }
    if (!finish()) return;
    const frame = Buffer.allocUnsafe(5 + body.length);
    frame[0] = 0;
    frame.writeUInt32BE(body.length, 1);
    body.copy(frame, 5);
    stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers(OK_TRAILERS));
    stream.end(frame);
  }

  const timeout = header(headers, 'grpc-timeout');
  if (timeout !== undefined) {
    const m = DEADLINE.exec(timeout);
    if (!m) return void process.nextTick(() => fail(STATUS_INTERNAL, `Invalid grpc-timeout value "${timeout}"`));
    timer = setTimeout(() => fail(STATUS_DEADLINE_EXCEEDED, 'Deadline exceeded'), (Number(m[1]) * UNIT_MS[m[2]]) | 0);
  }

  const chunks: Buffer[] = [];
  let received = 0;
  stream.on('data', (chunk: Buffer) => {
    if (done) return;
    chunks.push(chunk);
    const before = received;
    received += chunk.length;
    // The message's declared length, checked once: as soon as its 5-byte prefix is in.
    if (before < 5 && received >= 5) {
      const length = (chunks.length === 1 ? chunk : Buffer.concat(chunks)).readUInt32BE(1);
      if (length > maxReceiveBytes) fail(STATUS_RESOURCE_EXHAUSTED, `Received message larger than max (${length} vs ${maxReceiveBytes})`);
    }
  });
  stream.once('end', () => {
    if (done) return;
    const buf = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    // As grpc-js: whole messages count, a cut-off tail is ignored; the compressed flag means
    // nothing under the identity encoding.
    const first = buf.length >= 5 ? buf.readUInt32BE(1) : -1;
    const whole = first >= 0 && buf.length >= 5 + first;
    if (!whole) return fail(STATUS_UNIMPLEMENTED, `Received no request message for server streaming method ${headers[':path']}`);
    if (buf.length >= 10 + first && buf.length >= 10 + first + buf.readUInt32BE(6 + first)) {
      return fail(STATUS_UNIMPLEMENTED, `Received a second request message for server streaming method ${headers[':path']}`);
    }
    let req: unknown;
    try {
      req = method.decode(buf.subarray(5, 5 + first));
    } catch {
      return fail(STATUS_INTERNAL, 'Error deserializing request');
    }
    const token = header(headers, 'token') ?? header(headers, 'authorization');
    method.handler(req, { token }).then(reply, (err) => {
      const s = toStatus(err);
      fail(s.code, s.details);
    });
  });
}
