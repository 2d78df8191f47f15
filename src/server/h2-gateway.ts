// The JSON gateway over HTTP/2. A client that negotiates h2 over TLS (curl
// does) and sends a request that is not gRPC gets what it would get over
// HTTP/1.1, as from etcd: the same paths, JSON and streaming watches. The
// gateway is one HTTP/1.1 server (express); each such HTTP/2 stream becomes
// one HTTP/1.1 exchange with it over an in-memory connection, and its answer
// goes back on the stream as it comes (a watch streams line by line). Only
// these requests take the detour; gRPC never does.
import * as http from 'node:http';
import type * as http2 from 'node:http2';
import { Duplex } from 'node:stream';
import { UNDERLYING_SOCKET } from '../tls-identity';

/** Headers HTTP/2 forbids (RFC 9113 8.2.2): they describe an HTTP/1.1 connection. */
const CONNECTION_HEADERS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'te']);

/** One end of an in-memory connection: what one end writes, the other reads, with backpressure. */
class MemoryEnd extends Duplex {
  peer!: MemoryEnd;
  /** The callback of a write held until the peer's reader wants more. */
  private held: (() => void) | null = null;
  remoteAddress?: string;
  remotePort?: number;

  override _read(): void {
    const held = this.peer.held;
    this.peer.held = null;
    held?.();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    if (this.peer.push(chunk)) done();
    else this.held = done;
  }
  override _final(done: (err?: Error | null) => void): void {
    this.peer.push(null);
    done();
  }
  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    if (!this.peer.destroyed) this.peer.destroy();
    done(err);
  }
  // what HTTP code may call on a socket
  setTimeout(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
}

function memoryConnection(): [MemoryEnd, MemoryEnd] {
  const a = new MemoryEnd();
  const b = new MemoryEnd();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

/** Answers an HTTP/2 stream that is not gRPC with the HTTP/1.1 server's answer to the same request. */
export function serveThroughHttp1(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, server: http.Server): void {
  const [clientEnd, serverEnd] = memoryConnection();
  const socket = stream.session?.socket;
  serverEnd.remoteAddress = socket?.remoteAddress;
  serverEnd.remotePort = socket?.remotePort;
  // the gateway's client-certificate rule looks at the TLS connection behind the stream
  (serverEnd as unknown as Record<symbol, unknown>)[UNDERLYING_SOCKET] = socket;
  server.emit('connection', serverEnd);

  const outHeaders: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(':') || value === undefined || CONNECTION_HEADERS.has(name)) continue;
    outHeaders[name] = value as string | string[];
  }
  outHeaders.host = String(headers[':authority'] ?? headers.host ?? 'localhost');
  const request = http.request({
    createConnection: () => clientEnd as unknown as import('node:net').Socket,
    method: String(headers[':method'] ?? 'GET'),
    path: String(headers[':path'] ?? '/'),
    headers: outHeaders,
  });
  const finish = () => {
    request.destroy();
    clientEnd.destroy();
  };
  request.on('response', (res) => {
    const answer: http2.OutgoingHttpHeaders = { ':status': res.statusCode ?? 502 };
    for (const [name, value] of Object.entries(res.headers)) {
      if (value !== undefined && !CONNECTION_HEADERS.has(name)) answer[name] = value;
    }
    if (stream.destroyed) return finish();
    stream.respond(answer);
    res.pipe(stream);
    res.on('error', () => stream.close());
  });
  request.on('error', () => {
    if (!stream.headersSent && !stream.destroyed) stream.respond({ ':status': 502 }, { endStream: true });
    else stream.close();
  });
  // the client went away (or reset the stream): end the exchange, as a closed HTTP/1.1 connection would
  stream.on('close', finish);
  stream.on('error', finish);
  stream.pipe(request);
}
