// `:authority` values with a scheme. etcd's Go client 3.4 dials one endpoint
// for per-endpoint calls (endpoint status, hashkv, defrag, every --cluster
// form) with the endpoint URL as the target, so those requests carry
// `:authority: http://127.0.0.1:2379`. etcd takes them. Node's HTTP/2 layer
// (nghttp2) checks the authority's characters and resets the stream before
// any of our code runs, with no option to turn the check off.
//
// So a new HTTP/2 connection is looked at before Node's HTTP/2 server gets it:
// this answers the client's preface with an empty SETTINGS frame at once (a
// client may wait for the server's preface before its first request) and
// reads up to the client's first request. If its `:authority` is well-formed,
// as from every other client, the connection goes to Node's HTTP/2 server as
// it arrived (minus the acknowledgement of our SETTINGS, which that server
// never sent) and nothing here sees it again: the fast paths keep the native
// socket. If it has a scheme, the connection runs through a rewriter for its
// life: header blocks are decoded (HPACK, with the connection's dynamic
// table), the authority loses its scheme, and each block goes on re-encoded
// without indexing; all other frames pass untouched. A Go client keeps one
// authority per connection, so the first request decides for the rest.
import type { Duplex } from 'node:stream';
import { Duplex as DuplexStream } from 'node:stream';
import { UNDERLYING_SOCKET } from '../tls-identity';

// hpack.js: HPACK's Huffman code, static and dynamic tables (a library, as they are long to get right)
// eslint-disable-next-line @typescript-eslint/no-require-imports
const hpack = require('hpack.js') as {
  decompressor: { create(options: { table: { size: number } }): HpackDecompressor };
};
interface HpackDecompressor {
  write(block: Buffer): void;
  execute(): void;
  read(): { name: string; value: string } | null;
}

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const FRAME_HEADER_BYTES = 9;
const HEADERS = 0x1;
const PRIORITY = 0x2;
const SETTINGS = 0x4;
const WINDOW_UPDATE = 0x8;
const CONTINUATION = 0x9;
const FLAG_ACK = 0x1;
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;
/** The HPACK table size and frame size Node's HTTP/2 server announces (HTTP/2's defaults). */
const TABLE_BYTES = 4096;
const MAX_FRAME_BYTES = 16384;
/** A server preface with no settings: HTTP/2's defaults, which Node's own SETTINGS then restate. */
const EMPTY_SETTINGS = Buffer.from([0, 0, 0, SETTINGS, 0, 0, 0, 0, 0]);
/**
 * A connection still undecided this long after our SETTINGS were acknowledged
 * (an idle client; one that waits for something before its first request)
 * goes to Node's HTTP/2 server as it is.
 */
const UNDECIDED_MS = 1000;

/** A scheme, or a path: what nghttp2 refuses in an authority and etcd ignores. */
const NOT_AUTHORITY = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/|\/.*$/g;

export function needsRewrite(authority: string | undefined): boolean {
  return authority !== undefined && authority.includes('/');
}

export function plainAuthority(authority: string): string {
  return authority.replace(NOT_AUTHORITY, '') || 'localhost';
}

/** One HTTP/2 frame of a buffer: type, flags, stream and payload. */
interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
  bytes: Buffer;
}

/** Takes whole frames off the front of `buf`; returns them and the rest. */
function takeFrames(buf: Buffer): { frames: Frame[]; rest: Buffer } {
  const frames: Frame[] = [];
  let at = 0;
  while (buf.length - at >= FRAME_HEADER_BYTES) {
    const length = buf.readUIntBE(at, 3);
    if (buf.length - at < FRAME_HEADER_BYTES + length) break;
    const bytes = buf.subarray(at, at + FRAME_HEADER_BYTES + length);
    frames.push({ type: bytes[3], flags: bytes[4], stream: bytes.readUInt32BE(5) & 0x7fffffff, payload: bytes.subarray(FRAME_HEADER_BYTES), bytes });
    at += bytes.length;
  }
  return { frames, rest: buf.subarray(at) };
}

