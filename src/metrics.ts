// Prometheus metrics in etcd's own names, types, help texts and labels, so
// that etcd's dashboards and alerts work unchanged; ours are prefixed
// etcd_adapter_. One registry per server (several can run in one process),
// with prom-client's process and Node.js collectors.
//
// Counting happens where the work is (one increment of a cached child per
// event); gauges of the store (sizes, keys, revisions) are read when
// Prometheus scrapes, so an idle server does no metrics work at all.
import * as client from 'prom-client';

/** Read at scrape time. */
export interface MetricSources {
  revisions(): Promise<{ revision: number; compactRevision: number }>;
  stats(): Promise<{ dbSize: number; dbSizeInUse: number }>;
  keys(): Promise<number>;
  watchers(): { total: number; slow: number };
  quotaBytes(): number;
  membersAlive(): Promise<number>;
  pendingWrites(): number;
  readCache?(): { bytes: number; enabled: boolean; leaseHeld: boolean };
  tailLag(): number;
}

const GRPC_CODES = ['OK', 'Canceled', 'Unknown', 'InvalidArgument', 'DeadlineExceeded', 'NotFound', 'AlreadyExists', 'PermissionDenied', 'ResourceExhausted', 'FailedPrecondition', 'Aborted', 'OutOfRange', 'Unimplemented', 'Internal', 'Unavailable', 'DataLoss', 'Unauthenticated'];

/** gRPC's code name as go-grpc-prometheus labels it. */
export function grpcCodeName(code: number): string {
  return GRPC_CODES[code] ?? 'Unknown';
}

export type GrpcType = 'unary' | 'bidi_stream' | 'server_stream';

/** The counters of one gRPC method (cached children: no label lookup per call). */
export class MethodCounters {
  private readonly handled = new Map<number, client.Counter.Internal>();
  constructor(
    private readonly metrics: Metrics,
    private readonly labels: { grpc_type: GrpcType; grpc_service: string; grpc_method: string },
    readonly started: client.Counter.Internal,
    readonly received: client.Counter.Internal,
    readonly sent: client.Counter.Internal,
  ) {}

  done(code: number): void {
    let c = this.handled.get(code);
    if (!c) this.handled.set(code, (c = this.metrics.grpcHandled.labels({ ...this.labels, grpc_code: grpcCodeName(code) })));
    c.inc();
  }
}

/** One stream's counting (Watch, LeaseKeepAlive), on either transport. */
export interface StreamStats {
  received(): void;
  sent(bytes?: number): void;
  closed(code: number): void;
}

const NO_STREAM_STATS: StreamStats = { received: () => undefined, sent: () => undefined, closed: () => undefined };

/** Stream counting for a service method, or nothing without metrics. */
export function streamStats(metrics: Metrics | null, service: string, method: string, apiVersion: string | undefined): StreamStats {
  return metrics ? metrics.openStream(service, method, apiVersion) : NO_STREAM_STATS;
}

export class Metrics {
  readonly registry = new client.Registry();
  private readonly methods = new Map<string, MethodCounters>();

  // etcd server
  readonly proposalsCommitted: client.Gauge;
  readonly proposalsApplied: client.Gauge;
  readonly proposalsFailed: client.Counter;
  readonly clientRequests: client.Counter<'type' | 'client_api_version'>;
  // mvcc
  readonly ranges: client.Counter;
  readonly puts: client.Counter;
  readonly deletes: client.Counter;
  readonly txns: client.Counter;
  readonly events: client.Counter;
  readonly compactionDuration: client.Histogram;
  readonly compactionKeys: client.Counter;
  // disk, network
  readonly commitDuration: client.Histogram;
  readonly grpcReceivedBytes: client.Counter;
  readonly grpcSentBytes: client.Counter;
  // gRPC
  readonly grpcStarted: client.Counter<'grpc_type' | 'grpc_service' | 'grpc_method'>;
  readonly grpcHandled: client.Counter<'grpc_type' | 'grpc_service' | 'grpc_method' | 'grpc_code'>;
  readonly grpcReceived: client.Counter<'grpc_type' | 'grpc_service' | 'grpc_method'>;
  readonly grpcSent: client.Counter<'grpc_type' | 'grpc_service' | 'grpc_method'>;
  // ours
  readonly sqlDuration: client.Histogram<'kind'>;
  readonly sqlErrors: client.Counter<'code'>;
  readonly batchSize: client.Histogram;
  readonly readCacheHits: client.Counter<'result'>;
  readonly httpWatches: client.Gauge;
  readonly slowRequests: client.Counter;

