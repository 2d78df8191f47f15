// The batched writer of gRPC server streams (src/server/grpc-batched-writer.ts)
// reaches under grpc-js for the HTTP/2 stream. This pins that it still finds
// it with the grpc-js we ship (a silent fallback would only cost speed), and
// that messages written through it arrive whole and in order, interleaved
// with the turns of the event loop that flush them.
import { describe, it, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { waitFor } from './helpers/ports';
import { batchedWriter } from '../src/server/grpc-batched-writer';

const identity = (b: Buffer) => b;
const service: grpc.ServiceDefinition = {
  Chat: {
    path: '/test.Echo/Chat',
    requestStream: true,
    responseStream: true,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

describe('batched writer of gRPC server streams', () => {
  const server = new grpc.Server();
  after(() => server.forceShutdown());

  it('finds the HTTP/2 stream under grpc-js; every message arrives whole, in order', async () => {
    let found = false;
    let written = 0;
    server.addService(service, {
      Chat: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        const w = batchedWriter(call);
        found = w !== null;
        if (!w) {
          call.end();
          return;
        }
        const done = () => written++;
        // one batch of three in this turn, then a large one and an empty one in later turns
        for (const text of ['one', 'two', 'three']) w.write(Buffer.from(text), done);
        setTimeout(() => {
          w.write(Buffer.alloc(100_000, 0x78), done);
          setImmediate(() => {
            w.write(Buffer.alloc(0), done);
            w.write(Buffer.from('last'), done);
          });
        }, 20);
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    const Client = grpc.makeGenericClientConstructor(service, 'Echo');
    const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const call = (client as any).Chat() as grpc.ClientDuplexStream<Buffer, Buffer>;
    const got: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      call.on('data', (m: Buffer) => {
        got.push(m);
        if (got.length === 6) resolve();
      });
      call.on('error', reject);
      call.on('end', () => resolve());
    });
    await waitFor("every message's callback", async () => (written === 6 ? true : undefined));
    call.cancel();
    client.close();
    assert.ok(found, 'the HTTP/2 stream was found: the fast path is in use');
    assert.deepEqual(got.slice(0, 3).map(String), ['one', 'two', 'three']);
    assert.equal(got[3].length, 100_000);
    assert.ok(got[3].every((c) => c === 0x78));
    assert.equal(got[4].length, 0);
    assert.equal(String(got[5]), 'last');
    assert.equal(written, 6, "every message's callback ran once it was written");
  });
});
