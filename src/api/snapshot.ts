// Maintenance/Snapshot: the store as etcd's backend file, in 32 KiB messages
// {remaining_bytes, blob}, then one message holding the file's SHA-256 - what
// etcd 3.4 sends (no header), so `etcdctl snapshot save` and `snapshot
// restore` take it as etcd's own. Only root may take one when auth is on.
// The file is made on local disk first (in the system's temporary directory)
// and removed when the stream ends, however it ends.
import type { AuthStore } from '../mvcc/auth-store';
import type { Logger } from '../logger';
import { openSnapshotStream } from '../snapshot/export';
import type { ApiContext, CallMeta } from './context';

export interface SnapshotMessage {
  remaining_bytes: number;
  blob: Buffer;
}

/** Sends the snapshot through `send`, which resolves when the transport can take more. Resolves when all was sent. */
export async function sendSnapshot(api: ApiContext, auth: AuthStore, meta: CallMeta, logger: Logger, send: (msg: SnapshotMessage) => Promise<void>, cancelled: () => boolean): Promise<void> {
  auth.requireAdmin(await auth.identify(meta.token, meta.certUser));
  const started = performance.now();
  const stream = await openSnapshotStream(api.store.driver);
  const { info } = stream;
  if (info.usersWithoutBcrypt.length > 0) {
    logger.warn('users in this snapshot have passwords etcd cannot check (hashed before bcrypt); set them again after a restore into etcd', { users: info.usersWithoutBcrypt });
  }
  try {
    let sent = 0;
    for await (const chunk of stream.chunks()) {
      if (cancelled()) return;
      const hash = sent === info.size;
      if (!hash) sent += chunk.length;
      await send({ remaining_bytes: hash ? 0 : info.size - sent, blob: chunk });
    }
    logger.info('sent a snapshot', { revision: info.revision, 'compact-revision': info.compactRevision, versions: info.versions, bytes: info.size, took: `${Math.round(performance.now() - started)}ms` });
  } finally {
    await stream.dispose();
  }
}
