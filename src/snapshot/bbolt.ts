// The bbolt file format, as etcd's backend writes it (bbolt's documented
// layout, little-endian, written here from that description):
//
//   page      16-byte header {id u64, flags u16, count u16, overflow u32},
//             then `count` elements, then their keys and values. A page
//             bigger than pageSize spans `overflow` more pages.
//   meta      pages 0 and 1: {magic, version, pageSize, flags, root bucket
//             {root pgid, sequence}, freelist pgid, pgid (pages in the file),
//             txid, checksum (FNV-1a 64 of the fields before it)}. The valid
//             one with the higher txid is the current one.
//   leaf      elements {flags u32, pos u32, ksize u32, vsize u32}; pos counts
//             from the element itself. flags 1 = the value is a bucket.
//   branch    elements {pos u32, ksize u32, pgid u64}: the first key of each
//             child page.
//   bucket    value {root pgid u64, sequence u64}; root 0 = an inline bucket,
//             whose leaf page follows in the value itself.
//
// etcd 3.4 writes no freelist page (freelist pgid = all ones): bbolt rebuilds
// the free list by walking the tree when it opens the file for writing.

export const PAGE_HEADER = 16;
export const ELEMENT_SIZE = 16;
export const BUCKET_HEADER = 16;
export const META_SIZE = 64;

export const BRANCH_PAGE = 0x01;
export const LEAF_PAGE = 0x02;
export const META_PAGE = 0x04;
export const FREELIST_PAGE = 0x10;

/** A leaf element whose value is a bucket. */
export const BUCKET_LEAF = 0x01;

export const MAGIC = 0xed0cdaed;
export const VERSION = 2;
export const DEFAULT_PAGE_SIZE = 4096;
export const NO_FREELIST = 0xffffffffffffffffn;

export interface Meta {
  pageSize: number;
  flags: number;
  root: bigint;
  sequence: bigint;
  freelist: bigint;
  /** The number of pages the file holds (the high-water mark). */
  pgid: bigint;
  txid: bigint;
}

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const U64 = 0xffffffffffffffffn;

/** FNV-1a, 64 bits: bbolt's meta checksum. */
export function fnv64a(bytes: Uint8Array): bigint {
  let h = FNV_OFFSET;
  for (const b of bytes) h = ((h ^ BigInt(b)) * FNV_PRIME) & U64;
  return h;
}

/** The 64 bytes of a meta, checksum included. */
export function encodeMeta(m: Meta): Buffer {
  const b = Buffer.alloc(META_SIZE);
  b.writeUInt32LE(MAGIC, 0);
  b.writeUInt32LE(VERSION, 4);
  b.writeUInt32LE(m.pageSize, 8);
  b.writeUInt32LE(m.flags, 12);
  b.writeBigUInt64LE(m.root, 16);
  b.writeBigUInt64LE(m.sequence, 24);
  b.writeBigUInt64LE(m.freelist, 32);
  b.writeBigUInt64LE(m.pgid, 40);
  b.writeBigUInt64LE(m.txid, 48);
  b.writeBigUInt64LE(fnv64a(b.subarray(0, 56)), 56);
  return b;
}

/** A meta page's meta, or why it is not a valid one. */
export function decodeMeta(page: Buffer): Meta | string {
  if (page.length < PAGE_HEADER + META_SIZE) return 'the file is shorter than its meta pages';
  if ((page.readUInt16LE(8) & META_PAGE) === 0) return 'a meta page is not marked as one';
  const b = page.subarray(PAGE_HEADER, PAGE_HEADER + META_SIZE);
  if (b.readUInt32LE(0) !== MAGIC) return 'no bbolt magic number (not an etcd snapshot or backend file)';
  if (b.readUInt32LE(4) !== VERSION) return `bbolt version ${b.readUInt32LE(4)} (only version ${VERSION} is known)`;
  if (b.readBigUInt64LE(56) !== fnv64a(b.subarray(0, 56))) return 'the meta checksum does not match';
  return {
    pageSize: b.readUInt32LE(8),
    flags: b.readUInt32LE(12),
    root: b.readBigUInt64LE(16),
    sequence: b.readBigUInt64LE(24),
    freelist: b.readBigUInt64LE(32),
    pgid: b.readBigUInt64LE(40),
    txid: b.readBigUInt64LE(48),
  };
}

export interface PageHeader {
  id: bigint;
  flags: number;
  count: number;
  overflow: number;
}

export function readPageHeader(b: Buffer, at = 0): PageHeader {
  return { id: b.readBigUInt64LE(at), flags: b.readUInt16LE(at + 8), count: b.readUInt16LE(at + 10), overflow: b.readUInt32LE(at + 12) };
}

export function writePageHeader(b: Buffer, h: PageHeader, at = 0): void {
  b.writeBigUInt64LE(h.id, at);
  b.writeUInt16LE(h.flags, at + 8);
  b.writeUInt16LE(h.count, at + 10);
  b.writeUInt32LE(h.overflow, at + 12);
}
