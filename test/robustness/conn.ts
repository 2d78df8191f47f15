// One client connection to one instance, over gRPC or the HTTP/JSON gateway,
// that sends a history Request and returns the history Response: a definite
// error (the request had no effect) as { error }, anything the client cannot
// be sure about (deadline, connection lost, UNAVAILABLE) as an Unknown throw.
import * as grpc from '@grpc/grpc-js';
import { packageDefinition } from '../../src/proto';
import type { KeyValue, Request, Response, TxnOp, TxnResult } from './history';

const pkg = grpc.loadPackageDefinition(packageDefinition) as any;

export class Unknown extends Error {}

/** The request never left the client: no connection to send it on. Certainly no effect. */
const NOT_SENT = { code: 14, message: 'not sent: no connection' };

/** gRPC codes after which the request certainly had no effect. */
const DEFINITE = new Set([grpc.status.INVALID_ARGUMENT, grpc.status.NOT_FOUND, grpc.status.ALREADY_EXISTS, grpc.status.PERMISSION_DENIED, grpc.status.RESOURCE_EXHAUSTED, grpc.status.FAILED_PRECONDITION, grpc.status.OUT_OF_RANGE, grpc.status.UNAUTHENTICATED]);

export interface Conn {
  readonly instance: number;
  readonly transport: 'grpc' | 'http';
  send(req: Request): Promise<Response>;
  close(): void;
}

const enc = (s: string) => Buffer.from(s);
const b64 = (s: string) => Buffer.from(s).toString('base64');
const fromB64 = (s: string | undefined) => (s ? Buffer.from(s, 'base64').toString() : '');

/** A KeyValue from either transport: gRPC (Buffers, int64 strings, every field) or JSON (base64, strings, defaults left out). */
export function kvFrom(kv: any, json: boolean): KeyValue {
  const str = (v: any) => (json ? fromB64(v) : Buffer.from(v ?? '').toString());
  return { key: str(kv.key), value: str(kv.value), create: Number(kv.create_revision ?? 0), mod: Number(kv.mod_revision ?? 0), version: Number(kv.version ?? 0), lease: String(kv.lease ?? '0') };
}

function rangeFrom(r: any, json: boolean) {
  return { kvs: (r.kvs ?? []).map((kv: any) => kvFrom(kv, json)), count: Number(r.count ?? 0), more: !!r.more };
}

function wireOp(op: TxnOp, bytes: (s: string) => unknown): object {
  if ('put' in op) return { request_put: { key: bytes(op.put.key), value: bytes(op.put.value), ...(op.put.lease ? { lease: op.put.lease } : {}) } };
  if ('del' in op) return { request_delete_range: { key: bytes(op.del.key), ...(op.del.end ? { range_end: bytes(op.del.end) } : {}) } };
  return { request_range: { key: bytes(op.range.key), ...(op.range.end ? { range_end: bytes(op.range.end) } : {}) } };
}

/** The service, method and wire request of a history Request (bytes as Buffers for gRPC, base64 for JSON). */
export function wire(req: Request, json: boolean): { service: string; method: string; path: string; body: object } {
  const bytes = json ? b64 : enc;
  switch (req.type) {
    case 'range':
      return { service: 'kv', method: 'Range', path: '/v3/kv/range', body: { key: bytes(req.key), ...(req.end ? { range_end: bytes(req.end) } : {}), ...(req.revision ? { revision: String(req.revision) } : {}), ...(req.serializable ? { serializable: true } : {}), ...(req.limit ? { limit: String(req.limit) } : {}) } };
    case 'put':
      return { service: 'kv', method: 'Put', path: '/v3/kv/put', body: { key: bytes(req.key), value: bytes(req.value), ...(req.lease ? { lease: req.lease } : {}) } };
    case 'delete':
      return { service: 'kv', method: 'DeleteRange', path: '/v3/kv/deleterange', body: { key: bytes(req.key), ...(req.end ? { range_end: bytes(req.end) } : {}) } };
    case 'txn':
      return {
        service: 'kv',
        method: 'Txn',
        path: '/v3/kv/txn',
        body: {
          compare: req.compare.map((c) => ({
            key: bytes(c.key),
            target: c.target,
            result: c.result,
            ...(c.target === 'VALUE' ? { value: bytes(String(c.value)) } : c.target === 'VERSION' ? { version: String(c.value) } : c.target === 'MOD' ? { mod_revision: String(c.value) } : { create_revision: String(c.value) }),
          })),
          success: req.success.map((o) => wireOp(o, bytes)),
          failure: req.failure.map((o) => wireOp(o, bytes)),
        },
      };
    case 'leaseGrant':
      return { service: 'lease', method: 'LeaseGrant', path: '/v3/lease/grant', body: { TTL: String(req.ttl) } };
    case 'leaseRevoke':
      return { service: 'lease', method: 'LeaseRevoke', path: '/v3/lease/revoke', body: { ID: req.id } };
    case 'compact':
      return { service: 'kv', method: 'Compact', path: '/v3/kv/compaction', body: { revision: String(req.revision) } };
    case 'leaseExpire':
      throw new Error('a lease expiry is not a request');
  }
}

