// A shorter road for unary calls. Per unary call grpc-js spends more CPU than
// the etcd handler behind it: an interceptor chain, call and metadata objects,
// a stream decoder, a deadline timer object, several promise hops. This takes
// the HTTP/2 streams of our unary methods straight from the HTTP/2 server that
// grpc-js made for our connections and answers them as grpc-js does (message
// framing, status codes and texts, message size limit, deadline), with the
// headers etcd (grpc-go) sends: `content-type: application/grpc` and nothing
// else, no `date`, and status texts percent-encoded as grpc-go encodes them.
// Fewer headers also cost every client less per answer: with grpc-js's
// headers (`grpc-accept-encoding`, `grpc-encoding`) and Node's `date`, the
// benchmark's client and this server served 11-14% fewer Ranges a second.
// Everything else (streaming methods, compressed requests, unknown paths,
// wrong content types) goes to grpc-js untouched.
//
// grpc-js keeps its HTTP/2 servers in a private field: if it is not found,
// nothing is installed and every call goes through grpc-js as before.
// test/grpc-fast-unary.test.ts fails if that happens.
import * as http2 from 'node:http2';
import type * as net from 'node:net';
import { verifiedCommonName } from '../tls-identity';
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

export type StreamListener = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number) => void;

/** What etcd answers a unary call with: the status, the content type, nothing more. */
const RESPONSE_HEADERS = { ':status': 200, 'content-type': 'application/grpc' };
const OK_TRAILERS = { 'grpc-status': '0', 'grpc-message': '' };
// etcd sends no `date` header; Node adds one unless told not to.
/** An answer: headers now, the message, then the trailers. */
const ANSWER = { waitForTrailers: true, sendDate: false };
/** A failure before any answer: status and text in the only headers sent. */
const TRAILERS_ONLY = { endStream: true, sendDate: false };
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
export function installFastUnary(server: grpc.Server, methods: Map<string, FastMethod>, maxReceiveBytes: number, onSent?: (bytes: number) => void, notGrpc?: StreamListener): number {
  let installed = 0;
  for (const h2 of http2ServersOf(server)) {
    const original = h2.listeners('stream') as StreamListener[];
    if (original.length !== 1) continue;
    h2.removeAllListeners('stream');
    h2.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number) => {
      const method = methods.get(headers[':path'] ?? '');
      const encoding = headers['grpc-encoding'];
      const type = headers['content-type'];
      // not gRPC at all (grpc-js would answer 415): the JSON gateway's, as etcd serves both on one port
      if (notGrpc && !(typeof type === 'string' && type.startsWith('application/grpc'))) {
        notGrpc(stream, headers, flags);
        return;
      }
      if (!method || (encoding !== undefined && encoding !== 'identity') || typeof type !== 'string' || !type.startsWith('application/grpc')) {
        original[0].call(h2, stream, headers, flags);
        return;
      }
      serveUnary(stream, headers, method, maxReceiveBytes, onSent);
    });
    installed++;
  }
  return installed;
}

/**
 * A status text as grpc-go puts it in `grpc-message`: the UTF-8 bytes outside
 * printable ASCII, and `%`, percent-encoded; everything else as it is (grpc-js
 * would also encode spaces, which every client decodes alike).
 */
