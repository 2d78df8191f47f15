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

/**
 * A count the hot path bumps as a plain number (`n += v`: no label hashing,
 * no validation per event); prom-client is told the total when Prometheus
 * scrapes. This is what keeps counting within the benchmark's 3%.
 */
export class Tally {
  n = 0;
  inc(v = 1): void {
    this.n += v;
  }
}

/** A prom-client counter or gauge fed from tallies, one per label set, at scrape time. */
class Tallied<L extends string> {
  private readonly cells = new Map<string, { labels: Partial<Record<L, string>>; tally: Tally }>();
  readonly metric: client.Counter<L> | client.Gauge<L>;

  constructor(type: 'counter' | 'gauge', name: string, help: string, labelNames: L[], registers: client.Registry[]) {
    const cells = this.cells;
    const config = { name, help, labelNames, registers };
    this.metric =
      type === 'counter'
        ? new client.Counter<L>({
            ...config,
            collect() {
              this.reset();
              for (const c of cells.values()) this.inc(c.labels, c.tally.n);
            },
          })
        : new client.Gauge<L>({
            ...config,
            collect() {
              for (const c of cells.values()) this.set(c.labels, c.tally.n);
            },
          });
  }

  /** The tally of one label set, made once and kept (callers keep it too). */
  cell(labels: Partial<Record<L, string>> = {}): Tally {
    const key = JSON.stringify(labels);
    let c = this.cells.get(key);
    if (!c) this.cells.set(key, (c = { labels, tally: new Tally() }));
    return c.tally;
  }

  get size(): number {
    return this.cells.size;
  }
}

export type GrpcType = 'unary' | 'bidi_stream' | 'server_stream';

/** The counters of one gRPC method (cached children: no label lookup per call). */
export class MethodCounters {
  private readonly handled: Tally[] = [];
  constructor(
    private readonly grpcHandled: Tallied<'grpc_type' | 'grpc_service' | 'grpc_method' | 'grpc_code'>,
    private readonly labels: { grpc_type: GrpcType; grpc_service: string; grpc_method: string },
    readonly started: Tally,
    readonly received: Tally,
    readonly sent: Tally,
  ) {}

