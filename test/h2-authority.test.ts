// The HTTP/2 authority rewriter on hand-made frames: header blocks encoded
// by another HPACK encoder (Huffman, dynamic table, split over CONTINUATION,
// padded, with priority) come out as the same headers with the scheme gone,
// every other frame byte for byte, whatever the chunking.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { AuthorityRewriter, encodeHeaderBlock, needsRewrite, plainAuthority } from '../src/server/h2-authority';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const hpack = require('hpack.js');

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

/** A client's HPACK encoder: indexing and Huffman, as Go's and nghttp2's. */
function clientEncoder() {
  const comp = hpack.compressor.create({ table: { size: 4096 } });
  return (headers: [string, string][]): Buffer => {
    comp.write(headers.map(([name, value]) => ({ name, value })));
    const parts: Buffer[] = [];
    for (let c = comp.read(); c !== null; c = comp.read()) parts.push(c);
    return Buffer.concat(parts);
  };
}

/** Splits a byte stream into frames and decodes every header block (a fresh server-side decoder). */
function serverView(bytes: Buffer): { frames: { type: number; flags: number; stream: number; payload: Buffer }[]; blocks: [string, string][][] } {
  assert.deepEqual(bytes.subarray(0, PREFACE.length), PREFACE);
  const dec = hpack.decompressor.create({ table: { size: 4096 } });
  const frames = [];
  const blocks: [string, string][][] = [];
  let block: Buffer[] = [];
  for (let at = PREFACE.length; at < bytes.length; ) {
    const len = bytes.readUIntBE(at, 3);
    const f = { type: bytes[at + 3], flags: bytes[at + 4], stream: bytes.readUInt32BE(at + 5), payload: bytes.subarray(at + 9, at + 9 + len) };
    frames.push(f);
    at += 9 + len;
    if (f.type === 1 || f.type === 9) {
      assert.equal(f.flags & 0x28, 0, 'no padding or priority left');
      block.push(f.payload);
      if (f.flags & 0x4) {
        dec.write(Buffer.concat(block));
        dec.execute();
        const headers: [string, string][] = [];
        for (let h = dec.read(); h !== null; h = dec.read()) headers.push([h.name, h.value]);
        blocks.push(headers);
        block = [];
      }
    }
  }
  return { frames, blocks };
}

function request(authority: string, path: string, extra: [string, string][] = []): [string, string][] {
  return [[':method', 'POST'], [':scheme', 'http'], [':path', path], [':authority', authority], ['content-type', 'application/grpc'], ['te', 'trailers'], ...extra];
}

describe('HTTP/2 authority rewriter', () => {
  it('tells an authority with a scheme or path, and strips them', () => {
    assert.equal(needsRewrite('127.0.0.1:2379'), false);
    assert.equal(needsRewrite('[::1]:2379'), false);
    assert.equal(needsRewrite(undefined), false);
    assert.equal(needsRewrite('http://127.0.0.1:2379'), true);
    assert.equal(plainAuthority('http://127.0.0.1:2379'), '127.0.0.1:2379');
    assert.equal(plainAuthority('https://[::1]:2379/'), '[::1]:2379');
    assert.equal(plainAuthority('unix:///tmp/etcd.sock'), 'localhost');
    assert.equal(plainAuthority('host:1/path/x'), 'host:1');
  });

  it('rewrites every block of a connection, through the dynamic table, and passes other frames as they are', () => {
    const encode = clientEncoder();
    const url = 'http://127.0.0.1:2379';
    const big = 'x'.repeat(20000); // a block longer than one frame
    const first = encode(request(url, '/etcdserverpb.Maintenance/Status'));
    const second = encode(request(url, '/etcdserverpb.KV/Range', [['token', 'abc']])); // :authority from the dynamic table now
    const third = encode(request(url, '/etcdserverpb.KV/Put', [['x-big', big]]));
    const settings = frame(4, 0, 0, Buffer.from([0, 4, 0, 0, 0xff, 0xff]));
    const data = frame(0, 1, 1, Buffer.from([0, 0, 0, 0, 0]));
    const ping = frame(6, 0, 0, Buffer.alloc(8, 7));
    // the second block padded and with priority; the third split over CONTINUATION frames
    const padded = Buffer.concat([Buffer.from([3]), Buffer.from([0, 0, 0, 0, 16]), second, Buffer.alloc(3)]);
    const wire = Buffer.concat([
      PREFACE,
      settings,
      frame(1, 0x4, 1, first),
      data,
      frame(1, 0x4 | 0x8 | 0x20 | 0x1, 3, padded),
      ping,
      frame(1, 0, 5, third.subarray(0, 9000)),
      frame(9, 0, 5, third.subarray(9000, 15000)),
      frame(9, 0x4, 5, third.subarray(15000)),
    ]);
    const expected = [request('127.0.0.1:2379', '/etcdserverpb.Maintenance/Status'), request('127.0.0.1:2379', '/etcdserverpb.KV/Range', [['token', 'abc']]), request('127.0.0.1:2379', '/etcdserverpb.KV/Put', [['x-big', big]])];
    for (const chunk of [wire.length, 1, 7, 1000]) {
      const r = new AuthorityRewriter();
      const out: Buffer[] = [];
      for (let at = 0; at < wire.length; at += chunk) out.push(...r.push(wire.subarray(at, at + chunk)));
      const view = serverView(Buffer.concat(out));
      assert.deepEqual(view.blocks, expected, `chunks of ${chunk}`);
      const others = view.frames.filter((f) => f.type !== 1 && f.type !== 9).map((f) => frame(f.type, f.flags, f.stream, f.payload));
      assert.deepEqual(others, [settings, data, ping]);
      const heads = view.frames.filter((f) => f.type === 1).map((f) => [f.stream, f.flags & 0x1]);
      assert.deepEqual(heads, [[1, 0], [3, 1], [5, 0]], 'streams and END_STREAM kept');
      assert.ok(view.frames.every((f) => f.payload.length <= 16384), 'no frame beyond the default maximum size');
    }
  });

  it('leaves a well-formed authority and everything else unchanged in meaning', () => {
    const headers = request('127.0.0.1:2379', '/p', [['grpc-timeout', '5S']]);
    const r = new AuthorityRewriter();
    const view = serverView(Buffer.concat(r.push(Buffer.concat([PREFACE, frame(1, 0x4, 1, clientEncoder()(headers))]))));
    assert.deepEqual(view.blocks, [headers]);
    // our own encoding: literals without indexing, decodable by any HPACK decoder
    const again = serverView(Buffer.concat([PREFACE, frame(1, 0x4, 1, encodeHeaderBlock(headers))]));
    assert.deepEqual(again.blocks, [headers]);
  });
});
