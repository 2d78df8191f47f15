// The embedding API: startServer() inside this process.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { startServer } from '../src/index';
import { b, EtcdGrpcClient } from './helpers/grpc-client';
import { freePort } from './helpers/ports';

describe('startServer', () => {
  it('starts an in-memory server on a random port and closes it', async () => {
    const server = await startServer();
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(server.endpoint, `127.0.0.1:${server.port}`);
    const c = new EtcdGrpcClient(server.endpoint);
    await c.put({ key: b('k'), value: b('v') });
    const r = await c.range({ key: b('k') });
    assert.equal(r.kvs[0].value.toString(), 'v');
    c.close();
    await server.close();
    await server.close(); // idempotent
    await assert.rejects(
      new Promise((resolve, reject) => net.connect(server.port, '127.0.0.1').once('connect', resolve).once('error', reject)),
      /ECONNREFUSED/,
    );
  });

  it('runs several independent servers in one process, on a chosen port', async () => {
    const port = await freePort();
    const [one, two] = await Promise.all([startServer({ port }), startServer({ name: 'two', maxTxnOps: 1 })]);
    assert.equal(one.port, port);
    const c1 = new EtcdGrpcClient(one.endpoint);
    const c2 = new EtcdGrpcClient(two.endpoint);
    await c1.put({ key: b('only-in-one'), value: b('1') });
    assert.equal((await c2.range({ key: b('only-in-one') })).count, '0');
    await assert.rejects(c2.txn({ success: [{ request_put: { key: b('a') } }, { request_put: { key: b('b') } }] }), { code: 3 });
    c1.close();
    c2.close();
    await Promise.all([one.close(), two.close()]);
  });
});
