// The Maintenance service: enough of it for etcdctl endpoint status/health.
import { unimplemented } from '../errors';
import type { ApiContext, ServiceHandlers } from './context';
import { header, RAFT_TERM, SERVER_VERSION, uint64 } from './identity';

export function maintenanceService(api: ApiContext): ServiceHandlers {
  const { store, identity } = api;
  return {
    Status: async () => {
      const [{ revision }, stats] = await Promise.all([store.revisions(), store.driver.stats()]);
      return {
        header: header(identity, revision),
        version: SERVER_VERSION,
        dbSize: stats.dbSize,
        leader: uint64(identity.memberId),
        // No raft log: the store's revision is the closest thing to an index.
        raftIndex: revision,
        raftTerm: RAFT_TERM,
        raftAppliedIndex: revision,
        errors: [],
        dbSizeInUse: stats.dbSizeInUse,
        isLearner: false,
      };
    },
    // etcd answers Alarm and Defragment without a header.
    Alarm: async () => ({ alarms: [] }),
    Defragment: async () => {
      await store.driver.defragment?.();
      return {};
    },
    MoveLeader: async () => {
      throw unimplemented('etcd-adapter: MoveLeader is not supported: every instance serves reads and writes; there is no raft leader to move');
    },
    Downgrade: async () => {
      throw unimplemented('etcd-adapter: Downgrade is not supported: the storage schema is not tied to an etcd version');
    },
  };
}