/** The header block fragment of a HEADERS or CONTINUATION frame (padding and priority removed). */
function fragmentOf(frame: Frame): Buffer {
  if (frame.type !== HEADERS) return frame.payload;
  let start = 0;
  let end = frame.payload.length;
  if (frame.flags & FLAG_PADDED) {
    end -= frame.payload[0];
    start = 1;
  }
  if (frame.flags & FLAG_PRIORITY) start += 5;
  if (start > end) throw new Error('HTTP/2: a HEADERS frame shorter than its padding');
  return frame.payload.subarray(start, end);
}

/** Collects header blocks frame by frame and decodes each whole block, in order (the table is the connection's). */
class HeaderBlocks {
  private readonly decoder = hpack.decompressor.create({ table: { size: TABLE_BYTES } });
  private open: { first: Frame; fragments: Buffer[] } | null = null;

  /** For a HEADERS or CONTINUATION frame: the decoded block once its last frame is in, else null. */
  add(frame: Frame): { first: Frame; headers: [string, string][] } | null {
    if (frame.type === HEADERS) this.open = { first: frame, fragments: [] };
    if (!this.open) throw new Error('HTTP/2: CONTINUATION without HEADERS');
    this.open.fragments.push(fragmentOf(frame));
    if (!(frame.flags & FLAG_END_HEADERS)) return null;
    const { first, fragments } = this.open;
    this.open = null;
    this.decoder.write(Buffer.concat(fragments));
    this.decoder.execute();
    const headers: [string, string][] = [];
    for (let h = this.decoder.read(); h !== null; h = this.decoder.read()) headers.push([h.name, h.value]);
    return { first, headers };
  }
}

// HPACK output: every field a literal without indexing (RFC 7541 6.2.2), so
// the receiver's dynamic table is never touched and needs no tracking here.
function hpackInt(value: number, prefixBits: number, high: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [high | value];
  const out = [high | max];
  value -= max;
  while (value >= 128) {
    out.push((value & 0x7f) | 0x80);
    value = Math.floor(value / 128);
  }
  out.push(value);
  return out;
}

function hpackString(s: string): Buffer {
  const bytes = Buffer.from(s, 'latin1'); // hpack.js gives a character per byte
  return Buffer.concat([Buffer.from(hpackInt(bytes.length, 7, 0)), bytes]);
}

export function encodeHeaderBlock(headers: [string, string][]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of headers) parts.push(Buffer.from([0]), hpackString(name), hpackString(value));
  return Buffer.concat(parts);
}

function frameBytes(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(FRAME_HEADER_BYTES);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

/** A decoded header block as HEADERS and CONTINUATION frames again (without padding or priority). */
function headerFrames(first: Frame, block: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at === 0 || at < block.length; at += MAX_FRAME_BYTES) {
    const piece = block.subarray(at, at + MAX_FRAME_BYTES);
    const last = at + MAX_FRAME_BYTES >= block.length;
    const flags = (at === 0 ? first.flags & FLAG_END_STREAM : 0) | (last ? FLAG_END_HEADERS : 0);
    out.push(frameBytes(at === 0 ? HEADERS : CONTINUATION, flags, first.stream, piece));
  }
  return out;
}

/** The client's side of a connection whose authorities need their scheme removed: bytes in, bytes for nghttp2 out. */
export class AuthorityRewriter {
  private pending: Buffer = Buffer.alloc(0);
  private prefaceLeft = PREFACE.length;
  private readonly blocks = new HeaderBlocks();

  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    if (this.prefaceLeft > 0) {
      const n = Math.min(this.prefaceLeft, buf.length);
      out.push(buf.subarray(0, n));
      this.prefaceLeft -= n;
      buf = buf.subarray(n);
    }
    const { frames, rest } = takeFrames(buf);
    this.pending = Buffer.from(rest);
    for (const frame of frames) {
      if (frame.type !== HEADERS && frame.type !== CONTINUATION) {
        out.push(frame.bytes);
        continue;
      }
      const block = this.blocks.add(frame);
      if (!block) continue;
      const headers = block.headers.map(([n, v]): [string, string] => (n === ':authority' && needsRewrite(v) ? [n, plainAuthority(v)] : [n, v]));
      out.push(...headerFrames(block.first, encodeHeaderBlock(headers)));
    }
    return out;
  }
}

