// Authenticate and lease keepalive throughput, this server (memory) against
// a real etcd, both with auth enabled.
import * as grpc from '@grpc/grpc-js';
import { compare, seconds, table, type Row } from './compare';
import { runLoad } from './load';
import { adapter, realEtcd, type BenchServer } from './servers';
import { EtcdGrpcClient } from '../test/helpers/grpc-client';

const USER = 'bench';
const PASSWORD = 'bench-password';
const LEASE = '4242';

/** root and a plain user, auth on, and a lease to keep alive. */
async function prepare(s: BenchServer): Promise<void> {
  const c = new EtcdGrpcClient(s.endpoint);
  await c.call(c.auth, 'UserAdd', { name: 'root', password: 'root-password' });
  await c.call(c.auth, 'UserGrantRole', { user: 'root', role: 'root' });
  await c.call(c.auth, 'UserAdd', { name: USER, password: PASSWORD });
  await c.call(c.auth, 'AuthEnable', {});
  const { token } = await c.call(c.auth, 'Authenticate', { name: 'root', password: 'root-password' });
  const md = new grpc.Metadata();
  md.set('token', token);
  await c.call(c.lease, 'LeaseGrant', { ID: LEASE, TTL: 3600 }, md);
  c.close();
}

export async function authTable(): Promise<string> {
  const etcd = await realEtcd();
  const ours = await adapter(['--backend', 'memory'], 'memory');
  try {
    await Promise.all([prepare(etcd), prepare(ours)]);
    const rows: Row[] = [];
    const base = { warmupMs: 1000, durationMs: seconds * 1000, keySpace: 1, keyBytes: 8, valueBytes: 0 };
    for (const clients of [16, 1]) {
      const [reference, mine] = await compare(etcd, ours, (s) => runLoad({ ...base, endpoint: s.endpoint, op: 'authenticate', user: USER, password: PASSWORD }, clients, 2));
      rows.push({ scenario: `Authenticate, ${clients} client${clients > 1 ? 's' : ''}`, reference, ours: mine, goal: clients === 16 ? 100 : undefined });
    }
    for (const clients of [16, 1]) {
      const [reference, mine] = await compare(etcd, ours, (s) => runLoad({ ...base, endpoint: s.endpoint, op: 'keepalive', user: LEASE }, clients, 2));
      rows.push({ scenario: `lease keepalive, ${clients} stream${clients > 1 ? 's' : ''}`, reference, ours: mine });
    }
    return table('Auth and leases: memory vs etcd 3.4 (auth enabled on both)', etcd.name, ours.name, rows);
  } finally {
    await ours.stop();
    await etcd.stop();
  }
}
