// SIGTERM with streams open, against etcd 3.4: an HTTP watch ends with
// etcd's last line and a clean end of its chunked body (no cut connection:
// curl exit 18, Patroni's InvalidChunkLength); an HTTP keepalive stream whose
// request body was sent whole ends as etcd's does (no last line: it ended with
// its body); a gRPC watch ends with UNAVAILABLE; the process exits 0.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import { b, EtcdGrpcClient } from './helpers/grpc-client';
import { waitFor } from './helpers/ports';
import { etcdAvailable, startRealEtcd } from './helpers/real-etcd';
import { spawnAdapter } from './helpers/spawn';
import { backendsUnderTest, freshBackend } from './helpers/backends';

interface HttpStream {
  /** Body text so far. */
  body(): string;
  /** How the response ended: 'end' (a clean end of the chunked body), 'aborted' or 'error: ...'; null while open. */
  ending(): string | null;
}

function openHttpStream(endpoint: string, path: string, message: object): HttpStream {
  const [host, port] = endpoint.split(':');
  let body = '';
  let ending: string | null = null;
  const req = http.request({ host, port: Number(port), path, method: 'POST' }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (d: string) => (body += d));
    res.on('end', () => (ending ??= 'end'));
    res.on('aborted', () => (ending ??= 'aborted'));
    res.on('error', (e) => (ending ??= `error: ${e.message}`));
  });
  req.on('error', (e) => (ending ??= `error: ${e.message}`));
  req.end(JSON.stringify(message));
  return { body: () => body, ending: () => ending };
}

interface Seen {
  watchTail: string;
  watchEnding: string | null;
  keepAliveTail: string;
  keepAliveEnding: string | null;
  grpcCode: number;
  grpcDetails: string;
}

/** Opens the streams, waits until each answered, SIGTERMs the server, and records how each ended. */
async function streamsAtSigterm(endpoint: string, kill: () => void): Promise<Seen> {
  const c = new EtcdGrpcClient(endpoint);
  const lease = await c.call(c.lease, 'LeaseGrant', { TTL: 60 });
  const watch = openHttpStream(endpoint, '/v3/watch', { create_request: { key: Buffer.from('k').toString('base64') } });
  const keepAlive = openHttpStream(endpoint, '/v3/lease/keepalive', { ID: String(lease.ID) });
  const call = (c.watch as unknown as { Watch(): import("@grpc/grpc-js").ClientDuplexStream<object, object> }).Watch();
  let grpcEnd: { code: number; details: string } | null = null;
  let created = false;
  call.on('data', (d: { created?: boolean }) => (created ||= !!d.created));
  call.on('error', (e: { code: number; details: string }) => (grpcEnd ??= { code: e.code, details: e.details }));
  call.write({ create_request: { key: b('k') } });
  await waitFor('every stream to answer', async () => (created && watch.body().includes('"created":true') && keepAlive.body().includes('"TTL"') ? true : undefined));
  const [watchBefore, keepAliveBefore] = [watch.body().length, keepAlive.body().length];
  kill();
  await waitFor('every stream to end', async () => (watch.ending() && keepAlive.ending() && grpcEnd ? true : undefined));
  c.close();
  return {
    watchTail: watch.body().slice(watchBefore),
    watchEnding: watch.ending(),
    keepAliveTail: keepAlive.body().slice(keepAliveBefore),
    keepAliveEnding: keepAlive.ending(),
    grpcCode: grpcEnd!.code,
    grpcDetails: grpcEnd!.details,
  };
}

describe('SIGTERM with streams open, against etcd 3.4', { skip: !etcdAvailable() && 'etcd is not installed' }, () => {
  for (const backend of backendsUnderTest()) {
    it(`streams end as etcd's do, and the server exits 0 (${backend})`, async () => {
      // etcd races its own shutdown: most stops end an HTTP watch with "transport is closing", a few
      // close the connection first (no last line) or end it with code 1 "the client connection is
      // closing"; and its gRPC watch usually ends UNAVAILABLE but now and then INTERNAL (the stream
      // reset before its status went out; seen once in CI). The reference is a stop that ended the
      // usual way on both (a few tries at most).
      const closing = '{"error":{"grpc_code":14,"http_code":503,"message":"transport is closing","http_status":"Service Unavailable"}}';
      let theirs: Seen | undefined;
      const tries: string[] = [];
      for (let i = 0; i < 8 && !theirs; i++) {
        const etcd = await startRealEtcd();
        const seen = await streamsAtSigterm(etcd.endpoint, () => process.kill(etcd.pid, 'SIGTERM'));
        await etcd.stop();
        if (seen.watchTail === closing && seen.grpcCode === 14) theirs = seen;
        else tries.push(JSON.stringify(seen));
      }
      assert.ok(theirs, `etcd never ended an HTTP watch with "transport is closing" and a gRPC watch with UNAVAILABLE in 8 stops: ${tries.join('; ')}`);

      const fresh = await freshBackend(backend);
      try {
        const ours = await spawnAdapter(['--backend', fresh.url]);
        const mine = await streamsAtSigterm(ours.endpoint, () => ours.child.kill('SIGTERM'));
        assert.equal(await ours.stop(), 0, 'exit status');

        assert.equal(mine.watchTail, theirs.watchTail, 'the last line of an HTTP watch');
        assert.equal(mine.watchEnding, 'end', 'a clean end of the chunked body');
        assert.equal(theirs.watchEnding, 'end');
        assert.equal(mine.keepAliveTail, theirs.keepAliveTail, 'the last line of an HTTP keepalive stream');
        assert.equal(mine.keepAliveEnding, theirs.keepAliveEnding);
        assert.equal(mine.grpcCode, theirs.grpcCode, 'a gRPC watch ends UNAVAILABLE');
        assert.equal(mine.grpcDetails, 'transport is closing', 'the words a Go client prints when etcd stops');
      } finally {
        await fresh.drop();
      }
    });
  }
});