/** The history Response of a successful answer. */
export function answer(req: Request, res: any, json: boolean): Response {
  const revision = Number(res.header?.revision ?? 0);
  switch (req.type) {
    case 'range':
      return { revision, ...rangeFrom(res, json) };
    case 'delete':
      return { revision, deleted: Number(res.deleted ?? 0) };
    case 'txn': {
      const ops = res.succeeded ? req.success : req.failure;
      const results = (res.responses ?? []).map((r: any, i: number): TxnResult => {
        const op = ops[i];
        if ('put' in op) return { put: true };
        if ('del' in op) return { deleted: Number(r.response_delete_range?.deleted ?? 0) };
        return rangeFrom(r.response_range ?? {}, json);
      });
      return { revision, succeeded: !!res.succeeded, results };
    }
    case 'leaseGrant':
      return { revision, id: String(res.ID) };
    default:
      return { revision };
  }
}

export class GrpcConn implements Conn {
  readonly transport = 'grpc' as const;
  private readonly kv: grpc.Client;
  private readonly lease: grpc.Client;
  readonly watch: grpc.Client;
  constructor(readonly instance: number, endpoint: string, private readonly timeoutMs: number) {
    const creds = grpc.credentials.createInsecure();
    // Reconnect quickly after an instance restarts.
    const opts = { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 500 };
    this.kv = new pkg.etcdserverpb.KV(endpoint, creds, opts);
    const channelOverride = (this.kv as any).getChannel();
    this.lease = new pkg.etcdserverpb.Lease(endpoint, creds, { ...opts, channelOverride });
    this.watch = new pkg.etcdserverpb.Watch(endpoint, creds, { ...opts, channelOverride });
  }
  send(req: Request): Promise<Response> {
    const w = wire(req, false);
    const client = w.service === 'lease' ? this.lease : this.kv;
    return new Promise((resolve, reject) => {
      (client as any)[w.method](w.body, new grpc.Metadata(), { deadline: Date.now() + this.timeoutMs }, (err: grpc.ServiceError | null, res: any) => {
        if (!err) resolve(answer(req, res, false));
        else if (DEFINITE.has(err.code)) resolve({ error: { code: err.code, message: err.details } });
        // grpc-js fails a call this way only before sending it (no ready connection, no wait-for-ready)
        else if (err.code === grpc.status.UNAVAILABLE && /^No connection established/.test(err.details)) resolve({ error: NOT_SENT });
        else reject(new Unknown(`${grpc.status[err.code]}: ${err.details}`));
      });
    });
  }
  close(): void {
    this.kv.close();
  }
}

export class HttpConn implements Conn {
  readonly transport = 'http' as const;
  constructor(readonly instance: number, private readonly url: string, private readonly timeoutMs: number) {}
  async send(req: Request): Promise<Response> {
    const w = wire(req, true);
    let res: globalThis.Response;
    let text: string;
    try {
      res = await fetch(this.url + w.path, { method: 'POST', body: JSON.stringify(w.body), signal: AbortSignal.timeout(this.timeoutMs) });
      text = await res.text();
    } catch (err) {
      if ((err as { cause?: { code?: string } }).cause?.code === 'ECONNREFUSED') return { error: NOT_SENT };
      throw new Unknown(`HTTP: ${(err as Error).message}`);
    }
    let body: any;
    try {
      body = JSON.parse(text);
    } catch {
      throw new Unknown(`HTTP ${res.status}: ${text.slice(0, 100)}`);
    }
    if (res.ok && !body.error) return answer(req, body, true);
    const code = Number(body.code ?? 2);
    if (DEFINITE.has(code)) return { error: { code, message: String(body.message ?? body.error) } };
    throw new Unknown(`HTTP ${res.status}: ${body.message ?? text.slice(0, 100)}`);
  }
  close(): void {}
}
