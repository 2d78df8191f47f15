// Nested txns, at every depth, against etcd 3.4, over gRPC (bytes made by
// hand: a client library cannot encode what is deeper than it allows) and
// over the gateway. etcd's op budget takes one op per level, so it accepts
// up to 128 levels and answers `too many operations in txn request` beyond
// (the gateway: Go's JSON depth limit first, at 10,000 levels of JSON). What
// is accepted is applied once and answered; nothing is refused after it was
// applied.
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { b, type EtcdGrpcClient } from './helpers/grpc-client';
import { startPair, type Pair } from './helpers/pair';
import { protoRoot } from '../src/proto';

const DEPTHS = [1, 2, 49, 50, 51, 100, 127, 128, 129, 130, 200, 264, 265, 300, 1000, 3333, 3334, 5000, 20000];
const TxnResponse = protoRoot.lookupType('etcdserverpb.TxnResponse');

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

const field = (tag: number, body: Buffer) => Buffer.concat([Buffer.from([tag]), varint(body.length), body]);

/** A txn `depth` levels deep whose innermost level puts key "a"; each level's success holds the next. */
function nestedTxnBytes(depth: number): Buffer {
  const put = Buffer.concat([field(0x0a, b('a')), field(0x12, b('x'))]); // PutRequest{key, value}
  let txn = field(0x12, field(0x12, put)); // TxnRequest{success: [RequestOp{request_put}]}
  for (let i = 1; i < depth; i++) txn = field(0x12, field(0x22, txn)); // TxnRequest{success: [RequestOp{request_txn}]}
  return txn;
}

function nestedTxnJson(depth: number): string {
  let s = '{"success":[{"request_put":{"key":"YQ==","value":"eA=="}}]}';
  for (let i = 1; i < depth; i++) s = `{"success":[{"request_txn":${s}}]}`;
  return s;
}

/** How many levels of response_txn an answer holds. */
function responseDepth(res: any): number {
  let d = 1;
  while (res?.responses?.[0]?.response_txn) {
    res = res.responses[0].response_txn;
    d++;
  }
  return d;
}

function rawTxn(c: EtcdGrpcClient, bytes: Buffer): Promise<string> {
  return new Promise((resolve) => {
    c.kv.makeUnaryRequest(
      '/etcdserverpb.KV/Txn',
      (x: Buffer) => x,
      (x: Buffer) => x,
      bytes,
      new grpc.Metadata(),
      (err: grpc.ServiceError | null, res?: Buffer) => {
        if (err) return resolve(`${err.code} ${err.details}`);
        try {
          const msg = TxnResponse.toObject(TxnResponse.decode(res!), { defaults: false });
          resolve(`ok succeeded=${Boolean(msg.succeeded)} depth=${responseDepth(msg)}`);
        } catch (e) {
          resolve(`ok, but the answer does not decode: ${(e as Error).message}`);
        }
      },
    );
  });
}

async function httpTxn(url: string, body: string): Promise<string> {
  const res = await fetch(`${url}/v3/kv/txn`, { method: 'POST', body });
  const json = (await res.json()) as any;
  return res.status === 200 ? `ok succeeded=${Boolean(json.succeeded)} depth=${responseDepth(json)}` : `${res.status} ${json.code} ${json.error}`;
}

describe('nested txns at every depth, against etcd 3.4', () => {
  let pair: Pair;
  before(async () => {
    pair = await startPair();
  });
  after(async () => {
    await pair?.close();
  });

  /** The version of key "a": each applied txn adds one. */
  const version = async (c: EtcdGrpcClient) => Number((await c.range({ key: b('a') })).kvs[0]?.version ?? 0);

  for (const [via, send] of [
    ['gRPC', (c: EtcdGrpcClient, _url: string, d: number) => rawTxn(c, nestedTxnBytes(d))],
    ['HTTP', (_c: EtcdGrpcClient, url: string, d: number) => httpTxn(url, nestedTxnJson(d))],
  ] as const) {
    it(`over ${via}: the same answer as etcd at every depth, and applied exactly when answered ok`, { timeout: 180_000 }, async () => {
      for (const depth of DEPTHS) {
        const sides = [
          { c: pair.etcd, url: pair.etcdServer.url },
          { c: pair.ours, url: pair.oursServer.url },
        ];
        const outcomes: string[] = [];
        for (const { c, url } of sides) {
          const before = await version(c);
          const outcome = await send(c, url, depth);
          const applied = (await version(c)) - before;
          assert.equal(applied, outcome.startsWith('ok') ? 1 : 0, `${via} depth ${depth}: applied ${applied} times, answered ${outcome}`);
          outcomes.push(outcome);
        }
        assert.equal(outcomes[1], outcomes[0], `${via} depth ${depth}`);
      }
    });
  }
});
