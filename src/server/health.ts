// grpc.health.v1: SERVING while the server runs.
import type * as grpc from '@grpc/grpc-js';
import type { ServiceHandlers } from '../api/context';
import type { StreamHandler } from './grpc-server';

const SERVING = 1;

export function healthService(): ServiceHandlers {
  return { Check: async () => ({ status: SERVING }) };
}

export function healthStreams(): Record<string, StreamHandler> {
  return {
    'grpc.health.v1.Health/Watch': (call) => {
      (call as grpc.ServerWritableStream<unknown, unknown>).write({ status: SERVING });
    },
  };
}
