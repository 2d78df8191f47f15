// The Watch service over the HTTP gateway: one WatchSession per POST /v3/watch.
import { fieldJson, toJson } from './json';
import { WatchSession, type WatchContext, type WatchResponse } from '../api/watch';
import { protoRoot } from '../proto';
import type { StreamServer } from './json-stream';
import { streamStats, type Metrics } from '../metrics';

const WatchResponseType = protoRoot.lookupType('etcdserverpb.WatchResponse');
const HEADER = WatchResponseType.fields.header;
const EVENTS = WatchResponseType.fields.events;

/** The JSON of a response; event batches shared by many watchers are printed once. */
export function watchResponseJson(res: WatchResponse): string {
  if (!res.batch || res.fragment) return toJson(WatchResponseType, res as unknown as Record<string, unknown>);
  const cache = (res.batch.cache ??= new Map());
  let parts = cache.get('json') as [string, string] | undefined;
  if (!parts) {
    parts = [fieldJson(HEADER, res.header), fieldJson(EVENTS, res.events)];
    cache.set('json', parts);
  }
  const id = res.watch_id === '0' ? '' : `,"watch_id":"${res.watch_id}"`;
  return `{${parts[0]}${id},${parts[1]}}`;
}

export function watchJson(ctx: WatchContext, metrics: Metrics | null): StreamServer {
  return {
    open(out, meta) {
      const stats = streamStats(metrics, 'etcdserverpb.Watch', 'Watch', meta.apiVersion);
      metrics?.httpWatches.inc();
      const session = new WatchSession(
        ctx,
        {
          send: (res) => {
            stats.sent();
            return out.send(watchResponseJson(res));
          },
          writable: () => out.writable(),
        },
        meta,
      );
      out.onDrain(() => session.drained());
      return {
        request: (req) => {
          stats.received();
          session.handle(req);
        },
        end: () => undefined, // the watch stays open after the request body ends
        close: () => {
          stats.closed(0);
          metrics?.httpWatches.dec();
          session.close();
        },
      };
    },
  };
}
