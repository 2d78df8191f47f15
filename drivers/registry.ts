// Drivers by backend URL scheme. An unknown scheme, a bad URL or a database
// that cannot be used is a clear error naming what is wrong; passwords never
// appear in messages.
//   memory                                  in this process only
//   sqlite:///abs/path/state.db             SQLite file (sqlite://relative/path works too)
//   mysql://user:pass@host:3306/db          MySQL or MariaDB (mariadb:// is the same;
//                                           ?socket=/run/mysqld/mysqld.sock for a Unix socket; TLS with
//                                           ?ssl-mode=VERIFY_IDENTITY&ssl-ca=..., ssl-cert, ssl-key)
//   tidb://user:pass@host:4000/db           TiDB
//   postgres://user:pass@host:5432/db       PostgreSQL (postgresql:// is the same; ?sslmode=, ?sslrootcert=,
//                                           ?sslcert= and ?sslkey= for a client certificate; a Unix socket
//                                           as libpq takes it: ?host=/var/run/postgresql, or that
//                                           directory percent-encoded as the host; several hosts as
//                                           h1:5432,h2:5432 with ?target_session_attrs=read-write)
//   (none)                                  SQLite at <data-dir>/state.db
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Driver } from '../src/mvcc/driver';
import { MemoryDriver } from './memory/memory-driver';
import { MYSQL_TLS_FILES, MysqlClient, SSL_MODES, type MysqlTarget } from './mysql/mysql-client';
import { mysqlDialect, tidbDialect } from './mysql/mysql-dialect';
import { PG_TLS_FILES, PostgresClient, type PostgresTarget } from './postgres/pg-client';
import { postgresDialect } from './postgres/pg-dialect';
import { endpointName, SESSION_ATTRS } from './postgres/pg-hosts';
import { privateDataDir, privateSqliteFiles } from './sqlite/file-modes';
import { SqliteClient } from './sqlite/sqlite-client';
import { sqliteDialect } from './sqlite/sqlite-dialect';
import { SqlDriver } from './sql/sql-driver';
import type { DatabaseTarget, SqlObserver, TlsFileParams } from './sql/sql-client';
import { ReadCachedDriver } from './sql/read-cache';
import { silentLogger, type Logger } from '../src/logger';

/** The backend cannot be used (exit status 1). */
export class BackendError extends Error {}
/** The --backend value itself is wrong: its shape, its scheme (exit status 2, as any bad flag value). */
export class BackendUrlError extends BackendError {}

export interface BackendOptions {
  /** Told of SQL work: timings, errors, the database lost and back. */
  sqlObserver?: SqlObserver;
  /** Told of reads at the latest revision: answered by the read cache, or not. */
  onCachedRead?(hit: boolean): void;
  /** Where the default SQLite file lives. */
  dataDir: string;
  /** Memory budget of the read cache of SQL backends; 0 turns it off. */
  readCacheBytes?: number;
  /** Length of the read lease of SQL backends (read-lease.ts), ms; 0 turns it off. */
  readLeaseMs?: number;
  logger?: Logger;
}

/** SQL backends get a read cache of the current view (see read-cache.ts) unless it is turned off. */
function cached(driver: Driver, opts: BackendOptions): Driver {
  const bytes = opts.readCacheBytes ?? 0;
  if (bytes <= 0) return driver;
  const leaseStore = driver instanceof SqlDriver ? driver : undefined;
  return new ReadCachedDriver(driver, { maxBytes: bytes, readLeaseMs: opts.readLeaseMs ?? 0, leaseStore, logger: opts.logger, onRead: opts.onCachedRead });
}

/**
 * A backend URL fit for logs: the password replaced. The user info ends at
 * the last "@", so that a password with a raw "@", "/" or "#" in it (which
 * URL parsers split elsewhere) is hidden whole.
 */
export function redact(backend: string): string {
  const m = /^([a-z0-9+]+:\/\/)(.*)$/is.exec(backend);
  if (!m) return backend;
  const rest = m[2];
  const at = rest.lastIndexOf('@');
  const colon = rest.indexOf(':');
  if (at < 0 || colon < 0 || colon > at) return backend;
  return `${m[1]}${rest.slice(0, colon)}:***@${rest.slice(at + 1)}`;
}

/** Characters a password must percent-encode in a URL, as a hint. */
const ENCODE_HINT = 'percent-encode these characters in the user and password: @ as %40, : as %3A, / as %2F, # as %23, ? as %3F, % as %25';

