// A private MariaDB server for fault tests: its own temporary data directory,
// its own port, started and stopped (killed, frozen, thawed) by the test. The
// machine's shared MariaDB on 3306 is never touched by a fault test.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import { freePort, waitFor } from './ports';

const run = promisify(execFile);
const MARIADBD = '/usr/sbin/mariadbd';

export interface PrivateMariadb {
  port: number;
  /** mysql://root@127.0.0.1:port (append /database). */
  url: string;
  /** A new empty database on it; returns its backend URL. */
  createDatabase(): Promise<string>;
  /** Runs a statement as root; its rows. */
  query(sql: string): Promise<Record<string, unknown>[]>;
  /** SIGKILL, as a crash. */
  kill(): Promise<void>;
  /** Start again on the same data directory and port (after kill or stop). */
  start(): Promise<void>;
  /** SIGSTOP: the process stays, connections stay open, nothing answers. */
  freeze(): void;
  /** SIGCONT. */
  thaw(): void;
  /** Stop for good and remove the data directory. */
  destroy(): Promise<void>;
}

export function mariadbInstalled(): boolean {
  return fs.existsSync(MARIADBD);
}

async function alive(port: number): Promise<boolean> {
  try {
    const c = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root', connectTimeout: 1000 });
    await c.end();
    return true;
  } catch {
    return false;
  }
}

export interface PrivateMariadbOptions {
  /**
   * Privileges enforced (no --skip-grant-tables), with a user `app` (no password) that may do
   * anything to the etcd_ databases and nothing server-wide: what read_only stops.
   */
  grants?: boolean;
  /** TLS on, with this server certificate and key, and client certificates checked against `ca`. */
  tls?: { cert: string; key: string; ca: string };
}

export async function startPrivateMariadb(opts: PrivateMariadbOptions = {}): Promise<PrivateMariadb> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-adapter-mariadb-'));
  const data = path.join(dir, 'data');
  await run('mariadb-install-db', ['--no-defaults', `--datadir=${data}`, '--user=root', '--skip-test-db', '--auth-root-authentication-method=normal']);
  const port = await freePort();
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let log = '';

  const start = async () => {
    const c = spawn(
      MARIADBD,
      [
        '--no-defaults',
        `--datadir=${data}`,
        '--user=root',
        `--port=${port}`,
        '--bind-address=127.0.0.1',
        `--socket=${path.join(dir, 'sock')}`,
        `--pid-file=${path.join(dir, 'pid')}`,
        ...(opts.grants ? [] : ['--skip-grant-tables']),
        ...(opts.tls ? [`--ssl-cert=${opts.tls.cert}`, `--ssl-key=${opts.tls.key}`, `--ssl-ca=${opts.tls.ca}`] : []),
        '--skip-log-bin',
        '--innodb-buffer-pool-size=32M',
        '--innodb-log-file-size=16M',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child = c;
    c.stderr!.on('data', (d) => (log = (log + d).slice(-4000)));
    exited = new Promise((resolve) => c.once('exit', () => resolve()));
    await waitFor(`private MariaDB on port ${port}`, async () => {
      if (c.exitCode !== null || c.signalCode !== null) throw new Error(`mariadbd exited: ${log}`);
      return (await alive(port)) ? true : undefined;
    }, 60000);
  };

  const kill = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    }
    await exited;
  };

  await start();
  if (opts.grants) {
    const c = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root' });
    await c.query("CREATE USER app@'%'");
    await c.query("GRANT ALL PRIVILEGES ON `etcd\\_%`.* TO app@'%'");
    await c.end();
  }
  const url = `mysql://root@127.0.0.1:${port}`;
  return {
    port,
    url,
    async createDatabase() {
      const name = `etcd_fault_${Math.random().toString(16).slice(2, 10)}`;
      const c = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root' });
      await c.query(`CREATE DATABASE ${name}`);
      await c.end();
      return `${url}/${name}`;
    },
    async query(sql: string) {
      const c = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root' });
      try {
        return (await c.query(sql))[0] as Record<string, unknown>[];
      } finally {
        await c.end();
      }
    },
    kill,
    start,
    freeze: () => void child?.kill('SIGSTOP'),
    thaw: () => void child?.kill('SIGCONT'),
    async destroy() {
      await kill();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
