// The Cluster service: this instance is the one member.
import { unimplemented } from '../errors';
import type { ApiContext, ServiceHandlers } from './context';
import { RAFT_TERM, uint64 } from './identity';

const MEMBERSHIP = 'membership is not managed through the etcd API: every etcd-adapter instance on the same store is a member';

export function clusterService(api: ApiContext): ServiceHandlers {
  const { identity } = api;
  return {
    // Cluster answers carry no revision, as etcd's do.
    MemberList: async () => ({
      header: { cluster_id: uint64(identity.clusterId), member_id: uint64(identity.memberId), raft_term: RAFT_TERM },
      members: [{ ID: uint64(identity.memberId), name: identity.name, peerURLs: [], clientURLs: identity.clientUrls, isLearner: false }],
    }),
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
