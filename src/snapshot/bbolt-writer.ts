// Writes a bbolt file front to back, one bucket at a time, from entries that
// arrive already sorted: each bucket's leaf pages are written as they fill,
// then the branch pages above them (only the first key and page of each
// child is kept meanwhile), so a store of any size is written in bounded
// memory. Small buckets are stored inline in their parent, as bbolt stores
// them; the meta pages (0 and 1) are written last, once the root is known.
import { open, type FileHandle } from 'node:fs/promises';
import {
  BRANCH_PAGE,
  BUCKET_HEADER,
  BUCKET_LEAF,
  DEFAULT_PAGE_SIZE,
  ELEMENT_SIZE,
  encodeMeta,
  LEAF_PAGE,
  META_PAGE,
  NO_FREELIST,
  PAGE_HEADER,
  writePageHeader,
} from './bbolt';

export interface BoltEntry {
  key: Buffer;
  value: Buffer;
  /** BUCKET_LEAF when the value is a bucket. */
  flags?: number;
}

/** Bytes buffered before a write to the file. */
const FLUSH_BYTES = 1 << 20;

interface ChildRef {
  key: Buffer;
  pgid: number;
}

export class BoltWriter {
  private nextPgid = 2;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private pendingAt: number;
  private readonly buckets: BoltEntry[] = [];

  private constructor(
    private readonly file: FileHandle,
    private readonly pageSize: number,
  ) {
    this.pendingAt = 2 * pageSize;
  }

  static async create(path: string, pageSize = DEFAULT_PAGE_SIZE): Promise<BoltWriter> {
    return new BoltWriter(await open(path, 'w', 0o600), pageSize);
  }

  /** Adds a top-level bucket holding `entries`, which must come in ascending key order. */
  async bucket(name: string, entries: Iterable<BoltEntry> | AsyncIterable<BoltEntry>): Promise<void> {
    this.buckets.push({ key: Buffer.from(name), value: await this.tree(entries, true), flags: BUCKET_LEAF });
  }

  /** Writes the root bucket and the meta pages; returns the file's size. */
  async finish(): Promise<number> {
    this.buckets.sort((a, b) => Buffer.compare(a.key, b.key));
    const rootValue = await this.tree(this.buckets, false);
    const root = rootValue.readBigUInt64LE(0);
    await this.flush();
    // Two valid metas naming the same tree; readers take the one with the higher txid.
    for (const txid of [1, 2]) {
      const page = Buffer.alloc(this.pageSize);
      writePageHeader(page, { id: BigInt(txid - 1), flags: META_PAGE, count: 0, overflow: 0 });
      encodeMeta({ pageSize: this.pageSize, flags: 0, root, sequence: 0n, freelist: NO_FREELIST, pgid: BigInt(this.nextPgid), txid: BigInt(txid) }).copy(page, PAGE_HEADER);
      await this.file.write(page, 0, page.length, (txid - 1) * this.pageSize);
    }
    await this.file.sync();
    await this.file.close();
    return this.nextPgid * this.pageSize;
  }

  /** Closes the file without finishing it (after a failure). */
  async abort(): Promise<void> {
    await this.file.close().catch(() => undefined);
  }

  /**
   * Builds one bucket's B+tree and returns its value in the parent: the
   * bucket header, followed by the leaf page itself for an inline bucket.
   */
  private async tree(entries: Iterable<BoltEntry> | AsyncIterable<BoltEntry>, inlineable: boolean): Promise<Buffer> {
    const maxInline = this.pageSize / 4;
    let page: BoltEntry[] = [];
    let size = PAGE_HEADER;
    let nested = false;
    const leaves: ChildRef[] = [];
    for await (const e of entries) {
      const grow = ELEMENT_SIZE + e.key.length + e.value.length;
      if (page.length > 0 && size + grow > this.pageSize) {
        leaves.push(await this.writeLeaf(page, size));
        page = [];
        size = PAGE_HEADER;
      }
      page.push(e);
      size += grow;
      if (e.flags) nested = true;
    }
    const header = Buffer.alloc(BUCKET_HEADER);
    if (inlineable && leaves.length === 0 && !nested && size <= maxInline) {
      // root pgid 0: the page follows in the value
      return Buffer.concat([header, leafPage(page, size, 0)]);
    }
    leaves.push(await this.writeLeaf(page, size));
    let level = leaves;
    while (level.length > 1) level = await this.writeBranches(level);
    header.writeBigUInt64LE(BigInt(level[0].pgid), 0);
    return header;
  }

