// Alarms and the space quota, as etcd: when the store grows past
// --quota-backend-bytes, the NOSPACE alarm goes up (for every instance: the
// alarms are a shared document) and puts, txns that put and lease grants are
// refused with "database space exceeded" until an operator frees space and
// disarms the alarm.
import { ErrNoSpace } from '../errors';
import type { MvccStore } from './store';
import { silentLogger, type Logger } from '../logger';

export const AlarmType = { NONE: 0, NOSPACE: 1, CORRUPT: 2 } as const;
export const AlarmAction = { GET: 0, ACTIVATE: 1, DEACTIVATE: 2 } as const;
const DOC = 'alarms';
const NAMES = ['NONE', 'NOSPACE', 'CORRUPT'];
const alarmName = (a: AlarmMember) => NAMES[a.alarm] ?? String(a.alarm);

export interface AlarmMember {
  memberID: string;
  alarm: number;
}

export class Alarms {
  private alarms: AlarmMember[] = [];
  private version = 0;
  /** The store's size as last measured, plus what was written since. */
  private size = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly store: MvccStore,
    /** etcd's --quota-backend-bytes */
    private readonly quotaBytes: number,
    private readonly memberId: () => string,
    private readonly refreshMs: number,
    private readonly logger: Logger = silentLogger,
  ) {}

  async open(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh().catch(() => undefined), this.refreshMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async refresh(): Promise<void> {
    const [doc, stats] = await Promise.all([this.store.driver.getDoc(DOC), this.store.driver.stats()]);
    this.size = stats.dbSize;
    if (doc && doc.version !== this.version) this.adopt(doc.value as AlarmMember[], doc.version);
  }

  /** Takes the shared list as it now is; logs what changed (on every instance, as each learns it). */
  private adopt(list: AlarmMember[], version: number): void {
    const key = (a: AlarmMember) => `${a.memberID}/${a.alarm}`;
    const before = new Set(this.alarms.map(key));
    const after = new Set(list.map(key));
    for (const a of list) if (!before.has(key(a))) this.logger.warn('alarm raised', { alarm: alarmName(a), from: a.memberID });
    for (const a of this.alarms) if (!after.has(key(a))) this.logger.info('alarm disarmed', { alarm: alarmName(a), from: a.memberID });
    this.alarms = list;
    this.version = version;
  }

  list(): AlarmMember[] {
    return this.alarms;
  }

  /** As etcd's Status errors: protobuf text form, "memberID:123 alarm:NOSPACE " (trailing space included). */
  errors(): string[] {
    return this.alarms.map((a) => `memberID:${a.memberID} alarm:${alarmName(a)} `);
  }

  /** For /health: etcd 3.5's reason ("ALARM NOSPACE"), or null with no alarm. */
  healthReason(): string | null {
    return this.alarms.length ? this.alarms.map((a) => `ALARM ${alarmName(a)}`).join(', ') : null;
  }

  /** Before a write that adds `bytes`: refuse if NOSPACE is up, or raise it if this would pass the quota. */
  async admit(bytes: number): Promise<void> {
    if (this.alarms.some((a) => a.alarm === AlarmType.NOSPACE)) throw ErrNoSpace;
    if (this.size + bytes > this.quotaBytes) {
      await this.change(AlarmAction.ACTIVATE, this.memberId(), AlarmType.NOSPACE);
      throw ErrNoSpace;
    }
    this.size += bytes;
  }

  /**
   * The Alarm RPC's ACTIVATE and DEACTIVATE. As etcd, answers with the alarm
   * acted on: the one raised (or already up), the one cleared, or none when
   * there was nothing to clear.
   */
  async change(action: number, memberID: string, alarm: number): Promise<AlarmMember[]> {
    const { list, version, touched } = await this.store.write({
      run: async (view) => {
        const doc = await view.doc(DOC);
        let list = (doc?.value as AlarmMember[] | undefined) ?? [];
        const member = { memberID, alarm };
        const has = list.some((a) => a.memberID === memberID && a.alarm === alarm);
        if (action === AlarmAction.ACTIVATE && !has) list = [...list, member];
        else if (action === AlarmAction.DEACTIVATE && has) list = list.filter((a) => !(a.memberID === memberID && a.alarm === alarm));
        else return { list, version: doc?.version ?? 0, touched: action === AlarmAction.ACTIVATE ? [member] : [] };
        const version = (doc?.version ?? 0) + 1;
        view.putDoc(DOC, { version, value: list });
        return { list, version, touched: [member] };
      },
    });
    if (version !== this.version) this.adopt(list, version);
    return touched;
  }
}
