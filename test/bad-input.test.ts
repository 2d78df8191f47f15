// Bad input gets etcd's answer and the server keeps serving: malformed
// protobuf, messages over the gRPC limit, unknown methods, unimplemented ones.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { b, type EtcdGrpcClient } from './helpers/grpc-client';
import { same, sameCode, startPair, type Pair } from './helpers/pair';

function raw(c: EtcdGrpcClient, path: string, bytes: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    c.kv.makeUnaryRequest(
      path,
      (x: Buffer) => x,
      (x: Buffer) => x,
      bytes,
      (err: grpc.ServiceError | null, res?: Buffer) => (err ? reject({ code: err.code, details: err.details }) : resolve(res!)),
    );
  });
}

describe('bad input against etcd 3.4', () => {
  let pair: Pair;
  before(async () => {
    pair = await startPair();
  });
  after(async () => {
    await pair?.close();
  });
  const stillServes = () => same(pair, (c) => c.range({ key: b('alive') }));

  it('malformed protobuf is refused and the server keeps serving', async () => {
    for (const bytes of [Buffer.from([0x0a, 0xff]), Buffer.from([0xff, 0xff, 0xff]), Buffer.from('not protobuf at all')]) {
      for (const method of ['Range', 'Put', 'Txn', 'DeleteRange']) {
        const code = await sameCode(pair, (c) => raw(c, `/etcdserverpb.KV/${method}`, bytes));
        assert.notEqual(code, 'ok');
      }
    }
    await stillServes();
  });

  it('an empty message is a request with every field at its default', async () => {
    await same(pair, (c) => raw(c, '/etcdserverpb.KV/Range', Buffer.alloc(0)).then((r) => r.length > 0));
    await same(pair, (c) => raw(c, '/etcdserverpb.KV/Put', Buffer.alloc(0)).then((r) => r.length > 0));
    await stillServes();
  });

  it('a message over the gRPC receive limit is refused with RESOURCE_EXHAUSTED', async () => {
    const huge = Buffer.alloc(2.5 * 1024 * 1024, 'h');
    const code = await sameCode(pair, (c) => c.put({ key: b('huge'), value: huge }));
    assert.equal(code, grpc.status.RESOURCE_EXHAUSTED);
    await stillServes();
  });

  it('a request between --max-request-bytes and the gRPC limit gets etcd\'s error', async () => {
    await same(pair, (c) => c.put({ key: b('big'), value: Buffer.alloc(1.8 * 1024 * 1024) }));
    await same(pair, (c) => c.txn({ success: Array.from({ length: 4 }, (_, i) => ({ request_put: { key: b(`t${i}`), value: Buffer.alloc(400 * 1024) } })) }));
    await stillServes();
  });

  it('an unknown method answers UNIMPLEMENTED', async () => {
    assert.equal(await sameCode(pair, (c) => raw(c, '/etcdserverpb.KV/NoSuchMethod', Buffer.alloc(0))), grpc.status.UNIMPLEMENTED);
    assert.equal(await sameCode(pair, (c) => raw(c, '/etcdserverpb.NoSuchService/Range', Buffer.alloc(0))), grpc.status.UNIMPLEMENTED);
    await stillServes();
  });

  it('methods this server does not offer answer UNIMPLEMENTED with a sentence, never UNKNOWN', async () => {
    for (const [client, method] of [
      [pair.ours.maintenance, 'MoveLeader'],
      [pair.ours.maintenance, 'Downgrade'],
      [pair.ours.cluster, 'MemberAdd'],
      [pair.ours.cluster, 'MemberRemove'],
    ] as const) {
      const err = await pair.ours.call(client, method, {}).catch((e) => e);
      assert.equal(err.code, grpc.status.UNIMPLEMENTED, method);
      assert.match(err.details, /^etcd-adapter: \w+ is not supported: .{20,}/);
    }
  });
});
