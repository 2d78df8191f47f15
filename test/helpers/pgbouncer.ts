// A private PgBouncer (Debian's pgbouncer) in front of the machine's
// PostgreSQL: its own temporary directory and port, started and stopped by the
// test. It only connects to the shared server as any client does. PgBouncer
// refuses to run as root: as root, it runs as the `postgres` user.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pg from 'pg';
import { freePort, waitFor } from './ports';

const BIN = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer'].find((f) => fs.existsSync(f));

export interface PrivatePgBouncer {
  port: number;
  /** postgres://postgres@127.0.0.1:port/database, through the pooler. */
  urlFor(database: string): string;
  stop(): Promise<void>;
}

export function pgbouncerInstalled(): boolean {
  return BIN !== undefined;
}

/** PgBouncer in `mode`, passing every database through to the PostgreSQL server at `upstream` (host:port). */
export async function startPgBouncer(mode: 'session' | 'transaction', upstream = '127.0.0.1:5432'): Promise<PrivatePgBouncer> {
  if (!BIN) throw new Error('pgbouncer is not installed (apt-get install pgbouncer; .ci/run installs it)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-adapter-pgbouncer-'));
  const asRoot = process.getuid?.() === 0;
  const ids = asRoot ? { uid: Number(execFileSync('id', ['-u', 'postgres']).toString()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString()) } : {};
  const port = await freePort();
  const [host, upstreamPort] = upstream.split(':');
  const files: Record<string, string> = {
    'users.txt': '"postgres" ""\n',
    'pgbouncer.ini': [
      '[databases]',
      `* = host=${host} port=${upstreamPort}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${path.join(dir, 'users.txt')}`,
      `pool_mode = ${mode}`,
      'max_client_conn = 500',
      'default_pool_size = 40',
      `logfile = ${path.join(dir, 'pgbouncer.log')}`,
      '',
    ].join('\n'),
  };
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  if (asRoot) for (const f of [dir, ...Object.keys(files).map((n) => path.join(dir, n))]) fs.chownSync(f, ids.uid!, ids.gid!);
  const child = spawn(BIN, [path.join(dir, 'pgbouncer.ini')], { ...ids, cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d) => (log = (log + d).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitFor(`PgBouncer on port ${port}`, async () => {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`pgbouncer exited: ${log}`);
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 1000 });
    c.on('error', () => undefined);
    try {
      await c.connect();
      await c.query('SELECT 1');
      return true;
    } catch {
      return undefined;
    } finally {
      await c.end().catch(() => undefined);
    }
  });
  return {
    port,
    urlFor: (database) => `postgres://postgres@127.0.0.1:${port}/${database}`,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
