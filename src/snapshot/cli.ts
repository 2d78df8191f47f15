// `etcd-adapter snapshot ...`: etcd's snapshot files, offline, as etcdutl has
// them - restore one into a store (SQLite, MySQL/MariaDB/TiDB, PostgreSQL),
// save a store as one, or report what a file holds.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { appendFile, rename, rm } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { BackendError, BackendUrlError, createDriver, redact } from '../../drivers/registry';
import type { Driver } from '../mvcc/driver';
import { SnapshotError } from './bbolt-reader';
import { writeSnapshotFile } from './export';
import { importSnapshot } from './import';

export const SNAPSHOT_USAGE = `Usage:
  etcd-adapter snapshot restore FILE [--backend URL] [--data-dir DIR] [--skip-hash-check]
      Load an etcd snapshot (etcdctl snapshot save, from etcd or from us) into an empty store:
      keys with their revisions and history since the compact revision, leases, users, roles.
  etcd-adapter snapshot save FILE [--backend URL] [--data-dir DIR]
      Write the store as an etcd snapshot that etcdctl snapshot restore takes.
The backend is given as to the server (default: sqlite in DIR, "default.etcd").
A memory server loads a snapshot at start instead: etcd-adapter --initial-snapshot FILE.`;

class UsageError extends Error {}

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
        out(`saved ${file}: revision ${info.revision}, ${info.versions} versions, ${info.size + 32} bytes\n`);
      }
    } finally {
      await driver.close();
    }
    return 0;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') || e instanceof BackendUrlError) {
      err(`etcd-adapter snapshot: ${message}\n${SNAPSHOT_USAGE}\n`);
      return 2;
    }
    const known = e instanceof SnapshotError || e instanceof BackendError || (e as NodeJS.ErrnoException).code !== undefined;
    err(`etcd-adapter snapshot: ${message}\n${known ? '' : (e as Error).stack + '\n'}`);
    return 1;
  }
}

/** As etcdctl: written to FILE.part with the SHA-256 trailer, then renamed. */
async function save(driver: Driver, file: string) {
  const part = `${file}.part`;
  try {
    const info = await writeSnapshotFile(driver, part);
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(part) as AsyncIterable<Buffer>) hash.update(chunk);
    await appendFile(part, hash.digest());
    await rename(part, file);
    return info;
  } catch (e) {
    await rm(part, { force: true });
    throw e;
  }
}
