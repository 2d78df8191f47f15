// A client that behaves like Apache APISIX's config_etcd over the HTTP
// gateway: start-up (version check, directory puts, one sorted range over
// the prefix), then one long watch per worker from revision + 1, a client-side
// close after an idle period and a reopen from the same revision, and a full
// reload when the watch answers with compact_revision.
import * as http from 'node:http';
import { onJsonLines } from './json-lines';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string) => Buffer.from(s, 'base64').toString();

export async function post(base: string, path: string, body: object): Promise<any> {
  const res = await fetch(base + path, { method: 'POST', body: JSON.stringify(body) });
  const json = await res.json();
  if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

export class ApisixWorker {
  /** The configuration this worker holds: key -> value. */
  readonly config = new Map<string, string>();
  revision = 0;
  reloads = 0;
  reopens = 0;
  /** Every revision whose events this worker applied, in the order applied. */
  readonly applied: number[] = [];
  private req: http.ClientRequest | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly base: string,
    private readonly prefix: string,
    /** Close an idle watch after this long and reopen it from the same revision (APISIX: 50 s). */
    private readonly idleMs: number,
  ) {}

  async start(): Promise<void> {
    await this.reload();
    this.watch();
  }

  stop(): void {
    this.stopped = true;
    this.closeWatch();
  }

  /** Watch again from the revision this worker had reached, as after a network outage. */
  resume(): void {
    this.stopped = false;
    this.watch();
  }

  /** Close the watch now, as if idle, and reopen it from the same revision. */
  bounce(): void {
    this.closeWatch();
    this.reopens++;
    if (!this.stopped) this.watch();
  }

  private async reload(): Promise<void> {
    const res = await post(this.base, '/v3/kv/range', { key: b64(this.prefix), range_end: b64(this.prefix.slice(0, -1) + String.fromCharCode(this.prefix.charCodeAt(this.prefix.length - 1) + 1)) });
    this.config.clear();
    for (const kv of res.kvs ?? []) this.config.set(unb64(kv.key), unb64(kv.value ?? ''));
    this.revision = Number(res.header.revision);
  }

  private closeWatch(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.req?.destroy();
    this.req = null;
  }

  private armIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.bounce(), this.idleMs);
    this.idleTimer.unref();
  }

  private watch(): void {
    const end = this.prefix.slice(0, -1) + String.fromCharCode(this.prefix.charCodeAt(this.prefix.length - 1) + 1);
    const body = JSON.stringify({ create_request: { key: b64(this.prefix), range_end: b64(end), start_revision: this.revision + 1 } });
    const req = http.request(`${this.base}/v3/watch`, { method: 'POST' }, (res) => {
      onJsonLines(res, (msg) => void this.onMessage(msg.result));
      res.on('error', () => undefined);
    });
    req.on('error', () => undefined);
    req.end(body);
    this.req = req;
    this.armIdle();
  }

  private async onMessage(result: any): Promise<void> {
    if (!result) return;
    if (result.compact_revision && result.canceled) {
      // APISIX: the history is gone; read everything again and watch from there
      this.closeWatch();
      this.reloads++;
      await this.reload();
      if (!this.stopped) this.watch();
      return;
    }
    if (!result.events) return;
    this.armIdle();
    for (const ev of result.events) {
      const rev = Number(ev.kv.mod_revision);
      if (rev <= this.revision && this.applied.length > 0 && rev < this.applied[this.applied.length - 1]) {
        throw new Error(`revision went backwards: ${rev}`);
      }
      if (ev.type === 'DELETE') this.config.delete(unb64(ev.kv.key));
      else this.config.set(unb64(ev.kv.key), unb64(ev.kv.value ?? ''));
      if (this.applied[this.applied.length - 1] !== rev) this.applied.push(rev);
      this.revision = Math.max(this.revision, rev);
    }
  }
}
