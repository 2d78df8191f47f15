// Automatic compaction, as etcd's --auto-compaction-mode/-retention:
//   revision: keep the last N revisions (checked every minute);
//   periodic: keep history newer than a duration (sampled every tenth of it).
// Every instance runs one; they are safe together: the compact revision only
// moves forward (a second instance gets "compacted" and ignores it) and the
// physical work is coordinated by the driver.
import type { Retention } from '../config';
import { ErrCompacted } from '../errors';
import type { Logger } from '../logger';
import type { MvccStore } from './store';

const REVISION_CHECK_MS = 60_000;

export class AutoCompactor {
  private timer: NodeJS.Timeout | null = null;
  /** periodic mode: (time, revision) samples, oldest first */
  private samples: { at: number; revision: number }[] = [];
  private running = false;

  constructor(
    private readonly store: MvccStore,
    private readonly retention: Retention,
    private readonly logger: Logger,
    checkMs?: number,
  ) {
    this.checkMs = checkMs ?? (retention && 'ms' in retention ? Math.max(1000, retention.ms / 10) : REVISION_CHECK_MS);
  }

  private readonly checkMs: number;

  start(): void {
    if (!this.retention) return;
    this.timer = setInterval(() => void this.tick(), this.checkMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** One check: compact if the retention allows it. Exposed for tests. */
  async tick(): Promise<number | null> {
    if (!this.retention || this.running) return null;
    this.running = true;
    try {
      const { revision, compactRevision } = await this.store.revisions();
      let target: number;
      if ('revisions' in this.retention) {
        target = revision - this.retention.revisions;
      } else {
        const keep = this.retention.ms;
        const now = Date.now();
        this.samples.push({ at: now, revision });
        const old = this.samples.filter((s) => now - s.at >= keep);
        if (old.length === 0) return null;
        target = old[old.length - 1].revision;
        this.samples = this.samples.filter((s) => s.at > old[old.length - 1].at);
      }
      if (target <= Math.max(compactRevision, 0)) return null;
      await this.store.compact({ revision: target, physical: true });
      this.logger.info('finished auto-compaction', { 'compact-revision': target });
      return target;
    } catch (err) {
      if (err !== ErrCompacted) this.logger.warn('auto-compaction failed', { error: (err as Error).message });
      return null;
    } finally {
      this.running = false;
    }
  }
}
