// Protobuf <-> JSON as etcd's gateway does it, by reflection over our protos.
//
// Output: proto field names as written (create_revision, ID, TTL, dbSize),
// declaration order, int64/uint64 as decimal strings, bytes as base64, enums by
// name, zero scalars and empty lists omitted, a set message printed even when
// empty ("header":{}). Strings escaped as Go does (<, >, & too).
//
// Input: proto or camelCase names; int64 as a JSON number or a numeric string
// (integers beyond 2^53 kept exact); enums by name or number; base64 bytes;
// unknown fields and nulls ignored. Anything of the wrong type is refused with
// INVALID_ARGUMENT and a Go-style message, as etcd's gateway refuses it.
import * as protobuf from 'protobufjs';
import { ErrTooManyOps, invalidArgument } from '../errors';
import { maxMessageDepth } from '../proto';

const INT64 = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);
const INT32 = new Set(['int32', 'uint32', 'sint32', 'fixed32', 'sfixed32']);

// ---------------------------------------------------------------- parsing

const GO_MAX_JSON_DEPTH = 10_000;

/**
 * JSON.parse, except that integers of 16 digits or more (outside strings) come
 * back as strings, so int64 ids survive exactly.
 */
export function parseJson(text: string): unknown {
  let out = '';
  let last = 0;
  let inString = false;
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped char
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) {
      inString = true;
      continue;
    }
    if (c === 0x7b || c === 0x5b) {
      // Go's encoding/json refuses nesting past 10,000 levels; so does etcd's gateway.
      if (++depth > GO_MAX_JSON_DEPTH) throw invalidArgument(`invalid character '${text[i]}' exceeded max depth`);
      continue;
    }
    if (c === 0x7d || c === 0x5d) {
      depth--;
      continue;
    }
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      let j = i + 1;
      while (j < text.length && /[0-9.eE+-]/.test(text[j])) j++;
      const token = text.slice(i, j);
      if (/^-?\d{16,}$/.test(token)) {
        out += text.slice(last, i) + `"${token}"`;
        last = j;
      }
      i = j - 1;
    }
  }
  return JSON.parse(last === 0 ? text : out + text.slice(last));
}

/** Go's wording for a JSON syntax error (encoding/json's scanner), found by re-scanning the text. */
export function syntaxError(text: string): Error {
  return invalidArgument(goSyntaxMessage(text));
}

/** Go's json.Decoder's words for a syntax error (etcd's gateway decodes with one: a cut-short body is "unexpected EOF"). */
function goSyntaxMessage(text: string): string {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\r\n'.includes(text[i])) i++;
  };
  const bad = (context: string): never => {
    if (i >= text.length) throw new Error('unexpected EOF');
    const c = text[i];
    throw new Error(`invalid character ${c === "'" ? "'\\''" : `'${c}'`} ${context}`);
  };
  const literal = (word: string) => {
    for (const ch of word) {
      if (text[i] !== ch) bad(`in literal ${word} (expecting '${ch}')`);
      i++;
    }
  };
  const string = () => {
    i++; // opening quote
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    if (i >= text.length) bad('');
    i++;
  };
  const number = () => {
    if (text[i] === '-') i++;
    if (!/[0-9]/.test(text[i] ?? '')) bad('in numeric literal');
    while (/[0-9.eE+-]/.test(text[i] ?? '')) i++;
  };
  const scalar = (c: string | undefined): void => {
    if (c === '"') return string();
    if (c === 't') return literal('true');
    if (c === 'f') return literal('false');
    if (c === 'n') return literal('null');
    if (c === '-' || /[0-9]/.test(c ?? '')) return number();
    bad('looking for beginning of value');
  };
  const key = (): void => {
    ws();
    if (text[i] !== '"') bad('looking for beginning of object key string');
    string();
    ws();
    if (text[i] !== ':') bad('after object key');
    i++;
  };
  /** One value, nested objects and arrays kept on a stack (deep input cannot overflow the call stack). */
  const value = (): void => {
    const open: string[] = [];
    let expectValue = true;
    for (;;) {
      if (expectValue) {
        ws();
        const c = text[i];
        if (c === '{' || c === '[') {
          i++;
          ws();
          if (text[i] === (c === '{' ? '}' : ']')) {
            i++;
            expectValue = false;
          } else {
            open.push(c);
            if (c === '{') key();
            continue;
          }
        } else {
          scalar(c);
          expectValue = false;
        }
      }
      if (open.length === 0) return;
      ws();
      const inObject = open[open.length - 1] === '{';
      if (text[i] === ',') {
        i++;
        if (inObject) key();
        expectValue = true;
        continue;
      }
      if (text[i] === (inObject ? '}' : ']')) {
        i++;
        open.pop();
        continue;
      }
      bad(inObject ? 'after object key:value pair' : 'after array element');
    }
  };
  try {
    value();
    ws();
    if (i < text.length) bad('after top-level value');
    return 'unexpected EOF';
  } catch (err) {
    return (err as Error).message;
  }
}

