// A plain gRPC client for our protos, used against both servers.
import * as grpc from '@grpc/grpc-js';
import { packageDefinition } from '../../src/proto';

const pkg = grpc.loadPackageDefinition(packageDefinition) as any;

export interface RpcError {
  code: number;
  details: string;
}

export class EtcdGrpcClient {
  readonly kv: grpc.Client;
  readonly maintenance: grpc.Client;
  readonly cluster: grpc.Client;
  readonly lease: grpc.Client;
  readonly auth: grpc.Client;
  readonly watch: grpc.Client;
  readonly health: grpc.Client;
  private readonly clients: grpc.Client[];

  constructor(readonly endpoint: string, options: grpc.ChannelOptions = {}) {
    const creds = grpc.credentials.createInsecure();
    const opts = { 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1, ...options };
    this.kv = new pkg.etcdserverpb.KV(endpoint, creds, opts);
    // One channel for all services, as etcd clients do.
    const channelOverride = (this.kv as any).getChannel();
    const make = (ctor: any) => new ctor(endpoint, creds, { ...opts, channelOverride });
    this.maintenance = make(pkg.etcdserverpb.Maintenance);
    this.cluster = make(pkg.etcdserverpb.Cluster);
    this.lease = make(pkg.etcdserverpb.Lease);
    this.auth = make(pkg.etcdserverpb.Auth);
    this.watch = make(pkg.etcdserverpb.Watch);
    this.health = make(pkg.grpc.health.v1.Health);
    this.clients = [this.kv, this.maintenance, this.cluster, this.lease, this.auth, this.watch, this.health];
  }

  /** Unary call; resolves with the response, rejects with {code, details}. */
  call<T = any>(client: grpc.Client, method: string, req: object, metadata = new grpc.Metadata()): Promise<T> {
    return new Promise((resolve, reject) => {
      (client as any)[method](req, metadata, (err: grpc.ServiceError | null, res: T) => {
        if (err) reject({ code: err.code, details: err.details } satisfies RpcError);
        else resolve(res);
      });
    });
  }

  /** Unary call that returns either the response or the error, for comparing. */
  async outcome(client: grpc.Client, method: string, req: object, metadata?: grpc.Metadata): Promise<{ ok: unknown } | { err: RpcError }> {
    try {
      return { ok: await this.call(client, method, req, metadata) };
    } catch (err) {
      return { err: err as RpcError };
    }
  }

  range(req: object) { return this.call(this.kv, 'Range', req); }
  put(req: object) { return this.call(this.kv, 'Put', req); }
  deleteRange(req: object) { return this.call(this.kv, 'DeleteRange', req); }
  txn(req: object) { return this.call(this.kv, 'Txn', req); }
  compact(req: object) { return this.call(this.kv, 'Compact', req); }

  /** One keepalive round trip on a fresh LeaseKeepAlive stream. */
  keepAliveOnce(id: string | number): Promise<any> {
    return new Promise((resolve, reject) => {
      const call = (this.lease as any).LeaseKeepAlive() as grpc.ClientDuplexStream<object, any>;
      call.once('data', (r) => {
        resolve(r);
        call.end();
      });
      call.once('error', reject);
      call.write({ ID: id });
    });
  }

  close(): void {
    for (const c of this.clients) c.close();
  }
}

export const b = (s: string): Buffer => Buffer.from(s);
