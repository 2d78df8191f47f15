// Several PostgreSQL hosts in one URL, as libpq takes them
// (postgres://user@h1:5432,h2:5432/db?target_session_attrs=read-write): new
// connections go to the first host, in the URL's order, that answers - and,
// with target_session_attrs=read-write or primary, that takes writes. This is
// how clients follow a failover (Patroni, pg_auto_failover, a promoted
// standby) with no proxy in between.
//
// The chosen host is kept until a connection to it fails or finds it
// read-only (the client then calls forget()); the next connection looks again,
// from the first host. node-postgres has no multi-host support: its clients are
// pointed at the chosen host just before they connect.
import pg from 'pg';
import type { TlsChoice } from './pg-tls';

export interface Endpoint {
  host: string;
  port: number;
}

/** libpq's target_session_attrs values that we honour. */
export type SessionAttrs = 'any' | 'read-write' | 'primary';

export const SESSION_ATTRS: readonly SessionAttrs[] = ['any', 'read-write', 'primary'];

/** What a host must answer to be chosen. */
const CHECKS: Record<SessionAttrs, { sql: string; unfit: string } | null> = {
  any: null,
  'read-write': { sql: "SELECT current_setting('transaction_read_only') = 'on' AS unfit", unfit: 'read-only' },
  primary: { sql: 'SELECT pg_is_in_recovery() AS unfit', unfit: 'a standby' },
};

export function endpointName(e: Endpoint): string {
  return e.host.startsWith('/') ? `${e.host}/.s.PGSQL.${e.port}` : `${e.host}:${e.port}`;
}

export class HostChooser {
  private chosen: Endpoint | null = null;
  private finding: Promise<Endpoint> | null = null;

  constructor(
    private readonly endpoints: Endpoint[],
    private readonly attrs: SessionAttrs,
    /** The connection settings of a probe (user, password, TLS...), host and port aside. */
    private readonly config: pg.ClientConfig,
    /** sslmode=prefer or allow: TLS or not, host by host. */
    private readonly tls: TlsChoice | null = null,
  ) {}

  /** The host new connections go to (looked for when none is chosen). */
  current(): Promise<Endpoint> {
    if (this.chosen) return Promise.resolve(this.chosen);
    this.finding ??= this.find().finally(() => (this.finding = null));
    return this.finding;
  }

  /** Look again at the next connection (the chosen host failed, or takes no writes now). */
  forget(): void {
    this.chosen = null;
  }

  private async find(): Promise<Endpoint> {
    const check = CHECKS[this.attrs];
    const refusals: string[] = [];
    let unfit = false;
    let lastError: unknown = null;
    // bounded like a connection: a host that accepts and then never answers is passed over
    const probeConfig = { ...this.config, query_timeout: this.config.connectionTimeoutMillis, application_name: `${this.config.application_name ?? 'etcd-adapter'} (probe)` };
    for (const e of this.endpoints) {
      let probe: pg.Client | null = null;
      try {
        const ssl = this.tls ? (await this.tls.useTls(e)) && this.tls.tls : probeConfig.ssl;
        probe = new pg.Client({ ...probeConfig, host: e.host, port: e.port, ssl });
        probe.on('error', () => undefined);
        await probe.connect();
        if (check && (await probe.query(check.sql)).rows[0].unfit) {
          unfit = true;
          refusals.push(`${endpointName(e)} is ${check.unfit}`);
          continue;
        }
        return (this.chosen = e);
      } catch (err) {
        lastError = err;
        refusals.push(`${endpointName(e)}: ${(err as Error).message || (err as { code?: string }).code}`);
      } finally {
        // not waited for: a host that stopped answering would hold the search up
        probe?.end().catch(() => undefined);
      }
    }
    // none answered: the last one's own error, which says what is wrong as with one host
    if (!unfit && lastError) throw lastError;
    // 08001 (sqlclient_unable_to_establish_sqlconnection): unavailable, to the callers
    throw Object.assign(new Error(`no host takes writes (target_session_attrs=${this.attrs}): ${refusals.join('; ')}`), { code: '08001' });
  }
}

/**
 * A node-postgres Client class whose connections go to the chooser's current host (several
 * hosts), with TLS or not as `tls` decides for that host (sslmode=prefer, allow). pg-pool
 * connects its clients with a callback; the listener with a promise: both are served.
 */
export function routedClient(chooser: HostChooser | null, tls: TlsChoice | null): typeof pg.Client {
  return class RoutedClient extends pg.Client {
    override connect(): Promise<pg.Client>;
    override connect(callback: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): void;
    override connect(callback?: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): Promise<pg.Client> | void {
      // read by the client when it opens its socket
      const self = this as unknown as Endpoint & { ssl: pg.ClientConfig['ssl']; connection: { ssl: pg.ClientConfig['ssl'] } };
      const connected = (async () => {
        const e = chooser ? await chooser.current() : { host: self.host, port: self.port };
        [self.host, self.port] = [e.host, e.port];
        if (tls) {
          // node-postgres reads both when it connects: the client's to ask for TLS, its connection's to start it
          const ssl = (await tls.useTls(e)) ? tls.tls : false;
          self.ssl = ssl;
          self.connection.ssl = ssl;
        }
        return super.connect();
      })();
      if (!callback) return connected;
      const done = callback as (err: Error | null, c?: pg.Client) => void;
      connected.then((c) => done(null, c), (err: Error) => done(err));
    }
  };
}