export function defaultBackend(dataDir: string): string {
  return `sqlite://${path.resolve(dataDir, 'state.db')}`;
}

export function createDriver(backend: string, opts: BackendOptions): Driver {
  const logger = opts.logger ?? silentLogger;
  const warn = (msg: string) => logger.warn(msg);
  if (!backend) {
    privateDataDir(opts.dataDir, warn);
    backend = defaultBackend(opts.dataDir);
  }
  const scheme = /^([a-z0-9+]+):/i.exec(backend)?.[1]?.toLowerCase() ?? backend.toLowerCase();
  switch (scheme) {
    case 'memory':
      return new MemoryDriver();
    case 'sqlite':
      return cached(sqliteDriver(backend, warn, opts.sqlObserver), opts);
    case 'mysql':
    case 'mariadb':
      return cached(mysqlDriver(backend, false, opts.sqlObserver), opts);
    case 'tidb':
      return cached(mysqlDriver(backend, true, opts.sqlObserver), opts);
    case 'postgres':
    case 'postgresql':
      return cached(postgresDriver(backend, opts.sqlObserver), opts);
    default:
      throw new BackendUrlError(`unknown backend "${redact(backend)}": use memory, sqlite:///path/state.db, mysql://user:pass@host:3306/db, tidb://user:pass@host:4000/db or postgres://user:pass@host:5432/db`);
  }
}

/** The file of a sqlite:// URL, percent-decoded as a URL's path is (%20 is a space). */
export function sqliteFile(backend: string): string {
  const raw = backend.replace(/^sqlite:(\/\/)?/i, '');
  if (!raw) throw new BackendUrlError(`bad backend "${backend}": give the SQLite file, as sqlite:///path/state.db`);
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new BackendUrlError(`bad backend "${backend}": a "%" must start an escape such as %20 (write a "%" itself as %25)`);
  }
}

function sqliteDriver(backend: string, warn: (msg: string) => void, observer?: SqlObserver): Driver {
  const file = sqliteFile(backend);
  const dir = path.dirname(path.resolve(file));
  if (!fs.existsSync(dir)) throw new BackendError(`cannot use the SQLite database ${file}: the directory ${dir} does not exist`);
  let client: SqliteClient;
  try {
    privateSqliteFiles(file, warn);
    client = new SqliteClient(file, 'FULL', undefined, observer);
  } catch (err) {
    throw new BackendError(`cannot open the SQLite database ${file}: ${(err as Error).message}`);
  }
  return openErrors(new SqlDriver(client, sqliteDialect), `the SQLite database ${file}`);
}

export function parseMysqlUrl(backend: string, tidb: boolean): MysqlTarget {
  const shape = `${tidb ? 'tidb' : 'mysql'}://user:password@host:port/database`;
  const target = parseDatabaseUrl(backend, shape, tidb ? 4000 : 3306, 'root', { param: 'socket', example: '?socket=/run/mysqld/mysqld.sock' });
  const socket = target.params.socket;
  if (socket !== undefined && !socket.startsWith('/')) throw new BackendUrlError(`bad backend URL "${redact(backend)}": socket must be an absolute path, as ?socket=/run/mysqld/mysqld.sock`);
  const mode = target.params['ssl-mode'];
  if (mode !== undefined && !(SSL_MODES as readonly string[]).includes(mode.toUpperCase())) {
    throw new BackendUrlError(`bad backend URL "${redact(backend)}": ssl-mode must be DISABLED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY`);
  }
  checkTlsFiles(backend, target.params, MYSQL_TLS_FILES);
  return { ...target, tidb };
}

/** Where a MySQL target is, in messages: its socket or host:port. */
export function mysqlLocation(target: MysqlTarget): string {
  return target.params.socket ?? `${target.host}:${target.port}`;
}

