// etcd's HTTP/JSON gateway on express: every path maps onto the same handlers
// as gRPC (no second implementation). JSON in and out as etcd's gateway writes
// it; errors as {"error","message","code"} with etcd's HTTP status per code.
import { verifiedCommonName } from '../tls-identity';
import express, { type Request, type Response } from 'express';
import type * as protobuf from 'protobufjs';
import type { ServiceHandlers } from '../api/context';
import { status } from '@grpc/grpc-js';
import { EtcdError, unimplemented } from '../errors';
import { metaFromHttp, readBody, sendError, sendJson } from './http';
import { protoRoot, setRequestSize } from '../proto';
import { messageSize } from '../proto-size';
import { fromJson, parseJson, syntaxError, toJson } from './json';
import { API_PREFIXES, ROUTES, type Route } from './routes';
import { serveJsonStream, type StreamServer } from './json-stream';
import { opsRoutes, type OpsDeps } from './ops';
import { WAKE_PATH } from '../server/peer-wake';

export interface GatewayDeps {
  unary: Record<string, ServiceHandlers>;
  /** Streaming methods by "service/method": they read JSON requests and write `{"result":...}` lines. */
  streams: Record<string, StreamServer>;
  maxRequestBytes: number;
  /** The largest request gRPC takes (--max-request-bytes plus gRPC's allowance): beyond it, RESOURCE_EXHAUSTED. */
  maxReceiveBytes: number;
  /** /version, /health, /livez, /readyz, /metrics. */
  ops: OpsDeps;
  /** Whether auth is on (with a client certificate, the API paths are then refused, as etcd does). */
  authEnabled(): boolean;
  /** Another instance committed: read the log now (src/server/peer-wake.ts). */
  wake?(): void;
  /** etcd's --cors: the origins allowed ("*" or empty: any). */
  cors?: string;
}

/**
 * etcd's CORS handling on its client URLs: every answer says which origin may
 * read it (any, by default), and OPTIONS (a browser's preflight) is answered
 * 200 on every path without going further.
 */
function cors(list: string): express.RequestHandler {
  const origins = list.split(',').map((o) => o.trim()).filter(Boolean);
  const any = origins.length === 0 || origins.includes('*');
  return (req, res, next) => {
    const origin = any ? '*' : origins.find((o) => o === req.headers.origin);
    if (origin) {
      res.setHeader('Access-Control-Allow-Headers', 'accept, content-type, authorization');
      res.setHeader('Access-Control-Allow-Methods', 'POST, GET, OPTIONS, PUT, DELETE');
      res.setHeader('Access-Control-Allow-Origin', origin);
    }
    if (req.method === 'OPTIONS') {
      res.status(200).end();
      return;
    }
    next();
  };
}

/**
 * etcd with --client-cert-auth and auth on refuses every gateway API call
 * made with a client certificate that has a Common Name, Authenticate
 * included: the gateway cannot vouch for the name, so it must not seem to be
 * used (over gRPC the name is the user). Same status, type and text.
 */
function refuseCommonName(deps: GatewayDeps): express.RequestHandler {
  return (req, res, next) => {
    if (!deps.authEnabled() || !verifiedCommonName(req.socket)) return next();
    res.status(400).set('x-content-type-options', 'nosniff').type('text/plain; charset=utf-8').send('CommonName of client sending a request against gateway will be ignored and not used as expected\n');
  };
}

function lookup(route: Route): { req: protobuf.Type; res: protobuf.Type } {
  const service = protoRoot.lookupService(route.service);
  const m = service.methods[route.method];
  m.resolve();
  return { req: m.resolvedRequestType!, res: m.resolvedResponseType! };
}

/** Only the operators' paths, for --listen-metrics-urls. */
export function createOpsApp(ops: OpsDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  opsRoutes(app, ops);
  app.use((_req, res) => {
    res.status(404).type('text/plain').send('404 page not found\n');
  });
  return app;
}

export function createGateway(deps: GatewayDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  // The JSON of the largest request gRPC would take: bytes travel in base64 (4/3), plus names.
  // Bodies up to this are parsed and answered as etcd answers them; longer ones are refused unread.
  const bodyLimit = Math.ceil((deps.maxReceiveBytes * 4) / 3) + 256 * 1024;

  app.use(cors(deps.cors ?? '*'));
  opsRoutes(app, deps.ops);
  app.post(WAKE_PATH, (_req, res) => {
    deps.wake?.();
    res.status(204).end();
  });

  for (const prefix of API_PREFIXES) {
    app.use(prefix, refuseCommonName(deps));
    for (const [path, route] of Object.entries(ROUTES)) {
      const types = lookup(route);
      const stream = deps.streams[`${route.service}/${route.method}`];
      const handler = stream
        ? (req: Request, res: Response) => serveJsonStream(req, res, types, stream, metaFromHttp(req), bodyLimit)
        : unaryHandler(route, types, deps, bodyLimit);
      app.post(prefix + path, handler);
      app.all(prefix + path, (_req, res) => {
        res.status(405).type('text/plain').send('Method Not Allowed\n');
      });
    }
    app.use(prefix, (_req, res) => {
      res.status(404).type('text/plain').send('Not Found\n');
    });
  }
  app.use((_req, res) => {
    res.status(404).type('text/plain').send('404 page not found\n');
  });
  return app;
}

function unaryHandler(route: Route, types: { req: protobuf.Type; res: protobuf.Type }, deps: GatewayDeps, bodyLimit: number) {
  return async (req: Request, res: Response) => {
    try {
      const body = await readBody(req, bodyLimit);
      let json: unknown = {};
      if (body.trim().length > 0) {
        try {
          json = parseJson(body);
        } catch (err) {
          throw err instanceof EtcdError ? err : syntaxError(body);
        }
      }
      const request = fromJson(types.req, json);
      // Small bodies cannot exceed the limit once encoded; measure only big ones.
      if (body.length > deps.maxRequestBytes / 2) {
        const size = messageSize(types.req, request);
        if (size > deps.maxReceiveBytes) throw new EtcdError(status.RESOURCE_EXHAUSTED, `grpc: received message larger than max (${size} vs. ${deps.maxReceiveBytes})`);
        setRequestSize(request, size);
      }
      const handler = deps.unary[route.service]?.[route.method];
      if (!handler) throw unimplemented(`etcd-adapter: ${route.service}.${route.method} is not implemented`);
      const out = await handler(request, metaFromHttp(req));
      sendJson(res, 200, toJson(types.res, out as Record<string, unknown>));
    } catch (err) {
      sendError(res, err);
    }
  };
}

