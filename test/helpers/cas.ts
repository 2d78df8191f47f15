// A compare-and-swap counter, the way sidecars race on one key.
import { b, type EtcdGrpcClient } from './grpc-client';

/** Adds one to a counter with a compare-and-swap loop; returns the revision of the winning write. */
export async function increment(c: EtcdGrpcClient, key: string): Promise<{ revision: number; attempts: number }> {
  for (let attempts = 1; ; attempts++) {
    const cur = await c.range({ key: b(key) });
    const kv = cur.kvs[0];
    const value = kv ? Number(kv.value.toString()) : 0;
    const compare = kv
      ? { key: b(key), target: 2, result: 0, mod_revision: kv.mod_revision } // MOD == seen
      : { key: b(key), target: 1, result: 0, create_revision: 0 }; // absent
    const r = await c.txn({ compare: [compare], success: [{ request_put: { key: b(key), value: b(String(value + 1)) } }] });
    if (r.succeeded) return { revision: Number(r.header.revision), attempts };
  }
}
