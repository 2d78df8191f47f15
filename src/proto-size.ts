// The encoded size of a message as etcd (Go) computes it: zero scalars and
// empty lists are not on the wire. Used where a size decides behaviour
// (fragmenting watch answers, --max-request-bytes on the gateway), so that the
// boundaries fall where etcd's do.
import * as protobuf from 'protobufjs';

const VARINT = new Set(['int32', 'int64', 'uint32', 'uint64', 'sint32', 'sint64', 'bool', 'enum']);

function varintSize(v: bigint): number {
  if (v < 0n) return 10;
  let n = 1;
  while (v >= 0x80n) {
    v >>= 7n;
    n++;
  }
  return n;
}

function tagSize(id: number): number {
  return varintSize(BigInt(id << 3));
}

function isZero(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === '' || v === '0' || v === 0n) return true;
  if (v instanceof Uint8Array) return v.length === 0;
  if (typeof v === 'object' && typeof (v as { isZero?: () => boolean }).isZero === 'function') return (v as { isZero: () => boolean }).isZero();
  return false;
}

function scalarSize(field: protobuf.Field, v: unknown): number {
  if (field.resolvedType instanceof protobuf.Type) {
    const n = messageSize(field.resolvedType, v as Record<string, unknown>);
    return varintSize(BigInt(n)) + n;
  }
  const type = field.resolvedType instanceof protobuf.Enum ? 'enum' : field.type;
  if (type === 'bytes' || type === 'string') {
    const n = typeof v === 'string' ? Buffer.byteLength(v) : (v as Uint8Array).length;
    return varintSize(BigInt(n)) + n;
  }
  if (VARINT.has(type)) {
    const big = typeof v === 'boolean' ? (v ? 1n : 0n) : BigInt(String(v));
    return type === 'sint32' || type === 'sint64' ? varintSize(big < 0n ? -2n * big - 1n : 2n * big) : varintSize(big);
  }
  return type === 'double' || type.includes('fixed64') ? 8 : 4;
}

export function messageSize(type: protobuf.Type, obj: Record<string, unknown>): number {
  let size = 0;
  for (const field of type.fieldsArray) {
    const v = obj[field.name];
    if (field.repeated) {
      for (const x of (v as unknown[] | undefined) ?? []) size += tagSize(field.id) + scalarSize(field, x);
    } else if (v !== null && v !== undefined && (field.resolvedType instanceof protobuf.Type || !isZero(v))) {
      size += tagSize(field.id) + scalarSize(field, v);
    }
  }
  return size;
}
