// The server's lifecycle: open the store and the watch hub, bind every listen
// URL (gRPC and HTTP/JSON share each port), and shut everything down cleanly.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type * as net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import type { ApiContext, ServiceHandlers } from '../api/context';
import { authPolicies, clusterPolicies, guard, kvPolicies, leasePolicies, maintenancePolicies } from '../api/auth-guard';
import { authService } from '../api/auth';
import { clusterService } from '../api/cluster';
import { leaseService } from '../api/lease';
import { KV_COSTS, LEASE_COSTS, withQuota } from '../api/quota';
import { memberIdentity, stableId, type Identity } from '../api/identity';
import { OpenStreams } from './open-streams';
import { checkRequestSize, kvService } from '../api/kv';
import { maintenanceService } from '../api/maintenance';
import type { WatchContext } from '../api/watch';
import { ConfigError, parseClientUrl, retentionOf, type Config } from '../config';
import { createGateway } from '../gateway/gateway';
import { keepAliveJson } from '../gateway/keepalive-json';
import { watchJson } from '../gateway/watch-json';
import { Alarms, AlarmType } from '../mvcc/alarms';
import { AuthStore, type AuthInfo } from '../mvcc/auth-store';
import { Lessor } from '../mvcc/lessor';
import { AutoCompactor } from '../mvcc/auto-compactor';
import { MvccStore } from '../mvcc/store';
import { WatchHub } from '../mvcc/watch-hub';
import { allowTxnNesting, protoRoot } from '../proto';
import { messageSize } from '../proto-size';
import { createDriver } from '../../drivers/registry';
import { createGrpcServer, fastUnaryMethods } from './grpc-server';
import { installFastUnary, type FastMethod } from './grpc-fast-unary';
import { serveThroughHttp1 } from './h2-gateway';
import { acceptHttp2 } from './h2-authority';
import { PeerWaker, wakeOthersAfterCommits } from './peer-wake';
import { keepAliveStream } from './grpc-lease';
import { snapshotGrpc, snapshotJson } from './snapshot-streams';
import { importSnapshot } from '../snapshot/import';
import { watchStream } from './grpc-watch';
import { goStatusText } from '../errors';
import { healthStreams, healthService } from './health';
import { createListener, type TlsFiles } from './listener';
import { instrumentUnary } from './instrument';
import { Telemetry } from './telemetry';
import { createOpsApp } from '../gateway/gateway';
import type { OpsDeps } from '../gateway/ops';
import { silentLogger, type Logger } from '../logger';

/** gRPC may carry this much more than --max-request-bytes before refusing a message outright (as etcd). */
const GRPC_OVERHEAD_BYTES = 512 * 1024;
/** A write answers `request timed out` if it cannot commit within this (etcd: about 7 s). */
const REQUEST_TIMEOUT_MS = 5000;
/** /health gives its read this long before it answers 503. */
const HEALTH_TIMEOUT_MS = 1000;
/** Idle HTTP keep-alive connections are kept this long (etcd keeps them open; gateways reuse them). */
const HTTP_KEEPALIVE_MS = 10 * 60 * 1000;
/** How long a shutdown lets requests in flight finish and last words reach clients. */
const DRAIN_MS = 2000;

function mapValues<V>(o: Record<string, V>, f: (v: V) => V): Record<string, V> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, f(v)]));
}
const WatchResponseType = protoRoot.lookupType('etcdserverpb.WatchResponse');

