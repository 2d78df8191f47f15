// Binds the API handlers onto a grpc-js server. Every method of every service
// in proto/ is registered; one without a handler answers UNIMPLEMENTED with a
// sentence naming it.
import * as grpc from '@grpc/grpc-js';
import type { CallMeta, ServiceHandlers } from '../api/context';
import { toStatus, unimplemented } from '../errors';
import { packageDefinition } from '../proto';
import type { FastMethod } from './grpc-fast-unary';

export type StreamHandler = (call: grpc.ServerDuplexStream<any, any> | grpc.ServerWritableStream<any, any>) => void;

export interface GrpcServices {
  /** Unary handlers by service full name ("etcdserverpb.KV"). */
  unary: Record<string, ServiceHandlers>;
  /** Streaming handlers by "service/method" ("etcdserverpb.Watch/Watch"). */
  streams: Record<string, StreamHandler>;
}

export function callMeta(metadata: grpc.Metadata, call?: { getAuthContext?(): { sslPeerCertificate?: { subject?: { CN?: unknown } } } }): CallMeta {
  const token = metadata.get('token')[0] ?? metadata.get('authorization')[0];
  const version = metadata.get('client-api-version')[0];
  // grpc-js reports the certificate only when TLS verified it
  const cn = call?.getAuthContext?.().sslPeerCertificate?.subject?.CN;
  return { token: token === undefined ? undefined : String(token), apiVersion: version === undefined ? undefined : String(version), certUser: typeof cn === 'string' && cn ? cn : undefined };
}

/** Every service in proto/, by full name (the package definition also holds message types). */
function serviceDefinitions(): [string, grpc.ServiceDefinition][] {
  return Object.entries(packageDefinition)
    .filter(([, def]) => def && typeof def === 'object' && !('format' in def))
    .map(([name, def]) => [name, def as grpc.ServiceDefinition]);
}

/**
 * The grpc-js server for the services. `onSent`, when given, is told the
 * size of every answer grpc-js encodes (etcd's sent-bytes counter).
 */
export function createGrpcServer(services: GrpcServices, options: grpc.ServerOptions, onSent?: (bytes: number) => void): grpc.Server {
  const server = new grpc.Server(options);
  for (const [serviceName, definition] of serviceDefinitions()) {
    const service = onSent ? countingSent(definition, onSent) : definition;
    const handlers = services.unary[serviceName] ?? {};
    const impl: grpc.UntypedServiceImplementation = {};
    for (const [method, m] of Object.entries(service)) {
      const stream = services.streams[`${serviceName}/${method}`];
      const missing = unimplemented(`etcd-adapter: ${serviceName}.${method} is not implemented`);
      if (m.requestStream || m.responseStream) {
        impl[method] =
          stream ??
          ((call: grpc.ServerWritableStream<unknown, unknown>) => {
            call.emit('error', { code: missing.code, details: missing.message });
          });
        continue;
      }
      const handler = handlers[method];
      impl[method] = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        if (!handler) return callback({ code: missing.code, details: missing.message });
        handler(call.request, callMeta(call.metadata, call)).then(
          (res) => callback(null, res),
          (err) => callback(toStatus(err)),
        );
      };
    }
    server.addService(service, impl);
  }
  return server;
}

/** The service's methods with their answers counted as they are encoded. */
function countingSent(service: grpc.ServiceDefinition, onSent: (bytes: number) => void): grpc.ServiceDefinition {
  return Object.fromEntries(
    Object.entries(service).map(([name, m]) => {
      const serialize = m.responseSerialize;
      const responseSerialize = (res: unknown) => {
        const bytes = serialize(res);
        onSent(bytes.length);
        return bytes;
      };
      return [name, { ...m, responseSerialize }];
    }),
  ) as grpc.ServiceDefinition;
}

/** The unary methods that have a handler, by HTTP/2 path, for the short road (grpc-fast-unary.ts). */
export function fastUnaryMethods(unary: GrpcServices['unary']): Map<string, FastMethod> {
  const out = new Map<string, FastMethod>();
  for (const [serviceName, service] of serviceDefinitions()) {
    for (const [method, m] of Object.entries(service)) {
      const handler = unary[serviceName]?.[method];
      if (m.requestStream || m.responseStream || !handler) continue;
      out.set(m.path, { decode: (buf) => m.requestDeserialize(buf), encode: (res) => m.responseSerialize(res), handler });
    }
  }
  return out;
}
