// Watch streams for a robustness run, over gRPC and the HTTP gateway, each
// recording every response it gets (time, revision, created/canceled,
// compaction, events) into a WatchRecord.
import * as grpc from '@grpc/grpc-js';
import * as http from 'node:http';
import type { WatchCreate, WatchEvent, WatchRecord, WatchResponseRecord } from './history';
import { onJsonLines } from '../helpers/json-lines';
import { kvFrom } from './conn';

const enc = (s: string, json: boolean) => (json ? Buffer.from(s).toString('base64') : Buffer.from(s));

function record(r: any, json: boolean, time: number): WatchResponseRecord {
  const events: WatchEvent[] = (r.events ?? []).map((e: any) => ({
    type: e.type === 'DELETE' || e.type === 1 ? 'DELETE' : 'PUT',
    kv: kvFrom(e.kv ?? {}, json),
    ...(e.prev_kv ? { prev: kvFrom(e.prev_kv, json) } : {}),
  }));
  return {
    time,
    revision: Number(r.header?.revision ?? 0),
    ...(r.created ? { created: true } : {}),
    ...(r.canceled ? { canceled: true } : {}),
    ...(Number(r.compact_revision ?? 0) ? { compactRevision: Number(r.compact_revision) } : {}),
    ...(r.cancel_reason ? { cancelReason: r.cancel_reason } : {}),
    ...(r.fragment ? { fragment: true } : {}),
    events,
  };
}

function createRequest(c: WatchCreate, json: boolean): object {
  return {
    create_request: {
      key: enc(c.key, json),
      ...(c.end ? { range_end: enc(c.end, json) } : {}),
      ...(c.startRevision ? { start_revision: String(c.startRevision) } : {}),
      ...(c.prevKv ? { prev_kv: true } : {}),
      ...(c.filters.length ? { filters: c.filters } : {}),
      ...(c.progressNotify ? { progress_notify: true } : {}),
      ...(c.fragment ? { fragment: true } : {}),
    },
  };
}

export interface OpenWatch {
  readonly record: WatchRecord;
  /** Asks for a progress notification (gRPC only). */
  requestProgress(): void;
  /** Stops reading (the server's buffers fill); resume() reads again. gRPC only. */
  pause(): void;
  resume(): void;
  close(why?: string): void;
  /** Resolves when the stream ends (error, cancel or close). */
  ended: Promise<void>;
  /** The last event revision delivered, or the start revision - 1. */
  lastRevision(): number;
}

let nextWatchId = 0;

function newRecord(instance: number, transport: string, create: WatchCreate, now: number, reference: boolean): WatchRecord {
  return { id: nextWatchId++, instance, transport, create, openedAt: now, responses: [], ending: 'open', ...(reference ? { reference: true } : {}) };
}

/** `end(why)` records the first reason the stream ended and settles `ended`. */
function ending(rec: WatchRecord): { ended: Promise<void>; end(why: string): void } {
  let done!: () => void;
  const ended = new Promise<void>((r) => (done = r));
  return {
    ended,
    end: (why) => {
      if (rec.ending === 'open') rec.ending = why;
      done();
    },
  };
}

function lastRevisionOf(rec: WatchRecord): number {
  for (let i = rec.responses.length - 1; i >= 0; i--) {
    const evs = rec.responses[i].events;
    if (evs.length) return evs[evs.length - 1].kv.mod;
  }
  const created = rec.responses.find((r) => r.created);
  return rec.create.startRevision ? rec.create.startRevision - 1 : created ? created.revision : 0;
}

export function openGrpcWatch(watchClient: grpc.Client, instance: number, create: WatchCreate, now: () => number, reference = false): OpenWatch {
  const rec = newRecord(instance, 'grpc', create, now(), reference);
  const call = (watchClient as any).Watch() as grpc.ClientDuplexStream<object, any>;
  const { ended, end } = ending(rec);
  call.on('data', (r) => rec.responses.push(record(r, false, now())));
  call.on('error', (e: grpc.ServiceError) => end(`error: ${grpc.status[e.code]} ${e.details}`));
  call.on('end', () => end('server ended the stream'));
  call.on('close', () => end('closed'));
  call.write(createRequest(create, false));
  return {
    record: rec,
    requestProgress: () => call.write({ progress_request: {} }),
    pause: () => call.pause(),
    resume: () => call.resume(),
    close: (why = 'client') => {
      if (rec.ending === 'open') rec.ending = why;
      call.cancel();
    },
    ended,
    lastRevision: () => lastRevisionOf(rec),
  };
}

export function openHttpWatch(url: string, instance: number, create: WatchCreate, now: () => number): OpenWatch {
  const rec = newRecord(instance, 'http', create, now(), false);
  const { ended, end } = ending(rec);
  const req = http.request(`${url}/v3/watch`, { method: 'POST' }, (res) => {
    onJsonLines(res, (msg) => {
      if (msg.result) rec.responses.push(record(msg.result, true, now()));
      else if (msg.error) end(`error: ${msg.error.message}`);
    });
    res.on('end', () => end('server ended the stream'));
    res.on('error', (e) => end(`error: ${e.message}`));
    res.on('close', () => end('closed'));
  });
  req.on('error', (e) => end(`error: ${e.message}`));
  req.end(JSON.stringify(createRequest(create, true)));
  return {
    record: rec,
    requestProgress: () => undefined,
    pause: () => undefined,
    resume: () => undefined,
    close: (why = 'client') => {
      end(why);
      req.destroy();
    },
    ended,
    lastRevision: () => lastRevisionOf(rec),
  };
}
