// Reads a bbolt file page by page (no mmap, no whole-file buffer): the
// current meta, the top-level buckets, and each bucket's entries in key
// order, walking the B+tree depth first. Every structural fact is checked
// (page ids, flags, bounds, key order) and a violation is a SnapshotError
// naming what is wrong, so a damaged file is refused, never half-read.
import { open, type FileHandle } from 'node:fs/promises';
import { BRANCH_PAGE, BUCKET_HEADER, BUCKET_LEAF, decodeMeta, ELEMENT_SIZE, LEAF_PAGE, type Meta, PAGE_HEADER, readPageHeader } from './bbolt';
import type { BoltEntry } from './bbolt-writer';

export class SnapshotError extends Error {}

/** bbolt's B+trees are shallow; deeper means a loop in a damaged file. */
const MAX_DEPTH = 64;

export class BoltReader {
  private constructor(
    private readonly file: FileHandle,
    /** Bytes of the file that belong to the bbolt database (a snapshot's hash trailer excluded). */
    private readonly length: number,
    readonly meta: Meta,
  ) {}

  static async open(path: string, length?: number): Promise<BoltReader> {
    const file = await open(path, 'r');
    try {
      const size = length ?? (await file.stat()).size;
      const first = Buffer.alloc(Math.min(size, 4096));
      await file.read(first, 0, first.length, 0);
      const m0 = decodeMeta(first);
      if (typeof m0 === 'string') throw new SnapshotError(`not a bbolt file: ${m0}`);
      const second = Buffer.alloc(PAGE_HEADER + 64);
      await file.read(second, 0, second.length, m0.pageSize);
      const m1 = decodeMeta(second);
      // bbolt takes the valid meta with the higher txid
      const meta = typeof m1 === 'string' || m1.txid < m0.txid ? m0 : m1;
      if (meta.pageSize < 1024 || meta.pageSize > 1 << 20 || (meta.pageSize & (meta.pageSize - 1)) !== 0) throw new SnapshotError(`bad page size ${meta.pageSize}`);
      if (meta.pgid * BigInt(meta.pageSize) > BigInt(size)) throw new SnapshotError(`the file is cut short: ${size} bytes where its meta says ${meta.pgid} pages of ${meta.pageSize}`);
      return new BoltReader(file, size, meta);
    } catch (err) {
      await file.close();
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.file.close();
  }

  /** The top-level buckets: name -> bucket value (header and any inline page). */
  async buckets(): Promise<Map<string, Buffer>> {
    const out = new Map<string, Buffer>();
    for await (const e of this.walk(this.meta.root, 0)) {
      if (!((e.flags ?? 0) & BUCKET_LEAF)) throw new SnapshotError(`the root holds a plain key ${JSON.stringify(e.key.toString('latin1'))}`);
      out.set(e.key.toString('latin1'), e.value);
    }
    return out;
  }

  /** The entries of a bucket, in key order. */
  async *entries(bucket: Buffer): AsyncGenerator<BoltEntry> {
    if (bucket.length < BUCKET_HEADER) throw new SnapshotError('a bucket value is shorter than its header');
    const root = bucket.readBigUInt64LE(0);
    if (root === 0n) {
      const page = bucket.subarray(BUCKET_HEADER);
      if (page.length < PAGE_HEADER) throw new SnapshotError('an inline bucket is shorter than its page header');
      const h = readPageHeader(page);
      if (h.flags !== LEAF_PAGE) throw new SnapshotError('an inline bucket is not a leaf page');
      yield* checkedOrder(leafEntries(page, h.count));
      return;
    }
    yield* checkedOrder(this.walk(root, 0));
  }

  private async *walk(pgid: bigint, depth: number): AsyncGenerator<BoltEntry> {
    if (depth > MAX_DEPTH) throw new SnapshotError('the tree is deeper than any bbolt file (a page loop)');
    const page = await this.page(pgid);
    const h = readPageHeader(page);
    if (h.flags === LEAF_PAGE) {
      yield* leafEntries(page, h.count);
    } else if (h.flags === BRANCH_PAGE) {
      for (const child of branchChildren(page, h.count)) yield* this.walk(child, depth + 1);
    } else {
      throw new SnapshotError(`page ${pgid} should be a branch or leaf page, its flags are 0x${h.flags.toString(16)}`);
    }
  }

  private async page(pgid: bigint): Promise<Buffer> {
    const ps = this.meta.pageSize;
    if (pgid < 2n || pgid >= this.meta.pgid) throw new SnapshotError(`a page reference (${pgid}) is outside the file's ${this.meta.pgid} pages`);
    const at = Number(pgid) * ps;
    const head = Buffer.alloc(ps);
    await this.file.read(head, 0, ps, at);
    const h = readPageHeader(head);
    if (h.id !== pgid) throw new SnapshotError(`page ${pgid} says it is page ${h.id}`);
    if (h.overflow === 0) return head;
    const size = (h.overflow + 1) * ps;
    if (at + size > this.length || pgid + BigInt(h.overflow) >= this.meta.pgid) throw new SnapshotError(`page ${pgid} runs past the end of the file`);
    const whole = Buffer.alloc(size);
    head.copy(whole);
    await this.file.read(whole, ps, size - ps, at + ps);
    return whole;
  }
}

function leafEntries(page: Buffer, count: number): BoltEntry[] {
  const out: BoltEntry[] = [];
  for (let i = 0; i < count; i++) {
    const at = PAGE_HEADER + i * ELEMENT_SIZE;
    if (at + ELEMENT_SIZE > page.length) throw new SnapshotError('a leaf page has more elements than fit in it');
    const flags = page.readUInt32LE(at);
    const from = at + page.readUInt32LE(at + 4);
    const ksize = page.readUInt32LE(at + 8);
    const vsize = page.readUInt32LE(at + 12);
    if (from + ksize + vsize > page.length) throw new SnapshotError('a leaf element points past the end of its page');
    out.push({ key: page.subarray(from, from + ksize), value: page.subarray(from + ksize, from + ksize + vsize), flags });
  }
  return out;
}

function branchChildren(page: Buffer, count: number): bigint[] {
  const out: bigint[] = [];
  for (let i = 0; i < count; i++) {
    const at = PAGE_HEADER + i * ELEMENT_SIZE;
    if (at + ELEMENT_SIZE > page.length) throw new SnapshotError('a branch page has more elements than fit in it');
    out.push(page.readBigUInt64LE(at + 8));
  }
  return out;
}

/** Passes entries on, refusing keys that do not ascend (a damaged tree). */
async function* checkedOrder(entries: Iterable<BoltEntry> | AsyncIterable<BoltEntry>): AsyncGenerator<BoltEntry> {
  let last: Buffer | null = null;
  for await (const e of entries) {
    if (last && Buffer.compare(last, e.key) >= 0) throw new SnapshotError('keys out of order in a bucket (a damaged page)');
    last = e.key;
    yield e;
  }
}