function kindOf(v: unknown): string {
  if (Array.isArray(v)) return 'array';
  if (v === null) return 'null';
  return typeof v === 'object' ? 'object' : typeof v;
}

function mismatch(v: unknown, goType: string): Error {
  return invalidArgument(`json: cannot unmarshal ${kindOf(v)} into Go value of type ${goType}`);
}

function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function toInt64(v: unknown, type: string): string {
  const unsigned = type.startsWith('u') || type === 'fixed64';
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw invalidArgument(`json: cannot unmarshal number ${v} into Go value of type ${unsigned ? 'uint64' : 'int64'}`);
    return String(v);
  }
  if (typeof v === 'string') {
    if (!/^-?\d+$/.test(v)) throw invalidArgument(`invalid character '${v[0] ?? '"'}' looking for beginning of value`);
    const n = BigInt(v);
    const min = unsigned ? 0n : -(2n ** 63n);
    const max = unsigned ? 2n ** 64n - 1n : 2n ** 63n - 1n;
    if (n < min || n > max) throw invalidArgument(`json: cannot unmarshal number ${v} into Go value of type ${unsigned ? 'uint64' : 'int64'}`);
    return n.toString();
  }
  throw mismatch(v, unsigned ? 'uint64' : 'int64');
}

function toBytes(v: unknown): Buffer {
  if (typeof v !== 'string') throw mismatch(v, '[]uint8');
  const bad = /[^A-Za-z0-9+/=_-]/.exec(v);
  if (bad) throw invalidArgument(`illegal base64 data at input byte ${bad.index}`);
  return Buffer.from(v, v.includes('-') || v.includes('_') ? 'base64url' : 'base64');
}

function scalarDefault(field: protobuf.Field): unknown {
  if (field.resolvedType instanceof protobuf.Enum) return 0;
  if (field.resolvedType instanceof protobuf.Type) return null;
  if (INT64.has(field.type)) return '0';
  switch (field.type) {
    case 'bool':
      return false;
    case 'string':
      return '';
    case 'bytes':
      return Buffer.alloc(0);
    default:
      return 0;
  }
}

function convert(field: protobuf.Field, v: unknown, depth: number): unknown {
  const rt = field.resolvedType;
  if (rt instanceof protobuf.Type) {
    if (typeof v !== 'object' || Array.isArray(v)) throw mismatch(v, rt.name);
    return fromJson(rt, v, depth + 1);
  }
  if (rt instanceof protobuf.Enum) {
    if (typeof v === 'string') {
      // own names only: "constructor" or "toString" are not enum values
      if (!Object.hasOwn(rt.values, v)) throw invalidArgument(`unknown value "${v}" for enum ${rt.fullName.replace(/^\./, '').replace(/\.([^.]+)$/, '_$1')}`);
      return rt.values[v];
    }
    if (typeof v === 'number' && Number.isInteger(v)) return v;
    throw mismatch(v, rt.name);
  }
  if (INT64.has(field.type)) return toInt64(v, field.type);
  if (INT32.has(field.type)) return Number(toInt64(v, field.type.replace('32', '64')));
  switch (field.type) {
    case 'bool':
      if (typeof v !== 'boolean') throw mismatch(v, 'bool');
      return v;
    case 'string':
      if (typeof v !== 'string') throw mismatch(v, 'string');
      return v;
    case 'bytes':
      return toBytes(v);
    case 'double':
    case 'float':
      if (typeof v !== 'number') throw mismatch(v, 'float64');
      return v;
    default:
      throw invalidArgument(`unsupported field type ${field.type}`);
  }
}

