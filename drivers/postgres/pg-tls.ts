// sslmode=prefer (the default, as libpq's) and sslmode=allow, as libpq has
// them. node-postgres knows TLS on or off per connection; these modes depend
// on the server:
// - prefer: TLS where the server offers it, else none (a server built or
//   started without ssl answers the TLS request with 'N'; one whose TLS
//   handshake fails, or whose pg_hba.conf turns this user away over TLS, is
//   tried without, as libpq does);
// - allow: none, unless the server refuses this user without TLS
//   (pg_hba.conf `hostssl`, or `hostnossl ... reject`).
// Neither checks the server's certificate (libpq's neither does either):
// they protect against eavesdropping, not against an impostor.
//
// Which one a host gets is learned once, by a probe connection, and kept
// until a connection to it fails (forget()): a server restarted with other
// settings is looked at again. A host that cannot be reached fails the
// connection with the probe's own error; a probe that fails for any other
// reason (a wrong password) decides nothing, and the real connection reports
// what is wrong.
import pg from 'pg';
import { endpointName, type Endpoint } from './pg-hosts';

export type NegotiatedMode = 'prefer' | 'allow';

/** What node-postgres says when the server answers the TLS request with 'N'. */
const NO_TLS_HERE = 'The server does not support SSL connections';
/** Node's codes for a TLS handshake that failed (no protocol or cipher in common, a broken record). */
const TLS_FAILURES = /^(EPROTO|ERR_SSL_|ERR_TLS_)/;

export class TlsChoice {
  /** Per host: what its probe found (null: it could not tell), or the probe on its way (connections starting together share it). */
  private readonly known = new Map<string, Promise<boolean | null>>();

  constructor(
    private readonly mode: NegotiatedMode,
    /** The settings of a TLS connection (client certificate, no server check). */
    readonly tls: NonNullable<pg.ClientConfig['ssl']>,
    /** A probe's connection settings, host, port and TLS aside. */
    private readonly config: pg.ClientConfig,
    /** Whether an error says the host cannot be reached (refused, timed out, shutting down). */
    private readonly unreachable: (err: unknown) => boolean,
  ) {}

  /**
   * Whether connections to `e` use TLS. Rejects with the probe's error when the host cannot be
   * reached: a connection would fail the same way, and would otherwise wait its own timeout again.
   */
  async useTls(e: Endpoint): Promise<boolean> {
    // no TLS over a Unix socket (PostgreSQL offers none there, and libpq asks for none): no probe needed
    if (e.host.startsWith('/')) return false;
    const name = endpointName(e);
    let probing = this.known.get(name);
    if (!probing) {
      probing = this.probe(e);
      this.known.set(name, probing);
    }
    // unreachable or undecided: the next connection probes again
    const again = (p: Promise<boolean | null>) => this.known.get(name) === p && this.known.delete(name);
    const decided = await probing.catch((err: unknown) => {
      again(probing);
      throw err;
    });
    if (decided === null) again(probing);
    return decided ?? this.mode === 'prefer';
  }

  /** Look again at each host's next connection. */
  forget(): void {
    this.known.clear();
  }

  /** true: TLS; false: none; null: the probe could not tell. */
  private async probe(e: Endpoint): Promise<boolean | null> {
    const withTls = this.mode === 'prefer';
    const probe = new pg.Client({
      ...this.config,
      host: e.host,
      port: e.port,
      ssl: withTls ? this.tls : false,
      query_timeout: this.config.connectionTimeoutMillis,
      application_name: `${this.config.application_name ?? 'etcd-adapter'} (probe)`,
    });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      return withTls;
    } catch (err) {
      const { message = '', code } = err as { message?: string; code?: string };
      if (withTls && (message === NO_TLS_HERE || (code !== undefined && TLS_FAILURES.test(code)))) return false;
      // pg_hba.conf turned this user away for (no) encryption: the other way is the one
      if (code === '28000' && (withTls ? /SSL encryption/i : /no encryption/i).test(message)) return !withTls;
      if (this.unreachable(err)) throw err;
      return null;
    } finally {
      probe.end().catch(() => undefined);
    }
  }
}
