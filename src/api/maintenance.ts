// The Maintenance service: Status, Alarm, Defragment, Hash, HashKV (Snapshot,
// a stream, is in snapshot.ts). MoveLeader and Downgrade have no meaning
// here and say so.
import { unimplemented } from '../errors';
import type { Alarms } from '../mvcc/alarms';
import { hashKV } from '../mvcc/hash';
import { num } from '../mvcc/requests';
import type { ApiContext, ServiceHandlers } from './context';
import { header, RAFT_TERM, SERVER_VERSION, uint64 } from './identity';

export function maintenanceService(api: ApiContext, alarms: Alarms): ServiceHandlers {
  const { store, identity } = api;
  return {
    Status: async () => {
      const [{ revision }, stats] = await Promise.all([store.revisions(), store.driver.stats()]);
      return {
        header: header(identity, revision),
        version: SERVER_VERSION,
        dbSize: stats.dbSize,
        // Every instance serves reads and writes: each is its own leader.
        leader: uint64(identity.memberId),
        // No raft log: the store's revision is the closest thing to an index.
        raftIndex: revision,
        raftTerm: RAFT_TERM,
        raftAppliedIndex: revision,
        errors: alarms.errors(),
        dbSizeInUse: stats.dbSizeInUse,
        isLearner: false,
      };
    },
    // etcd answers Alarm and Defragment without a header.
    Alarm: async (req) => {
      // GET: every alarm of the type asked (NONE: all), whatever the member, as etcd's alarm store.
      const list = req.action === 0 ? alarms.list().filter((a) => !req.alarm || a.alarm === req.alarm) : await alarms.change(req.action, String(req.memberID), req.alarm);
      return { alarms: list.map((a) => ({ memberID: uint64(a.memberID), alarm: a.alarm })) };
    },
    Defragment: async () => {
      await store.driver.defragment?.();
      return {};
    },
    Hash: async () => {
      const h = await hashKV(store.driver, 0);
      return { header: header(identity, h.current), hash: h.hash };
    },
    HashKV: async (req) => {
      const h = await hashKV(store.driver, num(req.revision));
      return { header: header(identity, h.current), hash: h.hash, compact_revision: Math.max(0, h.compactRevision) };
    },
    MoveLeader: async () => {
      throw unimplemented('etcd-adapter: MoveLeader is not supported: every instance serves reads and writes; there is no raft leader to move');
    },
    Downgrade: async () => {
      throw unimplemented('etcd-adapter: Downgrade is not supported: the storage schema is not tied to an etcd version');
    },
  };
}