export class EtcdAdapterServer {
  /** The URLs actually served (a port of 0 replaced by the bound port). */
  readonly urls: string[] = [];
  /** The --listen-metrics-urls actually served. */
  readonly metricsUrls: string[] = [];
  private telemetry: Telemetry | null = null;
  readonly identity: Identity;
  private readonly listeners: net.Server[] = [];
  private readonly sockets = new Set<net.Socket>();
  /** Streams to end with etcd's "transport is closing" at shutdown. */
  private readonly openStreams = new OpenStreams();
  /** HTTP requests being answered (a shutdown lets them finish, within DRAIN_MS). */
  private httpInFlight = 0;
  private httpIdle: (() => void) | null = null;
  private grpcServer: grpc.Server | null = null;
  private httpServer: http.Server | null = null;
  private store: MvccStore | null = null;
  private hub: WatchHub | null = null;
  private compactor: AutoCompactor | null = null;
  private lessor: Lessor | null = null;
  private auth: AuthStore | null = null;
  private alarms: Alarms | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  /** Shared SQL stores: wakes the other instances' log tails after commits the database does not announce (peer-wake.ts). */
  private peerWaker: PeerWaker | null = null;
  /** Unary methods for the short road past grpc-js (grpc-fast-unary.ts), installed once the listener exists. */
  private fastMethods = new Map<string, FastMethod>();
  private closing: Promise<void> | null = null;

  constructor(
    readonly config: Config,
    readonly logger: Logger = silentLogger,
  ) {
    // Filled in once the ports are bound: the member id covers the advertised URLs.
    this.identity = { clusterId: '0', memberId: '0', name: config.name, clientUrls: [], peerUrls: [] };
  }

  static async start(config: Config, logger?: Logger): Promise<EtcdAdapterServer> {
    const server = new EtcdAdapterServer(config, logger);
    try {
      await server.open();
    } catch (err) {
      await server.close().catch(() => undefined);
      throw err;
    }
    return server;
  }

