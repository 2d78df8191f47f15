// A private PostgreSQL server for fault tests: initdb into a temporary
// directory, its own port, started and crashed by the test. The machine's
// shared server on 5432 is never touched. PostgreSQL refuses to run as root:
// as root, the server runs as the `postgres` user.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pg from 'pg';
import { freePort, waitFor } from './ports';

const BIN = ['/usr/lib/postgresql/15/bin', ...fs.readdirSync('/usr/lib/postgresql').map((v) => `/usr/lib/postgresql/${v}/bin`)].find((d) => fs.existsSync(path.join(d, 'initdb')));

export interface PrivatePostgres {
  port: number;
  /** postgres://postgres@127.0.0.1:port (append /database). */
  url: string;
  /** A new database (owned by `owner`, default postgres); its URL as postgres. */
  createDatabase(owner?: string): Promise<string>;
  /** Runs a statement as postgres on its maintenance database; its rows. */
  query(sql: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  /** The directory of its Unix socket (the socket is .s.PGSQL.<port> in it). */
  socketDir: string;
  /** Immediate shutdown (SIGQUIT to the postmaster): every backend dies at once, no checkpoint; recovery at the next start. */
  crash(): Promise<void>;
  /** Start again on the same data directory and port. */
  start(): Promise<void>;
  destroy(): Promise<void>;
}

export function postgresInstalled(): boolean {
  return BIN !== undefined;
}

export interface PrivatePostgresOptions {
  /** The postgres user's password (scram-sha-256 for TCP connections); none: trust. */
  password?: string;
  /** TLS on, with this server certificate and key; `clientCa`: client certificates are checked against it. */
  tls?: { cert: string; key: string; clientCa?: string };
  /** Roles to create (LOGIN, no password). */
  roles?: string[];
  /** pg_hba.conf lines put ahead of initdb's (the first line that matches decides). */
  hba?: string[];
  /** A hot standby of this server (pg_basebackup, streaming replication) instead of a new cluster. */
  standbyOf?: PrivatePostgres;
  /** More server settings, name=value (postgres -c). */
  settings?: string[];
}

/** Whether a server (or a pooler in front of one) on the port answers a query as `postgres`. */
export async function alive(port: number, password?: string): Promise<boolean> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres', connectionTimeoutMillis: 1000 });
  c.on('error', () => undefined);
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** Spawn options that run a PostgreSQL program as the `postgres` user when we are root (PostgreSQL and PgBouncer refuse root). */
export function asPostgresUser(): { uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return {};
  return { uid: Number(execFileSync('id', ['-u', 'postgres']).toString()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString()) };
}

export async function startPrivatePostgres(opts: PrivatePostgresOptions = {}): Promise<PrivatePostgres> {
  if (!BIN) throw new Error('PostgreSQL server binaries are not installed');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-adapter-pg-'));
  const data = path.join(dir, 'data');
  const ids = asPostgresUser();
  const own = (file: string) => {
    if (ids.uid !== undefined) fs.chownSync(file, ids.uid, ids.gid!);
  };
  own(dir);
  const auth = ['--auth-local=trust', `--auth-host=${opts.password ? 'scram-sha-256' : 'trust'}`];
  if (opts.password) {
    fs.writeFileSync(path.join(dir, 'pw'), `${opts.password}\n`, { mode: 0o600 });
    own(path.join(dir, 'pw'));
    auth.push(`--pwfile=${path.join(dir, 'pw')}`);
  }
  if (opts.standbyOf) {
    // -R: standby.signal and primary_conninfo (through the primary's socket), so it starts following;
    // --checkpoint=fast: the default spread checkpoint takes a minute and more
    const from = opts.standbyOf;
    execFileSync(path.join(BIN, 'pg_basebackup'), ['-h', from.socketDir, '-p', String(from.port), '-U', 'postgres', '-D', data, '-R', '-X', 'stream', '--no-sync', '--checkpoint=fast'], { ...ids, stdio: 'ignore', cwd: dir });
  } else {
    execFileSync(path.join(BIN, 'initdb'), ['-D', data, '-U', 'postgres', ...auth, '--no-sync', '-E', 'UTF8'], { ...ids, stdio: 'ignore', cwd: dir });
  }
  const tlsArgs: string[] = [];
  if (opts.tls) {
    // PostgreSQL wants its key owned by it and private
    for (const [name, from] of [['server.crt', opts.tls.cert], ['server.key', opts.tls.key]]) {
      fs.copyFileSync(from, path.join(dir, name));
      fs.chmodSync(path.join(dir, name), 0o600);
      own(path.join(dir, name));
    }
    tlsArgs.push('-c', 'ssl=on', '-c', `ssl_cert_file=${path.join(dir, 'server.crt')}`, '-c', `ssl_key_file=${path.join(dir, 'server.key')}`);
    if (opts.tls.clientCa) {
      fs.copyFileSync(opts.tls.clientCa, path.join(dir, 'client-ca.crt'));
      own(path.join(dir, 'client-ca.crt'));
      tlsArgs.push('-c', `ssl_ca_file=${path.join(dir, 'client-ca.crt')}`);
    }
  }
  if (opts.hba?.length) {
    const hba = path.join(data, 'pg_hba.conf');
    fs.writeFileSync(hba, opts.hba.map((line) => `${line}\n`).join('') + fs.readFileSync(hba, 'utf8'));
  }
  const port = await freePort();
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let log = '';

  const start = async () => {
    const c = spawn(path.join(BIN, 'postgres'), ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'shared_buffers=16MB', '-c', 'max_connections=60', ...tlsArgs, ...(opts.settings ?? []).flatMap((setting) => ['-c', setting])], {
      ...ids,
      cwd: dir,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child = c;
    c.stderr!.on('data', (d) => (log = (log + d).slice(-4000)));
    exited = new Promise((resolve) => c.once('exit', () => resolve()));
    await waitFor(`private PostgreSQL on port ${port}`, async () => {
      if (c.exitCode !== null || c.signalCode !== null) throw new Error(`postgres exited: ${log}`);
      return (await alive(port, opts.password)) ? true : undefined;
    }, 60000);
  };

  const crash = async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGQUIT');
    await exited;
  };

  await start();
  const admin = async (sql: string, params?: unknown[]) => {
    const c = new pg.Client({ host: dir, port, user: 'postgres', database: 'postgres' });
    await c.connect();
    try {
      return (await c.query(sql, params)).rows as Record<string, unknown>[];
    } finally {
      await c.end();
    }
  };
  for (const u of opts.roles ?? []) await admin(`CREATE ROLE ${u} LOGIN`);
  const url = `postgres://postgres${opts.password ? `:${encodeURIComponent(opts.password)}` : ''}@127.0.0.1:${port}`;
  return {
    port,
    url,
    socketDir: dir,
    query: admin,
    async createDatabase(owner = 'postgres') {
      const name = `etcd_fault_${Math.random().toString(16).slice(2, 10)}`;
      await admin(`CREATE DATABASE ${name} OWNER ${owner}`);
      return `${url}/${name}`;
    },
    crash,
    start,
    async destroy() {
      await crash();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
