// The servers a benchmark compares: Debian's etcd and this server, each in its
// own process so that neither shares an event loop with the load generator.
import { spawnAdapter } from '../test/helpers/spawn';
import { startRealEtcd } from '../test/helpers/real-etcd';

export interface BenchServer {
  name: string;
  endpoint: string;
  pid: number;
  /** What the server has logged so far (ours only). */
  log?(): string;
  stop(): Promise<void>;
}

export async function realEtcd(): Promise<BenchServer> {
  const e = await startRealEtcd();
  return { name: 'etcd 3.4', endpoint: e.endpoint, pid: e.pid, stop: () => e.stop() };
}

export async function adapter(args: string[], name = 'etcd-adapter'): Promise<BenchServer> {
  const s = await spawnAdapter(args);
  return { name, endpoint: s.endpoint, pid: s.child.pid!, log: () => s.log(), stop: async () => void (await s.stop()) };
}
