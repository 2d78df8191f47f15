// The operator's view of one server: its metrics (src/metrics.ts) and the
// log lines that are events rather than requests - the database lost and
// back, slow SQL, members joining and leaving, compactions. Built before the
// store (the driver needs its observers), given the store's parts once they
// exist; metrics read them only when Prometheus scrapes.
import type { Alarms } from '../mvcc/alarms';
import type { Driver, LogRead, MemberRecord } from '../mvcc/driver';
import { LiveKeyCount } from './key-count';
import { MEMBER_ALIVE_MS } from '../mvcc/driver';
import type { MvccStore } from '../mvcc/store';
import type { RangeRequest } from '../mvcc/requests';
import type { WatchHub } from '../mvcc/watch-hub';
import type { BatchObserver } from '../mvcc/write-batcher';
import type { SqlObserver } from '../../drivers/sql/sql-client';
import { ReadCachedDriver } from '../../drivers/sql/read-cache';
import type { Logger } from '../logger';
import { Metrics } from '../metrics';
import { CLUSTER_VERSION, SERVER_VERSION } from '../api/identity';

/** A serializable count of every live key (etcd_debugging_mvcc_keys_total's first count). */
function countAllKeys(): RangeRequest {
  const all = Buffer.from([0]);
  return {
    key: all,
    range_end: all,
    limit: 0,
    revision: 0,
    sort_order: 0,
    sort_target: 0,
    serializable: true,
    keys_only: false,
    count_only: true,
    min_mod_revision: 0,
    max_mod_revision: 0,
    min_create_revision: 0,
    max_create_revision: 0,
  };
}

/** SQL work slower than this is logged at warn, as Kine logs slow SQL. */
const SLOW_SQL_SECONDS = 0.5;

export interface StoreParts {
  driver: Driver;
  store: MvccStore;
  hub: WatchHub;
  alarms: Alarms;
  quotaBytes: number;
}

export class Telemetry {
  readonly metrics: Metrics | null;
  private parts: StoreParts | null = null;
  private members = new Map<string, string>();

  constructor(
    private readonly logger: Logger,
    enabled: boolean,
  ) {
    const parts = () => {
      if (!this.parts) throw new Error('the store is not open yet');
      return this.parts;
    };
    this.metrics = enabled
      ? new Metrics(
          {
            revisions: () => parts().store.revisions(),
            stats: () => parts().driver.stats(),
            // read-your-writes: the count includes what this process committed before the scrape
            keys: async () => {
              await parts().hub.reached(parts().store.knownRevision, 1000);
              return this.keyCount.get();
            },
            watchers: () => ({ total: parts().hub.watcherCount, slow: parts().hub.slowWatcherCount }),
            quotaBytes: () => parts().quotaBytes,
            membersAlive: async () => (await parts().driver.members(MEMBER_ALIVE_MS)).length,
            pendingWrites: () => parts().store.pendingWrites,
            readCache: () => {
              const d = parts().driver;
              return d instanceof ReadCachedDriver ? { bytes: d.bytesHeld, enabled: d.active, leaseHeld: d.leaseHeld } : { bytes: 0, enabled: false, leaseHeld: false };
            },
            tailLag: () => parts().hub.lag,
          },
          { server: SERVER_VERSION, cluster: CLUSTER_VERSION.split('.').slice(0, 2).join('.') },
        )
      : null;
  }

  attach(parts: StoreParts): void {
    this.parts = parts;
  }

  /** etcd_debugging_mvcc_keys_total, kept by the log tail (onLog) after one count. */
  private readonly keyCount = new LiveKeyCount(
    () => this.parts?.hub.revision ?? 0,
    async (revision) => {
      if (!this.parts) throw new Error('the store is not open yet');
      return Number((await this.parts.store.range({ ...countAllKeys(), revision })).count);
    },
  );

  /** Every log read of the watch hub's tail. */
  onLog(log: LogRead, after: number): void {
    if (this.metrics) this.keyCount.onLog(log, after);
  }

  /** What the SQL clients report: timings and errors (metrics), slow SQL and the database lost and back (logs). */
  readonly sql: SqlObserver = {
    timed: (kind, seconds, sql) => {
      this.metrics?.sqlTime(kind, seconds);
      if (seconds > SLOW_SQL_SECONDS) this.logger.warn('slow SQL', { took: `${(seconds * 1000).toFixed(0)}ms`, kind, ...(sql ? { sql } : {}) });
    },
    committed: (seconds) => this.metrics?.commitDuration.observe(seconds),
    failed: (code) => this.metrics?.sqlErrors.labels({ code }).inc(),
    health: (reason) => {
      if (reason) this.logger.warn('database unavailable', { reason });
      else this.logger.info('database available again');
    },
  };

  readonly batches: BatchObserver = {
    committed: (requests) => {
      if (!this.metrics) return;
      this.metrics.proposalsCommitted.inc(requests);
      this.metrics.proposalsApplied.inc(requests);
      this.metrics.batchSize.observe(requests);
    },
    failed: (requests) => this.metrics?.proposalsFailed.inc(requests),
  };

  compacted(ms: number, removed: number): void {
    this.metrics?.compactionDuration.observe(ms);
    this.metrics?.compactionKeys.inc(removed);
    this.logger.info('finished compaction', { took: `${ms.toFixed(0)}ms`, 'versions-removed': removed });
  }

  cachedRead(hit: boolean): void {
    if (this.metrics) (hit ? this.metrics.readCacheHits : this.metrics.readCacheMisses).n++;
  }

  events(count: number): void {
    this.metrics?.events.inc(count);
  }

  /** Logs the instances that joined or left since the last look (at each heartbeat). */
  async watchMembers(selfId: string): Promise<MemberRecord[] | null> {
    const driver = this.parts?.driver;
    if (!driver) return null;
    const live = await driver.members(MEMBER_ALIVE_MS).catch(() => null);
    if (!live) return null;
    const now = new Map(live.filter((m) => m.id !== selfId).map((m) => [m.id, m.name]));
    for (const [id, name] of now) if (!this.members.has(id)) this.logger.info('member joined', { 'member-id': id, name });
    for (const [id, name] of this.members) if (!now.has(id)) this.logger.info('member left', { 'member-id': id, name });
    this.members = now;
    return live;
  }
}