  constructor(sources: MetricSources, versions: { server: string; cluster: string }) {
    const r = [this.registry];
    client.collectDefaultMetrics({ register: this.registry });
    // A gauge read at scrape time keeps its last value when its source fails (the database is down):
    // one failing source must not fail the whole scrape.
    const gauge = (name: string, help: string, collect?: (g: client.Gauge) => void | Promise<void>) =>
      new client.Gauge({
        name,
        help,
        registers: r,
        ...(collect
          ? {
              async collect(this: client.Gauge) {
                try {
                  await collect(this);
                } catch {
                  // keep the last value
                }
              },
            }
          : {}),
      });
    const counter = <L extends string = string>(name: string, help: string, labelNames: L[] = []) => new client.Counter<L>({ name, help, labelNames, registers: r });
    const histogram = <L extends string = string>(name: string, help: string, buckets: number[], labelNames: L[] = []) => new client.Histogram<L>({ name, help, buckets, labelNames, registers: r });

    // Every instance serves reads and writes as its own leader, and never changes leader.
    gauge('etcd_server_has_leader', 'Whether or not a leader exists. 1 is existence, 0 is not.').set(1);
    gauge('etcd_server_is_leader', 'Whether or not this member is a leader. 1 if is, 0 otherwise.').set(1);
    counter('etcd_server_leader_changes_seen_total', 'The number of leader changes seen.').inc();
    gauge('etcd_server_quota_backend_bytes', 'Current backend storage quota size in bytes.', (g) => g.set(sources.quotaBytes()));
    this.proposalsCommitted = gauge('etcd_server_proposals_committed_total', 'The total number of consensus proposals committed.');
    this.proposalsApplied = gauge('etcd_server_proposals_applied_total', 'The total number of consensus proposals applied.');
    gauge('etcd_server_proposals_pending', 'The current number of pending proposals to commit.', (g) => g.set(sources.pendingWrites()));
    this.proposalsFailed = counter('etcd_server_proposals_failed_total', 'The total number of failed proposals seen.');
    this.clientRequests = counter('etcd_server_client_requests_total', 'The total number of client requests per client version.', ['type', 'client_api_version']);
    new client.Gauge({ name: 'etcd_server_version', help: "Which version is running. 1 for 'server_version' label with current version.", labelNames: ['server_version'], registers: r }).set({ server_version: versions.server }, 1);
    new client.Gauge({ name: 'etcd_cluster_version', help: "Which version is running. 1 for 'cluster_version' label with current cluster version", labelNames: ['cluster_version'], registers: r }).set({ cluster_version: versions.cluster }, 1);

    gauge('etcd_mvcc_db_total_size_in_bytes', 'Total size of the underlying database physically allocated in bytes.', async (g) => g.set((await sources.stats()).dbSize));
    gauge('etcd_mvcc_db_total_size_in_use_in_bytes', 'Total size of the underlying database logically in use in bytes.', async (g) => g.set((await sources.stats()).dbSizeInUse));
    this.ranges = counter('etcd_mvcc_range_total', 'Total number of ranges seen by this member.');
    this.puts = counter('etcd_mvcc_put_total', 'Total number of puts seen by this member.');
    this.deletes = counter('etcd_mvcc_delete_total', 'Total number of deletes seen by this member.');
    this.txns = counter('etcd_mvcc_txn_total', 'Total number of txns seen by this member.');
    gauge('etcd_debugging_mvcc_keys_total', 'Total number of keys.', async (g) => g.set(await sources.keys()));
    gauge('etcd_debugging_mvcc_current_revision', 'The current revision of store.', async (g) => g.set((await sources.revisions()).revision));
    gauge('etcd_debugging_mvcc_compact_revision', 'The revision of the last compaction in store.', async (g) => g.set(Math.max(0, (await sources.revisions()).compactRevision)));
    gauge('etcd_debugging_mvcc_watcher_total', 'Total number of watchers.', (g) => g.set(sources.watchers().total));
    gauge('etcd_debugging_mvcc_slow_watcher_total', 'Total number of unsynced slow watchers.', (g) => g.set(sources.watchers().slow));
    this.events = counter('etcd_debugging_mvcc_events_total', 'Total number of events sent by this member.');
    // etcd's buckets: 100 ms doubling 14 times
    this.compactionDuration = histogram('etcd_debugging_mvcc_db_compaction_total_duration_milliseconds', 'Bucketed histogram of db compaction total duration.', client.exponentialBuckets(100, 2, 14));
    this.compactionKeys = counter('etcd_debugging_mvcc_db_compaction_keys_total', 'Total number of db keys compacted.');

    // etcd's buckets: 1 ms doubling 14 times
    this.commitDuration = histogram('etcd_disk_backend_commit_duration_seconds', 'The latency distributions of commit called by backend.', client.exponentialBuckets(0.001, 2, 14));
    this.grpcReceivedBytes = counter('etcd_network_client_grpc_received_bytes_total', 'The total number of bytes received from grpc clients.');
    this.grpcSentBytes = counter('etcd_network_client_grpc_sent_bytes_total', 'The total number of bytes sent to grpc clients.');

    const grpcLabels = ['grpc_type', 'grpc_service', 'grpc_method'] as const;
    this.grpcStarted = counter('grpc_server_started_total', 'Total number of RPCs started on the server.', [...grpcLabels]);
    this.grpcHandled = counter('grpc_server_handled_total', 'Total number of RPCs completed on the server, regardless of success or failure.', [...grpcLabels, 'grpc_code']);
    this.grpcReceived = counter('grpc_server_msg_received_total', 'Total number of RPC stream messages received on the server.', [...grpcLabels]);
    this.grpcSent = counter('grpc_server_msg_sent_total', 'Total number of gRPC stream messages sent by the server.', [...grpcLabels]);

    this.sqlDuration = histogram('etcd_adapter_sql_duration_seconds', 'Time of SQL work by kind: write (a write transaction, COMMIT included), read (a read snapshot), statement (one statement alone).', client.exponentialBuckets(0.0005, 2, 16), ['kind']);
    this.sqlErrors = counter('etcd_adapter_sql_errors_total', 'SQL errors by code (the database error code, or timeout).', ['code']);
    this.batchSize = histogram('etcd_adapter_group_commit_batch_size', 'Client writes committed together in one database transaction.', client.exponentialBuckets(1, 2, 10));
    gauge('etcd_adapter_log_tail_lag_revisions', 'How many revisions (written through other instances) the log tail had not read yet at its last read.', (g) => g.set(sources.tailLag()));
    this.readCacheHits = counter('etcd_adapter_read_cache_reads_total', 'Reads at the latest revision, by whether the read cache answered them (hit) or the database (miss).', ['result']);
    gauge('etcd_adapter_read_cache_bytes', 'Memory the read cache holds (0 when it is off).', (g) => g.set(sources.readCache?.().bytes ?? 0));
    gauge('etcd_adapter_read_lease_held', 'Whether this instance holds the read lease (1) or not (0).', (g) => g.set(sources.readCache?.().leaseHeld ? 1 : 0));
    gauge('etcd_adapter_members_alive', 'Instances serving this store, as their heartbeats say.', async (g) => g.set(await sources.membersAlive()));
    this.httpWatches = gauge('etcd_adapter_http_watch_streams', 'Open watch streams on the HTTP/JSON gateway.');
    this.slowRequests = counter('etcd_adapter_slow_requests_total', 'Requests that took longer than --warning-apply-duration.');
  }

