// Removes from answers only what must differ between two servers: cluster and
// member ids and the raft term (and, where a test says so, more fields).

import { createHash } from 'node:crypto';

const ALWAYS = new Set(['cluster_id', 'member_id', 'raft_term']);

/** Short buffers as base64; long ones as length and digest, so a failing comparison stays readable. */
function bytes(v: Buffer): string {
  if (v.length <= 64) return `bytes:${v.toString('base64')}`;
  return `bytes[${v.length}]:${createHash('sha1').update(v).digest('hex').slice(0, 12)}`;
}

export function normalize(value: unknown, extra: string[] = []): unknown {
  const drop = new Set([...ALWAYS, ...extra]);
  const walk = (v: unknown): unknown => {
    if (Buffer.isBuffer(v)) return bytes(v);
    if (typeof v === 'string' && v.length > 200) return `string[${v.length}]:${createHash('sha1').update(v).digest('hex').slice(0, 12)}`;
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) if (!drop.has(k)) out[k] = walk(x);
      return out;
    }
    return v;
  };
  return walk(value);
}
