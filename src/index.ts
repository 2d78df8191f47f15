// The library entry point: start an etcd-compatible server inside this
// process (in-memory by default) and get its URL and a close().
import { parseArgs, type Config } from './config';
import { EtcdAdapterServer } from './server/server';
import { createLogger, type Logger, type LogLevel } from './logger';

export interface StartOptions {
  /** Port to listen on; 0 (the default) picks a free one. */
  port?: number;
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** Storage backend URL (default "memory"; see the README for sqlite://, mysql://, tidb://). */
  backend?: string;
  /** Member name (default "default"). */
  name?: string;
  /** etcd's --max-request-bytes (default 1.5 MiB). */
  maxRequestBytes?: number;
  /** etcd's --max-txn-ops (default 128). */
  maxTxnOps?: number;
  /** SQL backends: how often to read other instances' changes, in ms (default 100). */
  pollIntervalMs?: number;
  /** Automatic compaction; default: keep the last 10,000 revisions. */
  autoCompaction?: { mode: 'revision' | 'periodic'; retention: string; checkIntervalMs?: number };
  /** Where the default SQLite file would live (unused for memory). */
  dataDir?: string;
  /** SQL backends: memory budget of the read cache in bytes (default 256 MiB; 0 turns it off). */
  readCacheBytes?: number;
  /** SQL backends: length of the read lease in ms (default 2000; 0 turns it off): alone on its database, an instance answers linearizable reads without a query. */
  readLeaseMs?: number;
  /** etcd's --quota-backend-bytes (default 2 GiB). */
  quotaBackendBytes?: number;
  /** etcd's --auth-token-ttl, seconds (default 300). */
  authTokenTtl?: number;
  /** Where logs go: a Logger of yours (see `createLogger`, or `silentLogger`); by default JSON lines on stderr at `logLevel`. */
  logger?: Logger;
  /** With the default logger: debug, info, warn (the default) or error. */
  logLevel?: LogLevel;
  /** Prometheus metrics on /metrics (default true). */
  metrics?: boolean;
  /** An etcd snapshot (`etcdctl snapshot save`, from etcd or from us) to start from: its keys with their revisions and history, leases, users and roles. The store must be empty. */
  initialSnapshot?: string;
}

export interface RunningServer {
  /** The client URL, e.g. "http://127.0.0.1:41234": give it to etcd clients as the endpoint. */
  url: string;
  /** host:port, the form etcdctl --endpoints takes. */
  endpoint: string;
  port: number;
  /** Stop serving and release everything. */
  close(): Promise<void>;
}

export async function startServer(options: StartOptions = {}): Promise<RunningServer> {
  const { config } = parseArgs([], {});
  const host = options.host ?? '127.0.0.1';
  const hostPart = host.includes(':') ? `[${host}]` : host;
  const listen = `http://${hostPart}:${options.port ?? 0}`;
  const merged: Config = {
    ...config,
    name: options.name ?? config.name,
    backend: options.backend ?? 'memory',
    listenClientUrls: [listen],
    advertiseClientUrls: [listen],
    maxRequestBytes: options.maxRequestBytes ?? config.maxRequestBytes,
    maxTxnOps: options.maxTxnOps ?? config.maxTxnOps,
    pollInterval: options.pollIntervalMs ?? config.pollInterval,
    autoCompactionMode: options.autoCompaction?.mode ?? config.autoCompactionMode,
    autoCompactionRetention: options.autoCompaction?.retention ?? config.autoCompactionRetention,
    autoCompactionCheckMs: options.autoCompaction?.checkIntervalMs,
    dataDir: options.dataDir ?? config.dataDir,
    readCacheBytes: options.readCacheBytes ?? config.readCacheBytes,
    readLease: options.readLeaseMs ?? config.readLease,
    quotaBackendBytes: options.quotaBackendBytes ?? config.quotaBackendBytes,
    authTokenTtl: options.authTokenTtl ?? config.authTokenTtl,
    metrics: options.metrics === false ? 'off' : config.metrics,
    initialSnapshot: options.initialSnapshot ?? '',
  };
  merged.advertiseClientUrls = merged.listenClientUrls;
  const logger = options.logger ?? createLogger({ level: options.logLevel ?? 'warn', format: 'json', outputs: ['stderr'] });
  const server = await EtcdAdapterServer.start(merged, logger);
  const url = server.urls[0];
  const port = Number(new URL(url).port);
  return { url, endpoint: `${host}:${port}`, port, close: () => server.close() };
}

export { EtcdAdapterServer } from './server/server';
export { createLogger, silentLogger, type Logger, type LogLevel } from './logger';
export type { Config } from './config';
