// A private PgBouncer (Debian's pgbouncer) in front of the machine's
// PostgreSQL: its own temporary directory and port, started and stopped by the
// test. It only connects to the shared server as any client does. PgBouncer
// refuses to run as root: as root, it runs as the `postgres` user.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort, waitFor } from './ports';
import { alive, asPostgresUser } from './private-postgres';

const BIN = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer'].find((f) => fs.existsSync(f));

export function pgbouncerInstalled(): boolean {
  return BIN !== undefined;
}

export interface PrivatePgBouncer {
  port: number;
  /** postgres://postgres@127.0.0.1:port/database, through the pooler. */
  urlFor(database: string): string;
  /** kill -9: every client and server connection it held breaks. */
  crash(): Promise<void>;
  /** Starts it again on its port (after crash()). */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** PgBouncer in `mode`, passing every database through to the PostgreSQL server at `upstream` (host:port). */
export async function startPgBouncer(mode: 'session' | 'transaction', upstream = '127.0.0.1:5432'): Promise<PrivatePgBouncer> {
  if (!BIN) throw new Error('pgbouncer is not installed (apt-get install pgbouncer; .ci/run installs it)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-adapter-pgbouncer-'));
  const ids = asPostgresUser();
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
  if (ids.uid !== undefined) for (const f of [dir, ...Object.keys(files).map((n) => path.join(dir, n))]) fs.chownSync(f, ids.uid, ids.gid!);
  let child: ChildProcess;
  let exited: Promise<void> = Promise.resolve();
  let log = '';
  const launch = async () => {
    const c = spawn(BIN, [path.join(dir, 'pgbouncer.ini')], { ...ids, cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    child = c;
    c.stderr!.on('data', (d) => (log = (log + d).slice(-4000)));
    exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    await waitFor(`PgBouncer on port ${port}`, async () => {
      if (c.exitCode !== null || c.signalCode !== null) throw new Error(`pgbouncer exited: ${log}`);
      return (await alive(port)) ? true : undefined;
    });
  };
  const running = () => child.exitCode === null && child.signalCode === null;
  await launch();
  return {
    port,
    urlFor: (database) => `postgres://postgres@127.0.0.1:${port}/${database}`,
    async crash() {
      if (running()) child.kill('SIGKILL');
      await exited;
    },
    start: launch,
    async stop() {
      if (running()) child.kill('SIGINT');
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