/**
 * A request object from parsed JSON, shaped exactly as the gRPC path decodes
 * requests (see LOADER_OPTIONS): every field present, int64 as strings, enums
 * as numbers, bytes as Buffers, set oneofs named by their discriminator.
 */
export function fromJson(type: protobuf.Type, value: unknown, depth = 0): Record<string, unknown> {
  // Only txns nest (TxnRequest in RequestOp): this deep, one is over any op budget (txn-nesting.ts).
  if (depth > maxMessageDepth()) throw ErrTooManyOps;
  if (value === null || value === undefined) value = {};
  if (typeof value !== 'object' || Array.isArray(value)) throw mismatch(value, 'map[string]json.RawMessage');
  const input = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const field of type.fieldsArray) {
    let v = input[field.name];
    if (v === undefined) v = input[camel(field.name)];
    const inOneof = field.partOf !== null && field.partOf !== undefined;
    if (v === undefined || v === null) {
      if (field.repeated) out[field.name] = [];
      else if (!inOneof) out[field.name] = scalarDefault(field);
      continue;
    }
    if (field.repeated) {
      if (!Array.isArray(v)) throw mismatch(v, `[]${field.type}`);
      out[field.name] = v.filter((x) => x !== null).map((x) => convert(field, x, depth));
    } else {
      out[field.name] = convert(field, v, depth);
      if (inOneof) out[field.partOf!.name] = field.name;
    }
  }
  return out;
}

// ---------------------------------------------------------------- printing

function isZero(field: protobuf.Field, v: unknown): boolean {
  if (v === null || v === undefined) return true;
  if (field.resolvedType instanceof protobuf.Type) return false;
  switch (typeof v) {
    case 'number':
      return v === 0;
    case 'string':
      return v === '' || (v === '0' && (INT64.has(field.type) || INT32.has(field.type)));
    case 'boolean':
      return !v;
    case 'bigint':
      return v === 0n;
    case 'object':
      if (Buffer.isBuffer(v) || v instanceof Uint8Array) return v.length === 0;
      return (v as { isZero?: () => boolean }).isZero?.() ?? false;
    default:
      return false;
  }
}

const GO_ESCAPES: Record<string, string> = { '<': '\\u003c', '>': '\\u003e', '&': '\\u0026', '\u2028': '\\u2028', '\u2029': '\\u2029' };

function goString(s: string): string {
  return JSON.stringify(s).replace(/[<>&\u2028\u2029]/g, (c) => GO_ESCAPES[c]);
}

function scalarJson(field: protobuf.Field, v: unknown): string {
  const rt = field.resolvedType;
  if (rt instanceof protobuf.Type) return toJson(rt, v as Record<string, unknown>);
  if (rt instanceof protobuf.Enum) {
    const name = rt.valuesById[v as number];
    return name === undefined ? String(v) : `"${name}"`;
  }
  if (INT64.has(field.type)) return `"${String(v)}"`;
  switch (field.type) {
    case 'bytes':
      return `"${Buffer.from(v as Uint8Array).toString('base64')}"`;
    case 'string':
      return goString(v as string);
    case 'bool':
      return v ? 'true' : 'false';
    default:
      return String(v);
  }
}

/** One field as `"name":value`, or '' when etcd would omit it. */
export function fieldJson(field: protobuf.Field, v: unknown): string {
  if (field.repeated) {
    const list = v as unknown[] | undefined | null;
    if (!list || list.length === 0) return '';
    return `"${field.name}":[${list.map((x) => scalarJson(field, x)).join(',')}]`;
  }
  if (isZero(field, v)) return '';
  return `"${field.name}":${scalarJson(field, v)}`;
}

export function toJson(type: protobuf.Type, obj: Record<string, unknown>): string {
  const parts: string[] = [];
  for (const field of type.fieldsArray) {
    const f = fieldJson(field, obj[field.name]);
    if (f) parts.push(f);
  }
  return `{${parts.join(',')}}`;
}