  private async open(): Promise<void> {
    const { config } = this;
    allowTxnNesting(config.maxTxnOps);
    const { logger } = this;
    const telemetry = (this.telemetry = new Telemetry(logger, config.metrics !== 'off'));
    const driver = createDriver(config.backend, {
      dataDir: config.dataDir,
      readCacheBytes: config.readCacheBytes,
      readLeaseMs: config.readLease,
      logger,
      sqlObserver: telemetry.sql,
      onCachedRead: telemetry.metrics ? (hit) => telemetry.cachedRead(hit) : undefined,
    });
    await driver.open();
    if (config.initialSnapshot) {
      const loaded = await importSnapshot(driver, config.initialSnapshot);
      logger.info('loaded a snapshot', { file: config.initialSnapshot, revision: loaded.revision, 'compact-revision': loaded.compactRevision, versions: loaded.versions, leases: loaded.leases, users: loaded.users });
    }
    const store = (this.store = new MvccStore(driver, {
      maxTxnOps: config.maxTxnOps,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      logger,
      batches: telemetry.batches,
      onCompacted: (ms, removed) => telemetry.compacted(ms, removed),
    }));
    await store.open();
    // Other instances may write to a shared database: poll its log. Memory is this process's alone.
    const pollIntervalMs = driver.kind === 'memory' ? 0 : config.pollInterval;
    const hub = (this.hub = new WatchHub(driver, { batchRevisions: 100, pollIntervalMs, catchUpConcurrency: 8, onLog: (log, after) => telemetry.onLog(log, after) }, (rev) => store.observe(rev)));
    await hub.start();
    store.on('commit', () => hub.wake());
    // other instances' commits, at once where the database announces them
    driver.onCommitElsewhere?.(() => hub.wake());
    this.compactor = new AutoCompactor(store, retentionOf(config), logger, config.autoCompactionCheckMs);
    this.compactor.start();
    const lessor = (this.lessor = new Lessor(store));
    lessor.start((err) => logger.warn('lease expiry failed', { error: (err as Error).message }));
    const auth = (this.auth = new AuthStore(store, { tokenTtlSeconds: config.authTokenTtl, refreshMs: pollIntervalMs }));
    await auth.open();
    const quota = config.quotaBackendBytes > 0 ? config.quotaBackendBytes : 2 * 1024 ** 3;
    const alarms = (this.alarms = new Alarms(store, quota, () => this.identity.memberId, 5000, logger));
    await alarms.open();
    telemetry.attach({ driver, store, hub, alarms, quotaBytes: quota });
    const metrics = telemetry.metrics;

    const api: ApiContext = { store, identity: this.identity, limits: { maxRequestBytes: config.maxRequestBytes } };
    const watch: WatchContext = {
      hub,
      identity: this.identity,
      currentRevision: () => Math.max(hub.revision, store.knownRevision),
      fragmentBytes: config.maxRequestBytes + GRPC_OVERHEAD_BYTES,
      progressIntervalMs: config.watchProgressNotifyInterval,
      sizeOf: (res) => messageSize(WatchResponseType, res as unknown as Record<string, unknown>),
      onEvents: metrics ? (n) => telemetry.events(n) : undefined,
      permit: (range, meta) => {
        // back to etcd's request form: no end = one key, "\0" = no upper bound
        const end = range.end === null ? null : range.end.length === 0 ? Buffer.from([0]) : range.end;
        const decide = (info: AuthInfo | null) => {
          auth.check(info, 'read', range.key, end);
          return null;
        };
        // etcd gives Go's rendering of the gRPC error as the reason
        try {
          const info = auth.identify(meta.token, meta.certUser);
          return info instanceof Promise ? info.then(decide).catch(goStatusText) : decide(info);
        } catch (err) {
          return goStatusText(err);
        }
      },
    };
    const guarded: Record<string, ServiceHandlers> = {
      'etcdserverpb.KV': guard(withQuota(kvService(api), alarms, KV_COSTS), kvPolicies(auth, lessor, config.maxTxnOps, (req) => checkRequestSize(api, req)), auth),
      'etcdserverpb.Lease': guard(withQuota(leaseService(api, lessor), alarms, LEASE_COSTS), leasePolicies(auth, lessor), auth),
      'etcdserverpb.Maintenance': guard(maintenanceService(api, alarms), maintenancePolicies(auth, ['Defragment', 'Hash', 'HashKV', 'MoveLeader', 'Downgrade']), auth),
      'etcdserverpb.Cluster': guard(clusterService(api), clusterPolicies(auth, ['MemberAdd', 'MemberRemove', 'MemberUpdate', 'MemberPromote']), auth),
      'etcdserverpb.Auth': guard(authService(api, auth), authPolicies(auth), auth),
      'grpc.health.v1.Health': healthService(),
    };
    const unary = instrumentUnary(guarded, { metrics, logger, slowMs: config.warningApplyDuration });

    this.fastMethods = fastUnaryMethods(unary);
    this.grpcServer = createGrpcServer(
      {
        unary,
        streams: {
          ...mapValues(healthStreams(), (h) => this.openStreams.grpc(h)),
          'etcdserverpb.Watch/Watch': this.openStreams.grpc(watchStream(watch, metrics)),
          'etcdserverpb.Lease/LeaseKeepAlive': this.openStreams.grpc(keepAliveStream(api, lessor, metrics)),
          'etcdserverpb.Maintenance/Snapshot': this.openStreams.grpc(snapshotGrpc(api, auth, logger)),
        },
      },
      {
        'grpc.max_receive_message_length': config.maxRequestBytes + GRPC_OVERHEAD_BYTES,
        'grpc.max_send_message_length': -1,
        'grpc.keepalive_permit_without_calls': 1,
        // Per-call statistics nobody reads here; they cost CPU on every call.
        'grpc.enable_channelz': 0,
      },
      metrics ? (bytes) => metrics.grpcSentBytes.inc(bytes) : undefined,
    );
    const gateway = createGateway({
      unary,
      streams: {
        'etcdserverpb.Watch/Watch': this.openStreams.http(watchJson(watch, metrics)),
        'etcdserverpb.Lease/LeaseKeepAlive': this.openStreams.http(keepAliveJson(api, lessor, metrics)),
        'etcdserverpb.Maintenance/Snapshot': this.openStreams.http(snapshotJson(api, auth, logger)),
      },
      maxRequestBytes: config.maxRequestBytes,
      maxReceiveBytes: config.maxRequestBytes + GRPC_OVERHEAD_BYTES,
      ops: this.opsDeps(),
      authEnabled: () => auth.enabled,
      wake: () => hub.wake(),
      cors: config.cors,
    });
    this.httpServer = http.createServer({ keepAliveTimeout: HTTP_KEEPALIVE_MS, requestTimeout: 0 }, gateway);
    this.httpServer.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
      this.httpInFlight++;
      res.once('close', () => {
        if (--this.httpInFlight === 0) this.httpIdle?.();
      });
    });

    const tlsFiles = loadTls(config);
    // Shared SQL stores: instances wake each other after a commit, unless the store announces it
    // (PostgreSQL's NOTIFY, while it gets through). Memory and SQLite are one process.
    if (driver.kind === 'mysql' || driver.kind === 'tidb' || driver.kind === 'postgres') {
      wakeOthersAfterCommits(store, driver, (this.peerWaker = new PeerWaker(tlsFiles)), logger);
    }
    const bound = await this.listen(tlsFiles);
    this.metricsUrls.push(...(await this.listenMetrics(tlsFiles)));
    const advertised = config.advertiseClientUrls === config.listenClientUrls ? bound : config.advertiseClientUrls;
    const clusterId = driver.clusterId ?? stableId(`cluster:${driver.kind}:${config.name}`);
    // etcd's flags name the peer URLs; without them, the client URLs: the only ones that reach this member
    const peers = config.initialAdvertisePeerUrls.length ? config.initialAdvertisePeerUrls : config.listenPeerUrls.length ? config.listenPeerUrls : advertised;
    Object.assign(this.identity, memberIdentity(clusterId, config.name, advertised, peers));
    this.urls.push(...bound);
    // Say we are alive, for the member lists of every instance on this store; tell who came and went.
    const beat = async () => {
      await driver.heartbeat({ id: this.identity.memberId, name: this.identity.name, clientUrls: this.identity.clientUrls, peerUrls: this.identity.peerUrls }).catch(() => undefined);
      const live = await telemetry.watchMembers(this.identity.memberId);
      if (live) {
        const others = live.filter((m) => m.id !== this.identity.memberId);
        this.peerWaker?.setPeers(others);
        driver.othersServing?.(others.length > 0);
      }
    };
    await beat();
    this.heartbeat = setInterval(beat, 2000);
    this.heartbeat.unref();
  }

  /**
   * /version, /health, /livez, /readyz, /metrics. /health and /readyz ask the
   * database (at once "failing" when it is known to be: its last answer was a
   * fault or came too late; else one read, given a second, as etcd's /health);
   * /livez asks nothing of it.
   */
  private opsDeps(): OpsDeps {
    const { store, hub, alarms } = this;
    const driver = store!.driver;
    const linearizable = async () => {
      const failing = driver.failing?.();
      if (failing) return failing;
      await withTimeout(store!.revisions(), HEALTH_TIMEOUT_MS, 'etcdserver: request timed out');
      return null;
    };
    const metrics = this.telemetry?.metrics;
    return {
      unhealthy: async () => (await linearizable()) ?? alarms!.healthReason(),
      livez: [['serving', async () => (this.closing ? 'shutting down' : null)]],
      readyz: [
        ['data_corruption', async () => (alarms!.list().some((a) => a.alarm === AlarmType.CORRUPT) ? 'alarm CORRUPT' : null)],
        ['linearizable_read', linearizable],
        ['log_tail', async () => (hub!.error ? `the log tail cannot read: ${(hub!.error as Error).message ?? String(hub!.error)}` : null)],
      ],
      metrics: metrics ? () => metrics.text() : undefined,
    };
  }

  /** --listen-metrics-urls: the operators' paths alone, on their own ports. */
  private async listenMetrics(tlsFiles: TlsFiles | null): Promise<string[]> {
    if (this.config.listenMetricsUrls.length === 0) return [];
    const app = createOpsApp(this.opsDeps());
    const urls: string[] = [];
    for (const raw of this.config.listenMetricsUrls) {
      const u = parseClientUrl(raw, '--listen-metrics-urls');
      if (u.tls && !tlsFiles) throw new ConfigError('https:// --listen-metrics-urls need --cert-file and --key-file');
      const server = u.tls ? https.createServer({ cert: tlsFiles!.cert, key: tlsFiles!.key }, app) : http.createServer(app);
      urls.push(await this.bind(server, u));
    }
    return urls;
  }

  /** Listens at the URL's host and port, tracking connections for shutdown; returns the URL as bound. */
  private async bind(server: net.Server, u: { host: string; port: number; tls: boolean }): Promise<string> {
    server.on('connection', (s: net.Socket) => this.track(s));
    server.on('secureConnection', (s: net.Socket) => this.track(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(u.port, u.host, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
    this.listeners.push(server);
    const host = u.host.includes(':') ? `[${u.host}]` : u.host;
    return `${u.tls ? 'https' : 'http'}://${host}:${(server.address() as net.AddressInfo).port}`;
  }

  private async listen(tlsFiles: TlsFiles | null): Promise<string[]> {
    const injector = this.grpcServer!.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    const metrics = this.telemetry?.metrics;
    const httpServer = this.httpServer!;
    installFastUnary(this.grpcServer!, this.fastMethods, this.config.maxRequestBytes + GRPC_OVERHEAD_BYTES, metrics ? (bytes) => metrics.grpcSentBytes.inc(bytes) : undefined, (stream, headers) =>
      serveThroughHttp1(stream, headers, httpServer),
    );
    const urls: string[] = [];
    for (const raw of this.config.listenClientUrls) {
      const u = parseClientUrl(raw, '--listen-client-urls');
      const listener = createListener(u.tls ? tlsFiles : null, {
        grpc: (socket) => acceptHttp2(socket, (conn) => injector.injectConnection(conn)),
        http: (socket) => {
          httpServer.emit('connection', socket);
          // The HTTP parser reads the handle directly; resuming delivers the sniffed bytes to it.
          socket.resume();
        },
      });
      urls.push(await this.bind(listener, u));
    }
    return urls;
  }

  private track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  /** Stop listening, end every connection and stream, close the store. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  /**
   * As etcd stops: no new connections; every open stream ends with
   * "transport is closing" (an HTTP watch with etcd's last line and a clean
   * end of its body); requests in flight finish; then, or after DRAIN_MS,
   * every connection is closed and the store with them.
   */
  private async shutdown(): Promise<void> {
    // Stop accepting first; a listener's close callback waits for its connections, so end those before waiting.
    const closed = Promise.all(this.listeners.map((l) => new Promise((resolve) => l.close(resolve))));
    this.hub?.stop();
    this.compactor?.stop();
    this.lessor?.stop();
    this.auth?.stop();
    this.alarms?.stop();
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.peerWaker?.stop();
    this.store?.driver.stopping?.(); // a long compaction stops at its next step, not after the drain
    this.openStreams.endAll();
    const grpcDone = new Promise<void>((resolve) => (this.grpcServer ? this.grpcServer.tryShutdown(() => resolve()) : resolve()));
    const httpDone = new Promise<void>((resolve) => {
      if (this.httpInFlight === 0) return resolve();
      this.httpIdle = resolve;
    });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all([grpcDone, httpDone]), new Promise((resolve) => (timer = setTimeout(resolve, DRAIN_MS)))]);
    clearTimeout(timer);
    this.grpcServer?.forceShutdown();
    this.httpServer?.closeAllConnections();
    for (const s of this.sockets) s.destroy();
    await closed;
    await this.store?.driver.close();
  }
}


function loadTls(config: Config): TlsFiles | null {
  if (!config.certFile || !config.keyFile) return null;
  return {
    cert: fs.readFileSync(config.certFile),
    key: fs.readFileSync(config.keyFile),
    ca: config.trustedCaFile ? fs.readFileSync(config.trustedCaFile) : undefined,
    clientCertAuth: config.clientCertAuth,
  };
}

/** The work's result, or an error with `message` once `ms` have passed first. */
function withTimeout<T>(work: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}
