// Small HTTP helpers shared by the gateway's unary and streaming paths.
import type { IncomingMessage } from 'node:http';
import { status } from '@grpc/grpc-js';
import type { Request, Response } from 'express';
import type { CallMeta } from '../api/context';
import { EtcdError, toStatus } from '../errors';
import { httpStatus } from './routes';

/** The token travels as the raw Authorization header (APISIX sends no scheme); a Bearer prefix is accepted too. */
export function metaFromHttp(req: Request): CallMeta {
  const auth = req.headers.authorization;
  return { token: auth ? auth.replace(/^Bearer\s+/i, '') : undefined };
}

/** A unary error as etcd's gateway writes it. */
export function sendError(res: Response, err: unknown): void {
  const { code, details } = toStatus(err);
  if (res.headersSent) {
    res.end();
    return;
  }
  const msg = JSON.stringify(details);
  sendJson(res, httpStatus(code), `{"error":${msg},"message":${msg},"code":${code}}`);
}

/** JSON as etcd's gateway sends it: `application/json` with no charset (express would add one to a string). */
export function sendJson(res: Response, statusCode: number, json: string): void {
  res.status(statusCode).set('content-type', 'application/json').send(Buffer.from(json));
}

/**
 * A request body (or one message of a streaming body) longer than any request
 * may be once encoded. etcd's gateway reads such a body whole and answers
 * RESOURCE_EXHAUSTED from gRPC; this server stops at the limit and says why.
 */
export class RequestBodyTooLarge extends EtcdError {
  constructor(limit: number) {
    super(status.RESOURCE_EXHAUSTED, `etcd-adapter: request body larger than ${limit} bytes`);
  }
}

/** Bytes of an over-long body read and dropped after the answer, so that the client gets it (no reset); past this the connection is closed. */
const DRAIN_BYTES = 64 << 20;

/**
 * Reads and drops the rest of a request body: the client, still sending,
 * reads the answer already sent instead of a connection reset. A client that
 * goes on past DRAIN_BYTES is disconnected.
 */
export function drainRequest(req: IncomingMessage): void {
  let dropped = 0;
  req.removeAllListeners('data');
  req.on('data', (c: Buffer | string) => {
    dropped += c.length;
    if (dropped > DRAIN_BYTES) req.socket.destroy();
  });
  req.resume();
}

/** Reads the whole body; one longer than `limit` is refused as soon as it gets there (and drained). */
export function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        chunks.length = 0;
        reject(new RequestBodyTooLarge(limit));
        drainRequest(req);
        return;
      }
      chunks.push(c);
    });
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.once('error', reject);
  });
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  409: 'Conflict',
  412: 'Precondition Failed',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

export function statusText(status: number): string {
  return STATUS_TEXT[status] ?? 'Error';
}