  /** The counters of one gRPC method, made once. */
  method(service: string, method: string, type: GrpcType): MethodCounters {
    const key = `${service}/${method}`;
    let m = this.methods.get(key);
    if (!m) {
      const labels = { grpc_type: type, grpc_service: service, grpc_method: method };
      m = new MethodCounters(this, labels, this.grpcStarted.labels(labels), this.grpcReceived.labels(labels), this.grpcSent.labels(labels));
      this.methods.set(key, m);
    }
    return m;
  }

  /** A stream has started: its counters, each message counted as it goes, the end once. */
  openStream(service: string, method: string, apiVersion: string | undefined): StreamStats {
    const m = this.method(service, method, 'bidi_stream');
    m.started.inc();
    this.clientRequest('stream', apiVersion);
    let open = true;
    return {
      received: () => m.received.inc(),
      sent: (bytes) => {
        m.sent.inc();
        if (bytes) this.grpcSentBytes.inc(bytes);
      },
      closed: (code) => {
        if (!open) return;
        open = false;
        m.done(code);
      },
    };
  }

  private readonly clientRequestCounters = new Map<string, client.Counter.Internal>();

  /** etcd_server_client_requests_total: by call type and the client's API version ("unknown" when it sends none). */
  clientRequest(type: 'unary' | 'stream', apiVersion: string | undefined): void {
    const version = apiVersion ?? 'unknown';
    const key = `${type}:${version}`;
    let c = this.clientRequestCounters.get(key);
    if (!c) {
      // bounded: a client can send any text as its version
      if (this.clientRequestCounters.size > 64) return this.clientRequests.labels({ type, client_api_version: 'other' }).inc();
      this.clientRequestCounters.set(key, (c = this.clientRequests.labels({ type, client_api_version: version })));
    }
    c.inc();
  }

  /** The text Prometheus scrapes. */
  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
