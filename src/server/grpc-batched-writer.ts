// Messages of one gRPC server stream, written straight to its HTTP/2 stream:
// every message produced in one turn of the event loop goes out in a single
// write, each with gRPC's 5-byte length prefix.
//
// Why: an event for the 50 watchers of a watch stream is 50 messages. Through
// grpc-js each is its own trip through two Writable streams and its own
// HTTP/2 write with its own completion callbacks; those callbacks, not the
// encoding, were most of the CPU a fan-out cost (1,000 watchers on 20 streams:
// about 4 µs per message), and on a busy machine that CPU is latency. One
// write per stream per event cuts it to a few callbacks per event.
//
// grpc-js does not offer this, so it reaches for the HTTP/2 stream under the
// call (a private field). Where that is not found (another grpc-js version),
// `batchedWriter` returns null and the caller writes through grpc-js as usual;
// test/grpc-batched-writer.test.ts fails if the fast path is lost.
import type * as grpc from '@grpc/grpc-js';
import { Metadata } from '@grpc/grpc-js';
import type { ServerHttp2Stream } from 'node:http2';

export interface BatchedWriter {
  /** Queue one encoded message; `written` runs once it is handed to the connection. */
  write(message: Buffer, written: () => void): void;
}

/** The HTTP/2 stream under a grpc-js server call: the call's chain of intercepting calls ends at the one holding it. */
function http2StreamOf(call: grpc.ServerDuplexStream<unknown, unknown>): ServerHttp2Stream | null {
  let c = (call as unknown as { call?: unknown }).call as { stream?: unknown; nextCall?: unknown } | undefined;
  for (let depth = 0; c && depth < 8; depth++) {
    const s = c.stream as ServerHttp2Stream | undefined;
    if (s && typeof s.write === 'function' && typeof s.respond === 'function') return s;
    c = c.nextCall as typeof c;
  }
  return null;
}

export function batchedWriter(call: grpc.ServerDuplexStream<unknown, unknown>): BatchedWriter | null {
  const h2 = http2StreamOf(call);
  if (!h2) return null;
  // The response headers go first, through grpc-js, which then sends only the trailers at the end.
  call.sendMetadata(new Metadata());
  let parts: Buffer[] = [];
  let callbacks: (() => void)[] = [];
  const flush = () => {
    const data = Buffer.concat(parts);
    const done = callbacks;
    parts = [];
    callbacks = [];
    if (h2.destroyed || h2.writableEnded || call.destroyed) return;
    h2.write(data, () => {
      for (const cb of done) cb();
    });
  };
  return {
    write(message, written) {
      if (parts.length === 0) process.nextTick(flush);
      const prefix = Buffer.allocUnsafe(5);
      prefix[0] = 0; // not compressed
      prefix.writeUInt32BE(message.length, 1);
      parts.push(prefix, message);
      callbacks.push(written);
    },
  };
}
