// Loads our etcd protos once. gRPC uses proto-loader's definitions; the
// HTTP/JSON gateway uses protobufjs reflection over the same files.
import * as path from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import * as protobuf from 'protobufjs';
import { isDepthError, messageDepthFor, tooDeepTxn } from './mvcc/txn-nesting';

export const PROTO_DIR = path.resolve(__dirname, '..', '..', 'proto');
const FILES = ['etcdserverpb/rpc.proto', 'grpc/health/v1/health.proto'];

/**
 * The shape every handler receives: proto field names as written, int64 as
 * decimal strings, bytes as Buffers, enums as numbers, every field present
 * (defaults filled in) and each set oneof named by its discriminator.
 */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

const REQUEST_SIZE = Symbol('requestSize');

/**
 * An answer whose bytes are already encoded (watch events shared by many
 * watchers are encoded once); the serializer sends these bytes as they are.
 */
export const PRE_ENCODED = Symbol('preEncoded');

/** The encoded size of a request as it arrived (0 when unknown). */
export function requestSize(req: object): number {
  return (req as { [REQUEST_SIZE]?: number })[REQUEST_SIZE] ?? 0;
}

export function setRequestSize(req: object, size: number): void {
  // a plain store, not defineProperty (which takes V8's slow path on every request);
  // symbol keys stay out of Object.keys, for-in and JSON
  (req as { [REQUEST_SIZE]?: number })[REQUEST_SIZE] = size;
}

/**
 * etcd tells an absent range_end (one key) from a present empty one: Go
 * decodes the latter as a non-nil empty slice, which etcd's range and compare
 * code read as "no upper bound" - the same as "\0". Writes pass through raft,
 * whose re-encoding drops the empty field again, so only what etcd serves
 * without raft shows this: Range and read-only Txn. proto3 defaults hide the
 * difference from toObject, so it is recorded on the decoded message, where
 * field presence is still visible.
 */
const PRESENT_EMPTY_RANGE_END = new Set(['etcdserverpb.KV/Range', 'etcdserverpb.KV/Txn']);

function servedWithoutRaft(msg: Record<string, unknown>): boolean {
  if (!('success' in msg)) return true; // a RangeRequest
  const ops = [...((msg.success as { request_range?: unknown }[]) ?? []), ...((msg.failure as { request_range?: unknown }[]) ?? [])];
  return ops.every((op) => op.request_range);
}
const UNBOUNDED = Buffer.from([0]);

function markPresentEmptyRangeEnds(msg: unknown): void {
  if (!msg || typeof msg !== 'object') return;
  if (Array.isArray(msg)) return msg.forEach(markPresentEmptyRangeEnds);
  if (Buffer.isBuffer(msg)) return;
  const m = msg as Record<string, unknown>;
  if (Object.prototype.hasOwnProperty.call(m, 'range_end') && (m.range_end as Buffer).length === 0) m.range_end = UNBOUNDED;
  for (const v of Object.values(m)) if (v && typeof v === 'object') markPresentEmptyRangeEnds(v);
}

/** "etcdserverpb.KV" -> "etcdserverpb"; "grpc.health.v1.Health" -> "grpc.health.v1". */
function packageOf(service: string): string {
  return service.split('.').slice(0, -1).join('.');
}

function load(): protoLoader.PackageDefinition {
  const def = protoLoader.loadSync(FILES, LOADER_OPTIONS);
  for (const name of Object.keys(def)) {
    const service = def[name] as protoLoader.ServiceDefinition;
    if (typeof service !== 'object' || !service || 'format' in service) continue;
    for (const [methodName, method] of Object.entries(service)) {
      let decode = method.requestDeserialize;
      if (PRESENT_EMPTY_RANGE_END.has(`${name}/${methodName}`)) {
        const type = protoRoot.lookupType(`${packageOf(name)}.${(method.requestType as { type: { name: string } }).type.name}`);
        decode = (buf: Buffer) => {
          const msg = type.decode(buf);
          if (servedWithoutRaft(msg as unknown as Record<string, unknown>)) markPresentEmptyRangeEnds(msg);
          return type.toObject(msg, LOADER_OPTIONS as protobuf.IConversionOptions);
        };
      }
      // A txn nested past what any budget allows becomes a stand-in refused as too many ops.
      const nested = name === 'etcdserverpb.KV' && methodName === 'Txn';
      // Remember each request's wire size: etcd refuses writes above --max-request-bytes.
      method.requestDeserialize = (buf: Buffer) => {
        let req: object;
        try {
          req = decode(buf) as object;
        } catch (err) {
          if (!nested || !isDepthError(err)) throw err;
          req = tooDeepTxn();
        }
        setRequestSize(req, buf.length);
        return req;
      };
      // Encode answers straight from the handlers' plain objects: protobufjs's
      // encoder reads them as they are, so the Message copy (and a Long per
      // int64 field) that fromObject would build per answer is skipped.
      const responseType = protoRoot.lookupType(`${packageOf(name)}.${(method.responseType as { type: { name: string } }).type.name}`);
      method.responseSerialize = (res: object) =>
        ((res as { [PRE_ENCODED]?: Buffer })[PRE_ENCODED] ?? responseType.encode(res as protobuf.Message).finish()) as Buffer;
    }
  }
  return def;
}

export const protoRoot: protobuf.Root = (() => {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : path.join(PROTO_DIR, target));
  root.loadSync(FILES, { keepCase: true });
  root.resolveAll();
  return root;
})();

/** The deepest message protobufjs decodes, encodes or converts (see txn-nesting.ts). */
let messageDepth = 0;

/** Lets txns nest as deep as --max-txn-ops allows (never lowered: servers in one process share protobufjs). */
export function allowTxnNesting(maxTxnOps: number): void {
  messageDepth = Math.max(messageDepth, messageDepthFor(maxTxnOps));
  protobuf.util.recursionLimit = messageDepth;
  (protobuf.Reader as unknown as { recursionLimit: number }).recursionLimit = messageDepth;
}

/** The deepest message the JSON gateway converts. */
export function maxMessageDepth(): number {
  return messageDepth;
}

allowTxnNesting(128);

export const packageDefinition = load();



export function serviceDefinition(name: string): protoLoader.ServiceDefinition {
  return packageDefinition[name] as protoLoader.ServiceDefinition;
}
