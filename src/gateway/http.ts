// Small HTTP helpers shared by the gateway's unary and streaming paths.
import type { Request, Response } from 'express';
import type { CallMeta } from '../api/context';
import { ErrRequestTooLarge, toStatus } from '../errors';
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
  res.status(httpStatus(code)).type('application/json').send(`{"error":${msg},"message":${msg},"code":${code}}`);
}

/** Reads the whole body, refusing one far beyond what any request may carry. */
export function readBody(req: Request, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(ErrRequestTooLarge);
        req.destroy();
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