  done(code: number): void {
    (this.handled[code] ??= this.grpcHandled.cell({ ...this.labels, grpc_code: grpcCodeName(code) })).n++;
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
  // Counters on a hot path are tallies (above); the rest are prom-client's own.
  readonly proposalsCommitted: Tally;
  readonly proposalsApplied: Tally;
  readonly proposalsFailed: client.Counter;
  private readonly clientRequests: Tallied<'type' | 'client_api_version'>;
  // mvcc
  readonly ranges: Tally;
  readonly puts: Tally;
  readonly deletes: Tally;
  readonly txns: Tally;
  readonly events: Tally;
  readonly compactionDuration: client.Histogram;
  readonly compactionKeys: client.Counter;
  // disk, network
  readonly commitDuration: client.Histogram;
  readonly grpcReceivedBytes: Tally;
  readonly grpcSentBytes: Tally;
  // gRPC
  private readonly grpcStarted: Tallied<'grpc_type' | 'grpc_service' | 'grpc_method'>;
  private readonly grpcHandled: Tallied<'grpc_type' | 'grpc_service' | 'grpc_method' | 'grpc_code'>;
  private readonly grpcReceived: Tallied<'grpc_type' | 'grpc_service' | 'grpc_method'>;
  private readonly grpcSent: Tallied<'grpc_type' | 'grpc_service' | 'grpc_method'>;
  // ours
  private readonly sqlDurations = new Map<string, client.Histogram.Internal<'kind'>>();
  private readonly sqlDuration: client.Histogram<'kind'>;
  readonly sqlErrors: client.Counter<'code'>;
  readonly batchSize: client.Histogram;
  readonly readCacheHits: Tally;
  readonly readCacheMisses: Tally;
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
    const tallied = <L extends string = never>(type: 'counter' | 'gauge', name: string, help: string, labelNames: L[] = []) => new Tallied<L>(type, name, help, labelNames, r);
    const histogram = <L extends string = string>(name: string, help: string, buckets: number[], labelNames: L[] = []) => new client.Histogram<L>({ name, help, buckets, labelNames, registers: r });

    // Every instance serves reads and writes as its own leader, and never changes leader.
    gauge('etcd_server_has_leader', 'Whether or not a leader exists. 1 is existence, 0 is not.').set(1);
    gauge('etcd_server_is_leader', 'Whether or not this member is a leader. 1 if is, 0 otherwise.').set(1);
    counter('etcd_server_leader_changes_seen_total', 'The number of leader changes seen.').inc();
    gauge('etcd_server_quota_backend_bytes', 'Current backend storage quota size in bytes.', (g) => g.set(sources.quotaBytes()));
    // gauges in etcd, although they only grow
    this.proposalsCommitted = tallied('gauge', 'etcd_server_proposals_committed_total', 'The total number of consensus proposals committed.').cell();
    this.proposalsApplied = tallied('gauge', 'etcd_server_proposals_applied_total', 'The total number of consensus proposals applied.').cell();
    gauge('etcd_server_proposals_pending', 'The current number of pending proposals to commit.', (g) => g.set(sources.pendingWrites()));
    this.proposalsFailed = counter('etcd_server_proposals_failed_total', 'The total number of failed proposals seen.');
    this.clientRequests = tallied('counter', 'etcd_server_client_requests_total', 'The total number of client requests per client version.', ['type', 'client_api_version']);
    new client.Gauge({ name: 'etcd_server_version', help: "Which version is running. 1 for 'server_version' label with current version.", labelNames: ['server_version'], registers: r }).set({ server_version: versions.server }, 1);
    new client.Gauge({ name: 'etcd_cluster_version', help: "Which version is running. 1 for 'cluster_version' label with current cluster version", labelNames: ['cluster_version'], registers: r }).set({ cluster_version: versions.cluster }, 1);

    gauge('etcd_mvcc_db_total_size_in_bytes', 'Total size of the underlying database physically allocated in bytes.', async (g) => g.set((await sources.stats()).dbSize));
    gauge('etcd_mvcc_db_total_size_in_use_in_bytes', 'Total size of the underlying database logically in use in bytes.', async (g) => g.set((await sources.stats()).dbSizeInUse));
    this.ranges = tallied('counter', 'etcd_mvcc_range_total', 'Total number of ranges seen by this member.').cell();
    this.puts = tallied('counter', 'etcd_mvcc_put_total', 'Total number of puts seen by this member.').cell();
    this.deletes = tallied('counter', 'etcd_mvcc_delete_total', 'Total number of deletes seen by this member.').cell();
    this.txns = tallied('counter', 'etcd_mvcc_txn_total', 'Total number of txns seen by this member.').cell();
    gauge('etcd_debugging_mvcc_keys_total', 'Total number of keys.', async (g) => g.set(await sources.keys()));
    gauge('etcd_debugging_mvcc_current_revision', 'The current revision of store.', async (g) => g.set((await sources.revisions()).revision));
    gauge('etcd_debugging_mvcc_compact_revision', 'The revision of the last compaction in store.', async (g) => g.set(Math.max(0, (await sources.revisions()).compactRevision)));
    gauge('etcd_debugging_mvcc_watcher_total', 'Total number of watchers.', (g) => g.set(sources.watchers().total));
    gauge('etcd_debugging_mvcc_slow_watcher_total', 'Total number of unsynced slow watchers.', (g) => g.set(sources.watchers().slow));
    this.events = tallied('counter', 'etcd_debugging_mvcc_events_total', 'Total number of events sent by this member.').cell();
    // etcd's buckets: 100 ms doubling 14 times
    this.compactionDuration = histogram('etcd_debugging_mvcc_db_compaction_total_duration_milliseconds', 'Bucketed histogram of db compaction total duration.', client.exponentialBuckets(100, 2, 14));
    this.compactionKeys = counter('etcd_debugging_mvcc_db_compaction_keys_total', 'Total number of db keys compacted.');

    // etcd's buckets: 1 ms doubling 14 times
    this.commitDuration = histogram('etcd_disk_backend_commit_duration_seconds', 'The latency distributions of commit called by backend.', client.exponentialBuckets(0.001, 2, 14));
    this.grpcReceivedBytes = tallied('counter', 'etcd_network_client_grpc_received_bytes_total', 'The total number of bytes received from grpc clients.').cell();
    this.grpcSentBytes = tallied('counter', 'etcd_network_client_grpc_sent_bytes_total', 'The total number of bytes sent to grpc clients.').cell();

    const grpcLabels = ['grpc_type', 'grpc_service', 'grpc_method'] as const;
    this.grpcStarted = tallied('counter', 'grpc_server_started_total', 'Total number of RPCs started on the server.', [...grpcLabels]);
    this.grpcHandled = tallied('counter', 'grpc_server_handled_total', 'Total number of RPCs completed on the server, regardless of success or failure.', [...grpcLabels, 'grpc_code']);
    this.grpcReceived = tallied('counter', 'grpc_server_msg_received_total', 'Total number of RPC stream messages received on the server.', [...grpcLabels]);
    this.grpcSent = tallied('counter', 'grpc_server_msg_sent_total', 'Total number of gRPC stream messages sent by the server.', [...grpcLabels]);

    this.sqlDuration = histogram('etcd_adapter_sql_duration_seconds', 'Time of SQL work by kind: write (a write transaction, COMMIT included), read (a read snapshot), statement (one statement alone).', client.exponentialBuckets(0.0005, 2, 16), ['kind']);
    this.sqlErrors = counter('etcd_adapter_sql_errors_total', 'SQL errors by code (the database error code, or timeout).', ['code']);
    this.batchSize = histogram('etcd_adapter_group_commit_batch_size', 'Client writes committed together in one database transaction.', client.exponentialBuckets(1, 2, 10));
    gauge('etcd_adapter_log_tail_lag_revisions', 'How many revisions (written through other instances) the log tail had not read yet at its last read.', (g) => g.set(sources.tailLag()));
    const reads = tallied('counter', 'etcd_adapter_read_cache_reads_total', 'Reads at the latest revision, by whether the read cache answered them (hit) or the database (miss).', ['result']);
    this.readCacheHits = reads.cell({ result: 'hit' });
    this.readCacheMisses = reads.cell({ result: 'miss' });
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
      m = new MethodCounters(this.grpcHandled, labels, this.grpcStarted.cell(labels), this.grpcReceived.cell(labels), this.grpcSent.cell(labels));
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

  private readonly clientRequestTallies = { unary: new Map<string, Tally>(), stream: new Map<string, Tally>() };

  /** etcd_server_client_requests_total: by call type and the client's API version ("unknown" when it sends none). */
  clientRequest(type: 'unary' | 'stream', apiVersion: string | undefined): void {
    const version = apiVersion ?? 'unknown';
    const byVersion = this.clientRequestTallies[type];
    let c = byVersion.get(version);
    if (!c) {
      // bounded: a client can send any text as its version
      const known = byVersion.size < 32;
      c = this.clientRequests.cell({ type, client_api_version: known ? version : 'other' });
      if (known) byVersion.set(version, c);
    }
    c.n++;
  }

  /** SQL time by kind (the histogram's child kept per kind). */
  sqlTime(kind: string, seconds: number): void {
    let h = this.sqlDurations.get(kind);
    if (!h) this.sqlDurations.set(kind, (h = this.sqlDuration.labels({ kind })));
    h.observe(seconds);
  }

  /** The text Prometheus scrapes. */
  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
