// Nothing is lost under load: 5,000 revisions are written while 100 watchers
// follow - gRPC watchers sharing streams, HTTP watchers, and HTTP watchers that
// stop reading until the writes are done, so that their stream backs up past
// the kernel's socket buffers and they fall back to catching up from the log.
// Each must receive every event exactly once, in revision order.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import { spawnAdapter, type SpawnedAdapter } from './helpers/spawn';
import { b, EtcdGrpcClient } from './helpers/grpc-client';
import { grpcWatch } from './helpers/watch-client';
import { backendsUnderTest, freshBackend, type FreshBackend } from './helpers/backends';
import { waitFor } from './helpers/ports';
import { onJsonLines } from './helpers/json-lines';

const REVISIONS = 5_000;
const KEYS = 300;
/** Values large enough that a stalled reader's backlog (~7 MB) outgrows the socket buffers. */
const VALUE = 'v'.repeat(600);

type Seen = string[]; // "rev:type:key"

function record(seen: Seen, events: any[] | undefined): void {
  for (const ev of events ?? []) {
    const type = ev.type === 1 || ev.type === 'DELETE' ? 'D' : 'P';
    const key = Buffer.isBuffer(ev.kv.key) ? ev.kv.key.toString() : Buffer.from(ev.kv.key, 'base64').toString();
    seen.push(`${ev.kv.mod_revision}:${type}:${key}`);
  }
}

/** An HTTP watch; with `stall`, its reader stops after 64 KiB until `stall` resolves. */
function httpFollower(url: string, start: number, seen: Seen, stall?: Promise<void>): () => void {
  const body = JSON.stringify({ create_request: { key: Buffer.from('load/').toString('base64'), range_end: Buffer.from('load0').toString('base64'), start_revision: start } });
  const req = http.request(`${url}/v3/watch`, { method: 'POST' }, (res) => {
    let received = 0;
    onJsonLines(res, (msg) => record(seen, msg.result?.events), {
      afterChunk: (chunk) => {
        const before = received;
        received += chunk.length;
        if (stall && before < 64 * 1024 && received >= 64 * 1024) {
          res.pause();
          void stall.then(() => res.resume());
        }
      },
    });
  });
  req.on('error', () => undefined);
  req.end(body);
  return () => req.destroy();
}

for (const backend of backendsUnderTest()) {
  describe(`watch under load (${backend})`, () => {
    let server: SpawnedAdapter;
    let fresh: FreshBackend;
    before(async () => {
      fresh = await freshBackend(backend);
      server = await spawnAdapter(['--backend', fresh.url], { ETCD_ADAPTER_TRACE: 'watch' });
    });
    after(async () => {
      await server?.stop();
      await fresh?.drop();
    });

    it(`${REVISIONS} revisions reach 100 watchers, every event once and in order`, async () => {
      const writer = new EtcdGrpcClient(server.endpoint);
      const start = Number((await writer.range({ key: b('x') })).header.revision) + 1;

      const streams = Array.from({ length: 4 }, () => grpcWatch(new EtcdGrpcClient(server.endpoint)));
      for (const s of streams) {
        for (let i = 0; i < 10; i++) s.send({ create_request: { key: b('load/'), range_end: b('load0'), start_revision: start } });
      }
      const closers: (() => void)[] = [];
      const httpSeen: Seen[] = [];
      let writesDone!: () => void;
      const stall = new Promise<void>((resolve) => (writesDone = resolve));
      for (let i = 0; i < 60; i++) {
        const seen: Seen = [];
        httpSeen.push(seen);
        // the last 15 stop reading after 64 KiB until every write is done
        closers.push(httpFollower(server.url, start, seen, i < 45 ? undefined : stall));
      }

      // The writes: puts, deletes and multi-op txns from 24 concurrent clients.
      const expected: Seen = [];
      let n = 0;
      const one = async (i: number) => {
        const key = `load/${i % KEYS}`;
        if (i % 10 === 9) {
          const r = await writer.deleteRange({ key: b(key), prev_kv: false });
          if (Number(r.deleted) === 1) expected.push(`${r.header.revision}:D:${key}`);
          else n--; // deleted nothing: no revision
        } else if (i % 10 === 4) {
          const k2 = `load/t${i % 50}`;
          const r = await writer.txn({ success: [{ request_put: { key: b(key), value: b(`${i}${VALUE}`) } }, { request_put: { key: b(k2), value: b('t') } }] });
          expected.push(`${r.header.revision}:P:${key}`, `${r.header.revision}:P:${k2}`);
        } else {
          const r = await writer.put({ key: b(key), value: b(`${i}${VALUE}`) });
          expected.push(`${r.header.revision}:P:${key}`);
        }
      };
      let next = 0;
      await Promise.all(
        Array.from({ length: 24 }, async () => {
          while (n < REVISIONS) {
            n++;
            await one(next++);
          }
        }),
      );
      writesDone();
      const order = (s: string) => Number(s.split(':')[0]);
      // within a txn the two puts keep their order; across revisions sort by revision
      expected.sort((x, y) => order(x) - order(y));
      const last = order(expected[expected.length - 1]);
      assert.equal(last - start + 1, REVISIONS, 'the writes made exactly REVISIONS revisions');
      // Two last puts mark the end: a watcher that saw them has seen all it will see before them,
      // and anything extra (a duplicate, a replay) would have come before the second.
      const marker = async (key: string) => expected.push(`${(await writer.put({ key: b(key), value: b('end') })).header.revision}:P:${key}`);

      // gRPC: one list per watcher, keyed by stream and watch id
      const grpcSeen = new Map<string, Seen>();
      const cursors = streams.map(() => 0);
      const drainGrpc = () =>
        streams.forEach((s, si) => {
          for (; cursors[si] < s.responses.length; cursors[si]++) {
            const r = s.responses[cursors[si]];
            if (!r.events?.length) continue;
            const k = `${si}/${r.watch_id}`;
            if (!grpcSeen.has(k)) grpcSeen.set(k, []);
            record(grpcSeen.get(k)!, r.events);
          }
        });
      const all = () => [...httpSeen, ...grpcSeen.values()];
      const everyoneHas = async (what: string) =>
        waitFor(what, async () => {
          drainGrpc();
          return grpcSeen.size === 40 && all().every((seen) => seen.length >= expected.length) ? true : undefined;
        }, 240_000).catch(() => undefined); // the assertions below say what is missing
      await marker('load/~end1');
      await everyoneHas('every watcher to reach the first end marker');
      await marker('load/~end2');
      await everyoneHas('every watcher to reach the second end marker');
      drainGrpc();

      assert.equal(grpcSeen.size, 40, 'all 40 gRPC watchers delivered');
      // The slow readers really did back up: the hub paused them and replayed them from the log.
      assert.match(server.log(), /watcher paused at revision/);
      assert.match(server.log(), /watcher catching up from revision/);
      for (const [i, seen] of all().entries()) {
        const first = seen.findIndex((x, j) => x !== expected[j]);
        assert.ok(first === -1 && seen.length === expected.length, `watcher ${i}: ${seen.length} of ${expected.length} events; first difference at ${first}: got ${seen[first]}, want ${expected[first]}`);
      }
      for (const s of streams) s.close();
      for (const c of closers) c();
      writer.close();
    });
  });
}