export function grpcMessage(text: string): string {
  // eslint-disable-next-line no-control-regex
  if (!/[^\x20-\x24\x26-\x7e]/.test(text)) return text;
  let out = '';
  for (const b of Buffer.from(text, 'utf8')) out += b < 0x20 || b > 0x7e || b === 0x25 ? `%${b.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(b);
  return out;
}

const commonNames = new WeakMap<http2.Http2Session, string | undefined>();

/**
 * The connection's verified certificate name, looked up once per connection:
 * Node hands the session's socket out behind a Proxy, slow to look into on
 * every call. A connection keeps its certificate (no renegotiation in TLS 1.3,
 * none with a new certificate in Node's 1.2; etcd too reads it once).
 */
function sessionCommonName(session: http2.Http2Session | undefined): string | undefined {
  if (!session) return undefined;
  if (commonNames.has(session)) return commonNames.get(session);
  const cn = verifiedCommonName(session.socket as net.Socket);
  commonNames.set(session, cn);
  return cn;
}

function header(headers: http2.IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function serveUnary(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, method: FastMethod, maxReceiveBytes: number, onSent?: (bytes: number) => void): void {
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
    const trailers = { 'grpc-status': String(code), 'grpc-message': grpcMessage(details) };
    if (stream.headersSent) stream.sendTrailers(trailers);
    else stream.respond({ ...RESPONSE_HEADERS, ...trailers }, TRAILERS_ONLY);
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
    onSent?.(body.length);
    const frame = Buffer.allocUnsafe(5 + body.length);
    frame[0] = 0;
    frame.writeUInt32BE(body.length, 1);
    body.copy(frame, 5);
    stream.respond(RESPONSE_HEADERS, ANSWER);
    stream.once('wantTrailers', () => stream.sendTrailers(OK_TRAILERS));
    stream.end(frame);
  }

  const timeout = header(headers, 'grpc-timeout');
  if (timeout !== undefined) {
    const m = DEADLINE.exec(timeout);
    if (!m) return void process.nextTick(() => refuse(STATUS_INTERNAL, `Invalid grpc-timeout value "${timeout}"`));
    timer = setTimeout(() => refuse(STATUS_DEADLINE_EXCEEDED, 'Deadline exceeded'), (Number(m[1]) * UNIT_MS[m[2]]) | 0);
  }

  // The body is read as grpc-js's decoder reads it, message by message as the bytes arrive:
  // the first message is kept (it is at most maxReceiveBytes), anything after it is only
  // counted, and the answer goes out as soon as the bytes decide it. A client that keeps
  // sending never makes the server hold more than one message and one frame.
  const body = new UnaryBody(maxReceiveBytes);
  let req: unknown;
  let decoded = false;
  stream.on('data', (chunk: Buffer) => {
    if (done) return;
    const verdict = body.push(chunk);
    if (verdict === 'too-large') return refuse(STATUS_RESOURCE_EXHAUSTED, `Received message larger than max (${body.declared} vs ${maxReceiveBytes})`);
    if (verdict === 'second') return refuse(STATUS_UNIMPLEMENTED, `Received a second request message for server streaming method ${headers[':path']}`);
    if (body.messages === 1 && !decoded) {
      decoded = true;
      try {
        req = method.decode(body.first());
      } catch {
        refuse(STATUS_INTERNAL, 'Error deserializing request');
      }
    }
  });

  /** Answers before the request has ended, then asks the client to stop sending (RST_STREAM NO_ERROR, RFC 9113 8.1). */
  function refuse(code: number, details: string): void {
    fail(code, details);
    if (!stream.readableEnded) setImmediate(() => stream.close(http2.constants.NGHTTP2_NO_ERROR));
  }

  stream.once('end', () => {
    if (done) return;
    // As grpc-js: whole messages count, a cut-off tail is ignored.
    if (body.messages === 0) return fail(STATUS_UNIMPLEMENTED, `Received no request message for server streaming method ${headers[':path']}`);
    const token = header(headers, 'token') ?? header(headers, 'authorization');
    method.handler(req, { token, apiVersion: header(headers, 'client-api-version'), certUser: sessionCommonName(stream.session) }).then(reply, (err) => {
      const s = toStatus(err);
      fail(s.code, s.details);
    });
  });
}

/**
 * A unary request body, framed as gRPC messages (1-byte flag, 4-byte length,
 * payload) and read incrementally. The compressed flag means nothing under
 * the identity encoding, as in grpc-js.
 */
export class UnaryBody {
  /** Whole messages seen so far. */
  messages = 0;
  /** The length the message being read declared. */
  declared = 0;
  /** The 5-byte prefix when it arrives split across chunks (rare: made only then). */
  private prefix: Buffer | null = null;
  private prefixHave = 0;
  /** Payload bytes of the current message still to come. */
  private remaining = 0;
  private readonly parts: Buffer[] = [];

  constructor(private readonly max: number) {}

  /** Feeds bytes; 'too-large' or 'second' as soon as they decide the answer, else null. */
  push(chunk: Buffer): 'too-large' | 'second' | null {
    let i = 0;
    while (i < chunk.length) {
      if (this.prefixHave < 5) {
        if (this.prefixHave === 0 && chunk.length - i >= 5) {
          this.declared = chunk.readUInt32BE(i + 1);
          this.prefixHave = 5;
          i += 5;
        } else {
          const prefix = (this.prefix ??= Buffer.alloc(5));
          const n = Math.min(5 - this.prefixHave, chunk.length - i);
          chunk.copy(prefix, this.prefixHave, i, i + n);
          this.prefixHave += n;
          i += n;
          if (this.prefixHave < 5) break;
          this.declared = prefix.readUInt32BE(1);
        }
        if (this.declared > this.max) return 'too-large';
        this.remaining = this.declared;
      } else {
        const n = Math.min(this.remaining, chunk.length - i);
        if (this.messages === 0) this.parts.push(chunk.subarray(i, i + n));
        this.remaining -= n;
        i += n;
      }
      if (this.prefixHave === 5 && this.remaining === 0) {
        this.messages++;
        this.prefixHave = 0;
        if (this.messages > 1) return 'second';
      }
    }
    return null;
  }

  /** The first message's payload (once messages >= 1). */
  first(): Buffer {
    return this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts);
  }
}
