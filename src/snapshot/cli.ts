// `etcd-adapter snapshot ...`: etcd's snapshot files, offline, as etcdutl has
// them - restore one into a store (SQLite, MySQL/MariaDB/TiDB, PostgreSQL) or
// save a store as one; and `etcd-adapter migrate`, from a running etcd.
import { appendFile, readFile, rename, rm } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { BackendError, BackendUrlError, createDriver, redact } from '../../drivers/registry';
import type { Driver } from '../mvcc/driver';
import { SnapshotError } from './bbolt-reader';
import { fileSha256, SHA256_BYTES } from './etcd-schema';
import { writeSnapshotFile } from './export';
import { importSnapshot } from './import';
import { migrate } from './migrate';
import { createLogger } from '../logger';

export const SNAPSHOT_USAGE = `Usage:
  etcd-adapter snapshot restore FILE [--backend URL] [--data-dir DIR] [--skip-hash-check]
      Load an etcd snapshot (etcdctl snapshot save, from etcd or from us) into an empty store:
      keys with their revisions and history since the compact revision, leases, users, roles.
  etcd-adapter snapshot save FILE [--backend URL] [--data-dir DIR]
      Write the store as an etcd snapshot that etcdctl snapshot restore takes.
The backend is given as to the server (default: sqlite in DIR, "default.etcd").
A memory server loads a snapshot at start instead: etcd-adapter --initial-snapshot FILE.`;

export const MIGRATE_USAGE = `Usage:
  etcd-adapter migrate --from http://HOST:2379 --backend URL [--user root:PASSWORD] [--cacert FILE] [--data-dir DIR]
      Copy a running etcd into an empty store with its revisions (its snapshot), then follow its
      writes revision by revision until stopped (Ctrl-C / SIGTERM) once clients have moved here.
      Prints "at revision N" as it goes.`;

class UsageError extends Error {}

/** Exit status and messages as for snapshot commands: 2 bad usage, 1 failure. */
function failed(e: unknown, usage: string, err: (s: string) => void, prefix: string): number {
  const message = e instanceof Error ? e.message : String(e);
  if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') || e instanceof BackendUrlError) {
    err(`${prefix}: ${message}\n${usage}\n`);
    return 2;
  }
  const known = e instanceof SnapshotError || e instanceof BackendError || (e as NodeJS.ErrnoException).code !== undefined;
  err(`${prefix}: ${message}\n${known ? '' : (e as Error).stack + '\n'}`);
  return 1;
}

export async function migrateCommand(argv: string[], out: (s: string) => void, err: (s: string) => void, stop: Promise<void>): Promise<number> {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { from: { type: 'string' }, backend: { type: 'string', default: '' }, 'data-dir': { type: 'string', default: 'default.etcd' }, user: { type: 'string' }, cacert: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    });
    if (values.help) {
      out(MIGRATE_USAGE + '\n');
      return 0;
    }
    if (!values.from || positionals.length > 0) throw new UsageError('expected --from URL');
    if (/^memory$/i.test(values.backend ?? '')) throw new UsageError('a memory store ends with this command: migrate into SQLite, MySQL/MariaDB/TiDB or PostgreSQL');
    if (values.user && !values.user.includes(':')) throw new UsageError('--user takes NAME:PASSWORD');
    const driver = createDriver(values.backend ?? '', { dataDir: values['data-dir'] ?? 'default.etcd' });
    await driver.open();
    let shown = 0;
    let latest = 0;
    const show = () => {
      if (latest !== shown) out(`at revision ${(shown = latest)}\n`);
    };
    const ticker = setInterval(show, 250);
    try {
      const caPem = values.cacert ? await readFile(values.cacert) : undefined;
      const logger = createLogger({ level: 'warn', format: 'json', outputs: ['stderr'] });
      const { revision } = await migrate(driver, { from: values.from, user: values.user, caPem, stop, onRevision: (r) => (latest = r) }, logger);
      latest = revision;
      show();
      out(`stopped following ${values.from} at revision ${revision}: point clients here now\n`);
    } finally {
      clearInterval(ticker);
      await driver.close();
    }
    return 0;
  } catch (e) {
    return failed(e, MIGRATE_USAGE, err, 'etcd-adapter migrate');
  }
}

export async function snapshotCommand(argv: string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  try {
    const { positionals, values } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { backend: { type: 'string', default: '' }, 'data-dir': { type: 'string', default: 'default.etcd' }, 'skip-hash-check': { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } },
    });
    if (values.help) {
      out(SNAPSHOT_USAGE + '\n');
      return 0;
    }
    const [verb, file, ...rest] = positionals;
    if (!file || rest.length > 0 || (verb !== 'restore' && verb !== 'save')) throw new UsageError('expected "snapshot restore FILE" or "snapshot save FILE"');
    const backend = values.backend ?? '';
    if (/^memory$/i.test(backend)) throw new UsageError('a memory store ends with this command: start the server with --initial-snapshot FILE instead');
    const driver = createDriver(backend, { dataDir: values['data-dir'] ?? 'default.etcd' });
    await driver.open();
    try {
      if (verb === 'restore') {
        const r = await importSnapshot(driver, file, { skipHashCheck: values['skip-hash-check'] });
        out(`restored ${file} into ${redact(backend || 'sqlite in ' + values['data-dir'])}: revision ${r.revision}, compact revision ${Math.max(0, r.compactRevision)}, ${r.versions} versions, ${r.leases} leases, ${r.users} users, ${r.roles} roles\n`);
      } else {
        const info = await save(driver, file);
        out(`saved ${file}: revision ${info.revision}, ${info.versions} versions, ${info.size + SHA256_BYTES} bytes\n`);
      }
    } finally {
      await driver.close();
    }
    return 0;
  } catch (e) {
    return failed(e, SNAPSHOT_USAGE, err, 'etcd-adapter snapshot');
  }
}

/** As etcdctl: written to FILE.part with the SHA-256 trailer, then renamed. */
async function save(driver: Driver, file: string) {
  const part = `${file}.part`;
  try {
    const info = await writeSnapshotFile(driver, part);
    await appendFile(part, await fileSha256(part));
    await rename(part, file);
    return info;
  } catch (e) {
    await rm(part, { force: true });
    throw e;
  }
}