  private async writeLeaf(entries: BoltEntry[], size: number): Promise<ChildRef> {
    const pgid = this.nextPgid;
    await this.emit(leafPage(entries, size, this.pageSize, pgid));
    return { key: entries[0]?.key ?? Buffer.alloc(0), pgid };
  }

  /** One level of branch pages over `children`; returns the references to them. */
  private async writeBranches(children: ChildRef[]): Promise<ChildRef[]> {
    const out: ChildRef[] = [];
    let page: ChildRef[] = [];
    let size = PAGE_HEADER;
    const write = async () => {
      const pgid = this.nextPgid;
      await this.emit(branchPage(page, size, this.pageSize, pgid));
      out.push({ key: page[0].key, pgid });
    };
    for (const c of children) {
      const grow = ELEMENT_SIZE + c.key.length;
      // at least two children per branch page, so that every level shrinks
      if (page.length > 1 && size + grow > this.pageSize) {
        await write();
        page = [];
        size = PAGE_HEADER;
      }
      page.push(c);
      size += grow;
    }
    await write();
    return out;
  }

  private async emit(pages: Buffer): Promise<void> {
    this.nextPgid += pages.length / this.pageSize;
    this.pending.push(pages);
    this.pendingBytes += pages.length;
    if (this.pendingBytes >= FLUSH_BYTES) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const data = Buffer.concat(this.pending, this.pendingBytes);
    await this.file.write(data, 0, data.length, this.pendingAt);
    this.pendingAt += data.length;
    this.pending = [];
    this.pendingBytes = 0;
  }
}

/** The bytes of a leaf page (whole pages, or exactly `size` for an inline one: pageSize 0). */
function leafPage(entries: BoltEntry[], size: number, pageSize: number, pgid = 0): Buffer {
  const pages = pageSize > 0 ? Math.ceil(size / pageSize) : 0;
  const b = Buffer.alloc(pageSize > 0 ? pages * pageSize : size);
  writePageHeader(b, { id: BigInt(pgid), flags: LEAF_PAGE, count: entries.length, overflow: Math.max(0, pages - 1) });
  let data = PAGE_HEADER + entries.length * ELEMENT_SIZE;
  entries.forEach((e, i) => {
    const at = PAGE_HEADER + i * ELEMENT_SIZE;
    b.writeUInt32LE(e.flags ?? 0, at);
    b.writeUInt32LE(data - at, at + 4);
    b.writeUInt32LE(e.key.length, at + 8);
    b.writeUInt32LE(e.value.length, at + 12);
    data += e.key.copy(b, data);
    data += e.value.copy(b, data);
  });
  return b;
}

function branchPage(children: ChildRef[], size: number, pageSize: number, pgid: number): Buffer {
  const pages = Math.ceil(size / pageSize);
  const b = Buffer.alloc(pages * pageSize);
  writePageHeader(b, { id: BigInt(pgid), flags: BRANCH_PAGE, count: children.length, overflow: pages - 1 });
  let data = PAGE_HEADER + children.length * ELEMENT_SIZE;
  children.forEach((c, i) => {
    const at = PAGE_HEADER + i * ELEMENT_SIZE;
    b.writeUInt32LE(data - at, at);
    b.writeUInt32LE(c.key.length, at + 4);
    b.writeBigUInt64LE(BigInt(c.pgid), at + 8);
    data += c.key.copy(b, data);
  });
  return b;
}
