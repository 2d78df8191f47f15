// Hash and HashKV: a checksum of the key-value data at a revision, computed
// from the data itself (key order, every field), so that every instance on one
// store answers the same for the same revision.
import { crc32 } from 'node:zlib';
import { ErrCompacted, ErrFutureRev } from '../errors';
import type { Driver } from './driver';

export async function hashKV(driver: Driver, revision: number): Promise<{ hash: number; revision: number; current: number; compactRevision: number }> {
  return driver.read(async (view) => {
    if (revision > view.revision) throw ErrFutureRev;
    const at = revision > 0 ? revision : view.revision;
    if (at < view.compactRevision) throw ErrCompacted;
    const { kvs } = await view.range({ key: Buffer.from([0]), end: Buffer.alloc(0), revision: at, limit: 0, countOnly: false, keysOnly: false });
    let h = 0;
    const num = Buffer.alloc(8);
    for (const kv of kvs) {
      h = crc32(kv.key, h);
      for (const n of [kv.create_revision, kv.mod_revision, kv.version]) {
        num.writeBigInt64BE(BigInt(n));
        h = crc32(num, h);
      }
      num.writeBigInt64BE(BigInt(kv.lease));
      h = crc32(num, h);
      h = crc32(kv.value, h);
    }
    return { hash: h >>> 0, revision: at, current: view.revision, compactRevision: view.compactRevision };
  });
}