export function parsePostgresUrl(backend: string): PostgresTarget {
  // several hosts, as libpq takes them: user@h1:5432,h2:5432/db; parsed as one, each checked as one
  // (a raw comma in a password is not a host list: the list holds no "@" and ends the authority)
  const m = /^([a-z0-9+]+:\/\/(?:[^@/?#]*@)?)([^@/?#]*,[^@/?#]*)((?:[/?#].*)?)$/i.exec(backend);
  const hosts = m ? m[2].split(',') : null;
  // libpq's ways to name a Unix socket directory: ?host=/dir, or the directory percent-encoded as the host
  const parse = (url: string) => parseDatabaseUrl(url, 'postgres://user:password@host:port/database', 5432, 'postgres', { param: 'host', example: '?host=/var/run/postgresql' });
  const target: PostgresTarget = parse(m ? m[1] + hosts![0] + m[3] : backend);
  if (hosts) {
    if (target.params.host) throw new BackendUrlError(`bad backend URL "${redact(backend)}": several hosts, and ?host= too: name them in one place`);
    target.endpoints = hosts.map((h) => {
      if (!h) throw new BackendUrlError(`bad backend URL "${redact(backend)}": an empty host in the list (write host1:port1,host2:port2)`);
      const t = parse(m![1] + h + m![3]);
      return { host: t.host, port: t.port };
    });
  }
  const attrs = target.params.target_session_attrs;
  if (attrs !== undefined && !(SESSION_ATTRS as readonly string[]).includes(attrs)) {
    throw new BackendUrlError(`bad backend URL "${redact(backend)}": target_session_attrs must be any, read-write or primary`);
  }
  const mode = target.params.sslmode;
  if (mode !== undefined && !['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'].includes(mode)) {
    throw new BackendUrlError(`bad backend URL "${redact(backend)}": sslmode must be disable, allow, prefer, require, verify-ca or verify-full`);
  }
  checkTlsFiles(backend, target.params, PG_TLS_FILES);
  return target;
}

/** The CA, client certificate and client key a URL names, by their parameters' names: the certificate and key both or neither, each file there. */
function checkTlsFiles(backend: string, params: Record<string, string>, names: TlsFileParams): void {
  const [, cert, key] = names;
  if (Boolean(params[cert]) !== Boolean(params[key])) throw new BackendUrlError(`bad backend URL "${redact(backend)}": a client certificate needs both ${cert} and ${key}`);
  const what = ['CA', 'client certificate', 'client key'];
  names.forEach((param, i) => {
    const file = params[param];
    if (file && !fs.existsSync(file)) throw new BackendError(`cannot read the ${what[i]} file ${file} (${param})`);
  });
}

/** Where a PostgreSQL target is, in messages: its socket file or host:port (each of several, with commas). */
export function postgresLocation(target: PostgresTarget): string {
  return (target.endpoints ?? [target]).map(endpointName).join(',');
}

/**
 * How a URL may name a Unix socket instead of a host: PostgreSQL, as libpq does, by `?host=/dir`
 * (which stands for the host) or by the directory percent-encoded as the host; MySQL by `?socket=/file`.
 */
interface SocketForm {
  param: 'host' | 'socket';
  example: string;
}

function parseDatabaseUrl(backend: string, shape: string, defaultPort: number, defaultUser: string, socket: SocketForm): DatabaseTarget {
  // more than one "@" before the path: a password with a raw "@" (or "/" or "#")
  const afterScheme = backend.replace(/^[a-z0-9+]+:\/\//i, '');
  if ((afterScheme.match(/@/g) ?? []).length > 1) throw new BackendUrlError(`bad backend URL "${redact(backend)}": more than one "@"; ${ENCODE_HINT}`);
  let u: URL;
  try {
    // user@/db?host=/dir (a user, no host: the socket is in the query) is not a WHATWG URL; parse it with a stand-in host
    u = new URL(backend.replace(/^([a-z0-9+]+:\/\/[^/@]+@)\//i, '$1-/'));
  } catch {
    throw new BackendUrlError(`bad backend URL "${redact(backend)}": expected ${shape}; ${ENCODE_HINT}`);
  }
  let database: string;
  let user: string;
  let password: string;
  let host: string;
  try {
    database = decodeURIComponent(u.pathname.replace(/^\//, ''));
    user = decodeURIComponent(u.username || defaultUser);
    password = decodeURIComponent(u.password);
    host = u.hostname === '-' ? '' : decodeURIComponent(u.hostname);
  } catch {
    throw new BackendUrlError(`bad backend URL "${redact(backend)}": a "%" must start an escape such as %40; ${ENCODE_HINT}`);
  }
  const named = u.searchParams.get(socket.param);
  if (socket.param === 'host' && named) host = named;
  if (!host && !named) throw new BackendUrlError(`bad backend URL "${redact(backend)}": no host (name one, or a Unix socket as ${socket.example})`);
  if (!database || database.includes('/')) throw new BackendUrlError(`bad backend URL "${redact(backend)}": name the database after the host, as ${u.protocol}//user:password@${host.startsWith('/') || !host ? 'host' : u.host}/etcd`);
  return {
    host: host.replace(/^\[(.*)\]$/, '$1') || 'localhost',
    port: u.port ? Number(u.port) : defaultPort,
    user,
    password,
    database,
    params: Object.fromEntries(u.searchParams),
  };
}

function postgresDriver(backend: string, observer?: SqlObserver): Driver {
  const target = parsePostgresUrl(backend);
  const client = new PostgresClient(target, postgresDialect, undefined, undefined, observer);
  return openErrors(new SqlDriver(client, postgresDialect), `PostgreSQL at ${postgresLocation(target)}`, target);
}

function mysqlDriver(backend: string, tidb: boolean, observer?: SqlObserver): Driver {
  const target = parseMysqlUrl(backend, tidb);
  const where = `${tidb ? 'TiDB' : 'MySQL'} at ${mysqlLocation(target)}`;
  const dialect = tidb ? tidbDialect : mysqlDialect;
  const client = new MysqlClient(target, dialect, undefined, undefined, observer);
  const driver = new SqlDriver(client, dialect);
  const open = driver.open.bind(driver);
  driver.open = async () => {
    await open();
    await client.learnLimits();
  };
  return openErrors(driver, where, target);
}

/** Turns a failure to open into a sentence about what is wrong. */
function openErrors(driver: SqlDriver, where: string, target?: DatabaseTarget): Driver {
  const open = driver.open.bind(driver);
  driver.open = async () => {
    try {
      await open();
    } catch (err) {
      await driver.close().catch(() => undefined);
      throw new BackendError(describeOpenError(err, where, target));
    }
  };
  return driver;
}

function describeOpenError(err: unknown, where: string, target?: DatabaseTarget): string {
  const e = (err as { cause?: unknown }).cause ?? err;
  const code = (e as { code?: string }).code;
  const message = (e as Error).message ?? code ?? String(e);
  switch (code) {
    case 'ECONNREFUSED':
      return `cannot connect to ${where}: connection refused (is the server running?)`;
    case 'ENOENT': // a Unix socket that is not there
      return `cannot connect to ${where}: no such socket (is the server running, and is this where it puts its socket?)`;
    case 'EACCES':
      return `cannot connect to ${where}: permission denied (may this user open the socket?)`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot connect to ${where}: the host name does not resolve`;
    case 'ETIMEDOUT':
      return `cannot connect to ${where}: timed out`;
    case 'ER_ACCESS_DENIED_ERROR':
    case '28P01': // PostgreSQL: invalid_password
    case '28000': // PostgreSQL: invalid_authorization_specification (no such role, pg_hba refuses)
      // pg_hba.conf takes this user over TLS only (hostssl; hostnossl ... reject): the URL said sslmode=disable,
      // or the server offers no TLS (prefer and allow found none)
      if (/no encryption/i.test(message)) {
        return target?.params.sslmode === 'disable'
          ? `${where} refused user "${target.user}": it takes this user over TLS only (leave out sslmode=disable, or ask for ?sslmode=verify-full&sslrootcert=/path/ca.pem)`
          : `${where} refused user "${target?.user}": it takes this user over TLS only, and offers no TLS (its ssl setting is off)`;
      }
      // pg_hba.conf's `cert` method: the password is not what is wrong, the server's own words say what is
      if (/certificate/i.test(message)) return `${where} refused user "${target?.user}": ${message} (give one with sslcert and sslkey, its CN the user name)`;
      return `${where} refused user "${target?.user}": access denied (check the user and password)`;
    case 'ER_BAD_DB_ERROR':
    case '3D000': // PostgreSQL: invalid_catalog_name
      return `${where} has no database "${target?.database}" (create it first: CREATE DATABASE ${target?.database})`;
    case 'ER_DBACCESS_DENIED_ERROR':
    case '42501': // PostgreSQL: insufficient_privilege
      return `${where}: user "${target?.user}" may not use database "${target?.database}"`;
    default:
      // node-postgres's words for connect_timeout running out (the pool's, and a single client's)
      if (/due to connection timeout|^timeout expired$/.test(message)) return `cannot connect to ${where}: timed out`;
      // a TLS handshake that failed (no protocol version or cipher in common): OpenSSL's reason, not its whole trace
      if (code === 'EPROTO' || code?.startsWith('ERR_SSL_')) {
        const reason = /SSL routines:[^:]*:([^:]+)/.exec(message)?.[1] ?? message;
        return `cannot connect to ${where}: the TLS handshake failed (${reason})`;
      }
      return `cannot use ${where}: ${message}`;
  }
}
