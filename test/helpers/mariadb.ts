// Stops and starts this machine's MariaDB (127.0.0.1:3306), for fault tests.
// Starting uses the command the environment itself starts it with.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as net from 'node:net';
import { waitFor } from './ports';

const run = promisify(execFile);

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function mariadbAlive(): Promise<boolean> {
  return run('mysqladmin', ['-uroot', '--connect-timeout=2', 'ping']).then(
    () => true,
    () => false,
  );
}

export async function stopMariadb(): Promise<void> {
  await run('mysqladmin', ['-uroot', 'shutdown']).catch(() => undefined);
  await waitFor('MariaDB to stop', async () => ((await portOpen(3306)) ? undefined : true), 60000);
}

export async function startMariadb(): Promise<void> {
  if (await mariadbAlive()) return;
  await run('start-stop-daemon', ['--start', '--oknodo', '--background', '--exec', '/usr/sbin/mariadbd']);
  await waitFor('MariaDB to serve', async () => ((await mariadbAlive()) ? true : undefined), 60000);
}
