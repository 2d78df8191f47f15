// Watch streams for tests, over gRPC and over the HTTP gateway, collecting
// every response so that two servers' streams can be compared.
import * as grpc from '@grpc/grpc-js';
import * as http from 'node:http';
import type { EtcdGrpcClient } from './grpc-client';
import { isDeepStrictEqual } from 'node:util';
import { normalize } from './normalize';
import { onJsonLines } from './json-lines';

export interface Collected {
  responses: any[];
  /** Resolves once no response has arrived for `quietMs` (at most `maxMs`). */
  settle(quietMs?: number, maxMs?: number): Promise<any[]>;
  /** Resolves once `n` responses have arrived. */
  waitFor(n: number, maxMs?: number): Promise<any[]>;
}

function collector(): Collected & { push(r: any): void } {
  const responses: any[] = [];
  let last = Date.now();
  const waiters = new Set<() => void>();
  return {
    responses,
    push(r) {
      responses.push(r);
      last = Date.now();
      for (const w of waiters) w();
    },
    async settle(quietMs = 300, maxMs = 10000) {
      const from = Date.now();
      const deadline = from + maxMs;
      while (Date.now() - Math.max(last, from) < quietMs && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      return responses;
    },
    async waitFor(n, maxMs = 20000) {
      const deadline = Date.now() + maxMs;
      while (responses.length < n && Date.now() < deadline) {
        await new Promise<void>((resolve) => {
          const w = () => {
            waiters.delete(w);
            resolve();
          };
          waiters.add(w);
          setTimeout(w, 100);
        });
      }
      return responses;
    },
  };
}

export interface GrpcWatch extends Collected {
  send(req: object): void;
  close(): void;
}

export function grpcWatch(c: EtcdGrpcClient, metadata = new grpc.Metadata()): GrpcWatch {
  const col = collector();
  const call = (c.watch as any).Watch(metadata) as grpc.ClientDuplexStream<object, any>;
  call.on('data', (r) => col.push(r));
  call.on('error', () => undefined);
  return {
    ...col,
    send: (req) => call.write(req),
    close: () => call.cancel(),
  };
}

export interface HttpWatch extends Collected {
  close(): void;
  /** The HTTP status, once the response has started. */
  status(): number | undefined;
}

/** POST /v3/watch with the given JSON messages as the body; collects the parsed lines. */
export function httpWatch(url: string, messages: object[] | string, headers: Record<string, string> = {}): HttpWatch {
  const col = collector();
  let statusCode: number | undefined;
  const body = typeof messages === 'string' ? messages : messages.map((m) => JSON.stringify(m)).join('');
  const req = http.request(`${url}/v3/watch`, { method: 'POST', headers }, (res) => {
    statusCode = res.statusCode;
    onJsonLines(res, (msg) => col.push(msg), { flushAtEnd: true });
    res.on('error', () => undefined);
  });
  req.on('error', () => undefined);
  req.end(body);
  return { ...col, close: () => req.destroy(), status: () => statusCode };
}

/**
 * Splits a stream into what must match exactly between two servers: the
 * answers to requests (created, canceled, progress), in order, and each
 * watcher's own answers (events, compaction), in order. etcd does not order
 * one watcher's answers against another watcher's.
 */
export function byWatcher(responses: any[]): { control: unknown[]; events: Record<string, unknown[]> } {
  const control: unknown[] = [];
  const events: Record<string, unknown[]> = {};
  for (const r of responses) {
    const res = r.result ?? r;
    const n = normalize(res) as any;
    const id = String(n.watch_id ?? '0');
    const compacted = n.compact_revision && n.compact_revision !== '0';
    if ((Array.isArray(n.events) && n.events.length > 0) || compacted) (events[id] ??= []).push(n);
    else control.push(n);
  }
  return { control, events };
}

/**
 * The answers of two streams that were given the same requests, etcd's and
 * ours, once they agree: waits for etcd's stream to go quiet, then for ours to
 * answer the same (up to a deadline; the caller's comparison then shows what
 * differs), then for both to go quiet again, so that an extra answer shows.
 * A slow moment of either server delays this; it does not fail it.
 */
export async function agreed(etcd: Collected, ours: Collected, tidy: (rs: any[]) => any[] = (rs) => rs, maxMs = 20000): Promise<[any[], any[]]> {
  await etcd.settle();
  const deadline = Date.now() + maxMs;
  while (Date.now() < deadline && !isDeepStrictEqual(byWatcher(tidy(ours.responses)), byWatcher(tidy(etcd.responses)))) {
    await new Promise((r) => setTimeout(r, 50));
  }
  await Promise.all([etcd.settle(), ours.settle()]);
  return [etcd.responses, ours.responses];
}
