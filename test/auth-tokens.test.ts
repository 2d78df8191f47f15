// Auth tokens (src/mvcc/auth-tokens.ts) over a token store whose clock the
// test sets: tokens issued here or elsewhere, forgotten here and found again,
// expired by idleness as the store reports it, unknown ones refused without
// asking the store twice.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { AuthTokens } from '../src/mvcc/auth-tokens';
import type { TokenRecord, TokenStore } from '../src/mvcc/driver';

/** A token store with a hand-set idle time, counting lookups. */
class FakeStore implements TokenStore {
  rows = new Map<string, Omit<TokenRecord, 'idleMs'>>();
  idleMs = 0;
  gets = 0;
  touched = 0;
  async put(hash: Buffer, t: Omit<TokenRecord, 'idleMs'>) {
    this.rows.set(hash.toString('hex'), t);
  }
  async get(hash: Buffer) {
    this.gets++;
    const r = this.rows.get(hash.toString('hex'));
    return r ? { ...r, idleMs: this.idleMs } : null;
  }
  async touch(hashes: Buffer[]) {
    this.touched += hashes.length;
  }
  async dropIdle() {}
}

const claims = { user: 'alice', generation: 'g1', epoch: 'e1' };

describe('auth tokens', () => {
  it('a token issued here is known at once; one issued by another process is read from the store once', async () => {
    const store = new FakeStore();
    const here = new AuthTokens(store, 60_000);
    const there = new AuthTokens(store, 60_000);
    const token = await here.issue(claims);
    assert.deepEqual(here.cached(token), claims);
    assert.equal(there.cached(token), undefined, 'not known there yet');
    assert.deepEqual(await there.lookup(token), claims);
    assert.equal(store.gets, 1);
    assert.deepEqual(await there.lookup(token), claims);
    assert.equal(store.gets, 1, 'then known there too');
  });

  it('the store keeps only a hash of the token', async () => {
    const store = new FakeStore();
    const token = await new AuthTokens(store, 60_000).issue(claims);
    const [key] = [...store.rows.keys()];
    assert.equal(key.length, 64, 'a SHA-256');
    assert.ok(!key.includes(Buffer.from(token).toString('hex')) && !token.includes(key));
  });

  it('a token idle longer than the TTL by the store is refused; a garbage one is asked about once', async () => {
    const store = new FakeStore();
    const issuer = new AuthTokens(store, 1000);
    const token = await issuer.issue(claims);
    const other = new AuthTokens(store, 1000);
    store.idleMs = 1000;
    assert.equal(await other.lookup(token), null);
    store.idleMs = 999;
    assert.deepEqual(await other.lookup(token), claims, 'one ms younger: still good');
    const gets = store.gets;
    assert.equal(await other.lookup('garbage'), null);
    assert.equal(await other.lookup('garbage'), null);
    assert.equal(store.gets, gets + 1, 'garbage is looked up in the store once');
  });

  it('past its memory bound a process forgets the oldest tokens, writes back their uses, and finds them in the store again', async () => {
    const store = new FakeStore();
    const tokens = new AuthTokens(store, 60_000, undefined, 10);
    const issued = [];
    for (let i = 0; i < 25; i++) {
      issued.push(await tokens.issue({ ...claims, user: `u${i}` }));
      tokens.cached(issued[i]); // a use
    }
    const gets = store.gets;
    for (const [i, t] of issued.entries()) assert.deepEqual(await tokens.lookup(t), { ...claims, user: `u${i}` });
    assert.ok(store.gets > gets, 'forgotten tokens were read from the store');
    assert.ok(store.touched > 0, 'the uses of forgotten tokens were written back');
  });
});
