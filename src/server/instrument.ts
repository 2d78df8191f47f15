// What every unary call goes through, on either transport (gRPC, fast or
// not, and the HTTP gateway): the gRPC server metrics etcd exports (started,
// handled by code, messages), the client request counter, etcd's mvcc request
// counters, and etcd's "apply request took too long" warning for slow calls.
import type { CallMeta, ServiceHandlers } from '../api/context';
import { toStatus } from '../errors';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';
import { requestSize } from '../proto';

/** etcd's mvcc counters, per KV method (a txn also counts the ops inside it). */
function mvccCounter(metrics: Metrics, method: string, req: any): void {
  switch (method) {
    case 'Range':
      return void metrics.ranges.inc();
    case 'Put':
      return void metrics.puts.inc();
    case 'DeleteRange':
      return void metrics.deletes.inc();
    case 'Txn': {
      metrics.txns.inc();
      let ranges = 0;
      let puts = 0;
      let deletes = 0;
      const walk = (ops: any[] | undefined) => {
        for (const op of ops ?? []) {
          if (op.request === 'request_range') ranges++;
          else if (op.request === 'request_put') puts++;
          else if (op.request === 'request_delete_range') deletes++;
          else if (op.request === 'request_txn') {
            walk(op.request_txn?.success);
            walk(op.request_txn?.failure);
          }
        }
      };
      walk(req?.success);
      walk(req?.failure);
      if (ranges) metrics.ranges.inc(ranges);
      if (puts) metrics.puts.inc(puts);
      if (deletes) metrics.deletes.inc(deletes);
      return;
    }
  }
}

/** A request as etcd's warning shows it: keys and sizes, never values or passwords. */
function summary(service: string, method: string, req: any): string {
  const text = (b: unknown) => (Buffer.isBuffer(b) ? JSON.stringify(b.toString('latin1')) : '');
  if (service !== 'etcdserverpb.KV' || !req) return method;
  const parts: string[] = [];
  if (req.key?.length) parts.push(`key:${text(req.key)}`);
  if (req.range_end?.length) parts.push(`range_end:${text(req.range_end)}`);
  if (req.value?.length) parts.push(`value_size:${req.value.length}`);
  if (method === 'Txn') parts.push(`compare:${req.compare?.length ?? 0} success:${req.success?.length ?? 0} failure:${req.failure?.length ?? 0}`);
  return parts.join(' ');
}

export interface InstrumentOptions {
  metrics: Metrics | null;
  logger: Logger;
  /** --warning-apply-duration, ms. */
  slowMs: number;
}

export function instrumentUnary(services: Record<string, ServiceHandlers>, opts: InstrumentOptions): Record<string, ServiceHandlers> {
  const { metrics, logger, slowMs } = opts;
  const out: Record<string, ServiceHandlers> = {};
  for (const [service, handlers] of Object.entries(services)) {
    const wrapped: ServiceHandlers = {};
    for (const [method, handler] of Object.entries(handlers)) {
      if (!handler) continue;
      const counters = metrics?.method(service, method, 'unary');
      const isKv = service === 'etcdserverpb.KV';
      wrapped[method] = async (req: any, meta: CallMeta) => {
        const started = performance.now();
        if (metrics && counters) {
          counters.started.inc();
          counters.received.inc();
          metrics.clientRequest('unary', meta.apiVersion);
          const bytes = requestSize(req);
          if (bytes > 0) metrics.grpcReceivedBytes.inc(bytes);
        }
        let code = 0;
        try {
          const res = await handler(req, meta);
          if (metrics && counters) {
            counters.sent.inc();
            if (isKv) mvccCounter(metrics, method, req);
          }
          return res;
        } catch (err) {
          code = toStatus(err).code;
          throw err;
        } finally {
          counters?.done(code);
          const took = performance.now() - started;
          if (took > slowMs) {
            metrics?.slowRequests.inc();
            logger.warn('apply request took too long', {
              took: `${took.toFixed(1)}ms`,
              'expected-duration': `${slowMs}ms`,
              prefix: `${service}.${method}`,
              request: summary(service, method, req),
              ...(code ? { 'grpc-code': code } : {}),
            });
          }
        }
      };
    }
    out[service] = wrapped;
  }
  return out;
}
