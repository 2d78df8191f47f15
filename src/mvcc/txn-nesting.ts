// How deep txns may nest. etcd's op budget (validate.ts: each level spends at
// least one op of --max-txn-ops) refuses any txn nested deeper than
// --max-txn-ops levels with `too many operations in txn request`, so nothing
// deeper ever needs to be decoded or answered. Decoders stop at a message
// depth a little past that budget (protobufjs's own default, 100, is too
// shallow for etcd's 128 levels) and hand on a stand-in that the budget check
// refuses with etcd's error, so every depth gets etcd's answer and the server
// can always encode the answer to whatever it accepted.
import type { TxnRequest } from './requests';

const TOO_DEEP = Symbol('txnTooDeep');

/** Messages a txn nested `maxTxnOps` levels deep spans (TxnRequest, RequestOp, ...), with room for the innermost ops and a header. */
export function messageDepthFor(maxTxnOps: number): number {
  return 2 * Math.min(Math.max(maxTxnOps, 1), 4096) + 8;
}

/** The stand-in for a txn too deep to decode. */
export function tooDeepTxn(): TxnRequest {
  return Object.assign({ compare: [], success: [], failure: [] }, { [TOO_DEEP]: true }) as unknown as TxnRequest;
}

export function isTooDeep(r: TxnRequest): boolean {
  return (r as unknown as { [TOO_DEEP]?: boolean })[TOO_DEEP] === true;
}

/** A decoder gave up on nesting (protobufjs's limit, or the stack), not on malformed bytes. */
export function isDepthError(err: unknown): boolean {
  return err instanceof Error && /^(maximum nesting depth exceeded|max depth exceeded|Maximum call stack size exceeded)$/.test(err.message);
}
