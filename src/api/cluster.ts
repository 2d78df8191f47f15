// The Cluster service: the members are the instances serving this store.
// Each instance records a heartbeat in the store; MemberList shows those
// heard from recently (so `etcdctl member list` shows every sidecar).
import { unimplemented } from '../errors';
import { MEMBER_ALIVE_MS } from '../mvcc/driver';
import type { ApiContext, ServiceHandlers } from './context';
import { RAFT_TERM, uint64 } from './identity';

const MEMBERSHIP = 'membership is not managed through the etcd API: every etcd-adapter instance on the same store is a member';

export function clusterService(api: ApiContext): ServiceHandlers {
  const { identity, store } = api;
  return {
    // Cluster answers carry no revision, as etcd's do.
    MemberList: async () => {
      const live = await store.driver.members(MEMBER_ALIVE_MS).catch(() => []);
      const others = live.filter((m) => m.id !== identity.memberId);
      const members = [{ id: identity.memberId, name: identity.name, clientUrls: identity.clientUrls, peerUrls: identity.peerUrls }, ...others];
      return {
        header: { cluster_id: uint64(identity.clusterId), member_id: uint64(identity.memberId), raft_term: RAFT_TERM },
        members: members.map((m) => ({ ID: uint64(m.id), name: m.name, peerURLs: m.peerUrls, clientURLs: m.clientUrls, isLearner: false })),
      };
    },
    MemberAdd: async () => {
      throw unimplemented(`etcd-adapter: MemberAdd is not supported: ${MEMBERSHIP}`);
    },
    MemberRemove: async () => {
      throw unimplemented(`etcd-adapter: MemberRemove is not supported: ${MEMBERSHIP}`);
    },
    MemberUpdate: async () => {
      throw unimplemented(`etcd-adapter: MemberUpdate is not supported: ${MEMBERSHIP}`);
    },
    MemberPromote: async () => {
      throw unimplemented(`etcd-adapter: MemberPromote is not supported: ${MEMBERSHIP}`);
    },
  };
}