/** The rewritten connection as a stream for Node's HTTP/2 server: reads what the client sent (rewritten), writes to the client. */
function rewrittenConnection(socket: Duplex, already: Buffer): Duplex {
  const rewriter = new AuthorityRewriter();
  const conn = new DuplexStream({
    read: () => void socket.resume(),
    write: (chunk: Buffer, _enc, done) => void socket.write(chunk, done),
    final: (done) => {
      socket.end();
      done();
    },
    destroy: (err, done) => {
      socket.destroy();
      done(err);
    },
  });
  // the client certificate of a TLS connection stays visible (tls-identity.ts)
  (conn as unknown as Record<symbol, unknown>)[UNDERLYING_SOCKET] = socket;
  const feed = (chunk: Buffer) => {
    let frames: Buffer[];
    try {
      frames = rewriter.push(chunk);
    } catch (err) {
      conn.destroy(err as Error);
      return;
    }
    for (const f of frames) if (!conn.push(f)) socket.pause();
  };
  socket.on('data', feed);
  socket.on('end', () => conn.push(null));
  socket.on('error', (err) => conn.destroy(err));
  socket.on('close', () => conn.destroy());
  feed(already);
  return conn;
}

/**
 * Takes a new HTTP/2 connection (the client preface may be partly read and
 * unshifted) and gives `deliver` either the socket itself or, for a client
 * whose authority has a scheme, a rewritten stream over it.
 */
export function acceptHttp2(socket: Duplex, deliver: (conn: Duplex) => void): void {
  socket.write(EMPTY_SETTINGS);
  const blocks = new HeaderBlocks();
  const kept: Buffer[] = [];
  let buf: Buffer = Buffer.alloc(0);
  let prefaceSeen = false;
  let ackSeen = false;
  let firstRequest: [string, string][] | null = null;
  let otherFrame = false;
  let timer: NodeJS.Timeout | null = null;

  const handOver = (rewrite: boolean) => {
    socket.removeListener('data', onData);
    socket.removeListener('error', onError);
    if (timer) clearTimeout(timer);
    const already = Buffer.concat([...kept, buf]);
    if (rewrite) {
      deliver(rewrittenConnection(socket, already));
      return;
    }
    socket.pause();
    if (already.length) socket.unshift(already);
    deliver(socket);
  };
  const onData = (chunk: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    if (!prefaceSeen) {
      if (buf.length < PREFACE.length) return;
      // not HTTP/2 after all: let Node's server answer it as it would
      if (!buf.subarray(0, PREFACE.length).equals(PREFACE)) return handOver(false);
      kept.push(buf.subarray(0, PREFACE.length));
      buf = buf.subarray(PREFACE.length);
      prefaceSeen = true;
    }
    const { frames, rest } = takeFrames(buf);
    buf = rest;
    try {
      for (const frame of frames) {
        if (frame.type === SETTINGS && frame.flags & FLAG_ACK && !ackSeen) {
          ackSeen = true; // the acknowledgement of our preface: Node's server never sent it
          continue;
        }
        kept.push(frame.bytes);
        if (frame.type === HEADERS || frame.type === CONTINUATION) firstRequest ??= blocks.add(frame)?.headers ?? null;
        else if (frame.type !== SETTINGS && frame.type !== WINDOW_UPDATE && frame.type !== PRIORITY) otherFrame = true;
      }
    } catch {
      return handOver(false); // malformed: Node's server says so
    }
    if (!ackSeen) return;
    if (firstRequest) return handOver(needsRewrite(firstRequest.find(([n]) => n === ':authority')?.[1]));
    if (otherFrame) return handOver(false);
    if (!timer) {
      timer = setTimeout(() => handOver(false), UNDECIDED_MS);
      timer.unref();
    }
  };
  socket.on('data', onData);
  // a client that resets before its first request: nobody else listens yet (an unheard 'error' would end the process)
  const onError = () => socket.destroy();
  socket.on('error', onError);
  socket.once('close', () => timer && clearTimeout(timer));
  socket.resume();
}
