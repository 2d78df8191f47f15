// The payload of a commit announcement (drivers/sql/commit-notice.ts): the
// entries travel when they fit, the short form otherwise, and the revision
// stays where an older instance reads it (after the last ':').
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { decodeNotice, encodeNotice } from '../drivers/sql/commit-notice';
import type { LogEntry } from '../src/mvcc/kv';

function entry(rev: number, sub: number, key: string, value: Buffer, deleted = false): LogEntry {
  return { kv: { key: Buffer.from(key), value, create_revision: 3, mod_revision: rev, version: 2, lease: '7587883213412345678' }, sub, deleted, prev_revision: rev - 1 };
}

describe('commit announcements', () => {
  it('carry the entries of (base, revision] when they fit, every field as written, bytes of any value', () => {
    const entries = [entry(11, 0, 'a', Buffer.from([0, 255, 58, 124, 34])), entry(11, 1, 'b:|"', Buffer.alloc(0), true), entry(12, 0, 'c', Buffer.from('x'))];
    const payload = encodeNotice('0123456789ab', 10, 12, entries, 7900);
    const notice = decodeNotice(payload);
    assert.deepEqual(notice, { origin: '0123456789ab', revision: 12, commit: { base: 10, through: 12, entries } });
    // an older instance reads the revision after the last ':', and the rest as someone else's origin
    assert.equal(Number(payload.slice(payload.lastIndexOf(':') + 1)), 12);
    assert.notEqual(payload.slice(0, payload.lastIndexOf(':')), '0123456789ab');
  });

  it('say only who and which revision when the entries do not fit, and read that form (as older instances send it)', () => {
    const big = [entry(11, 0, 'k', Buffer.alloc(6000, 1))];
    assert.equal(encodeNotice('0123456789ab', 10, 11, big, 7900), '0123456789ab:11');
    // around the limit, byte by byte: always within it, in one form or the other, and both forms occur
    const forms = new Set<string>();
    for (let size = 5700; size <= 5950; size++) {
      const near = [entry(11, 0, 'k', Buffer.alloc(size, 1))];
      const payload = encodeNotice('0123456789ab', 10, 11, near, 7900);
      assert.ok(Buffer.byteLength(payload) <= 7900, `${size}: ${Buffer.byteLength(payload)} bytes`);
      const notice = decodeNotice(payload)!;
      forms.add(notice.commit ? 'entries' : 'short');
      if (notice.commit) assert.deepEqual(notice.commit.entries, near);
    }
    assert.deepEqual([...forms].sort(), ['entries', 'short']);
    assert.deepEqual(decodeNotice('0123456789ab:11'), { origin: '0123456789ab', revision: 11 });
  });

  it("leave a process's own entries unread (it knows its commits)", () => {
    const payload = encodeNotice('0123456789ab', 10, 11, [entry(11, 0, 'a', Buffer.from('x'))], 7900);
    assert.deepEqual(decodeNotice(payload, '0123456789ab'), { origin: '0123456789ab', revision: 11 });
    assert.equal(decodeNotice(payload, 'someone-else')?.commit?.entries.length, 1);
  });

  it('refuse what is not an announcement', () => {
    for (const payload of ['', 'no revision', ':5', 'abc:x', 'abc:1.5']) assert.equal(decodeNotice(payload), null, payload);
    // entries that cannot be read, or are not rows as written, leave the short form
    for (const rows of ['[not json', '{}', '[]', '[1]', '[[1,0,"a","b",1,1,"0",0]]', '[[1,0,"a","b",1,1,"0",2,0]]', '[[1,0,5,"b",1,1,"0",0,0]]', '[null]']) {
      assert.deepEqual(decodeNotice(`abc|10|${rows}:11`), { origin: 'abc', revision: 11 }, rows);
    }
  });
});
