// A minimal GGUF writer for test fixtures (v2 or v3, little-endian), written from the format
// description (github.com/ggml-org/ggml docs/gguf.md) independently of src/checkpoint/gguf.ts.
// Metadata values carry their GGUF type explicitly; tensors are F32, F16 or raw bytes of any type.

export const T = { U8: 0, I8: 1, U16: 2, I16: 3, U32: 4, I32: 5, F32: 6, BOOL: 7, STR: 8, ARR: 9, U64: 10, I64: 11, F64: 12 } as const;

export type MetaEntry =
  | [key: string, type: Exclude<(typeof T)[keyof typeof T], 9>, value: number | bigint | boolean | string]
  | [key: string, type: 9, value: { type: number; values: Array<number | bigint | boolean | string> }];

export interface TensorEntry {
  name: string;
  /** GGUF dimensions, fastest-varying first. */
  ne: number[];
  /** ggml type id: 0 F32, 1 F16, 8 Q8_0, 30 BF16 ... */
  type: number;
  /** Raw little-endian bytes of the tensor data. */
  bytes: Uint8Array;
  /**
   * Data offset (relative to the data section, a multiple of the alignment) for a tensor placed far
   * from the others (encodeGgufParts only): its bytes are returned apart, to be written at that place.
   */
  offset?: number;
}

class Out {
  chunks: number[] = [];
  u8(v: number) { this.chunks.push(v & 0xff); }
  bytes(b: Uint8Array) { for (const x of b) this.chunks.push(x); }
  fixed(n: number, write: (v: DataView) => void) {
    const b = new Uint8Array(n);
    write(new DataView(b.buffer));
    this.bytes(b);
  }
  u32(v: number) { this.fixed(4, (d) => d.setUint32(0, v, true)); }
  u64(v: number | bigint) { this.fixed(8, (d) => d.setBigUint64(0, BigInt(v), true)); }
  str(s: string) { const b = new TextEncoder().encode(s); this.u64(b.length); this.bytes(b); }
  value(type: number, v: number | bigint | boolean | string) {
    switch (type) {
      case T.U8: return this.u8(v as number);
      case T.I8: return this.fixed(1, (d) => d.setInt8(0, v as number));
      case T.U16: return this.fixed(2, (d) => d.setUint16(0, v as number, true));
      case T.I16: return this.fixed(2, (d) => d.setInt16(0, v as number, true));
      case T.U32: return this.u32(v as number);
      case T.I32: return this.fixed(4, (d) => d.setInt32(0, v as number, true));
      case T.F32: return this.fixed(4, (d) => d.setFloat32(0, v as number, true));
      case T.BOOL: return this.u8(v ? 1 : 0);
      case T.STR: return this.str(v as string);
      case T.U64: return this.u64(v as number | bigint);
      case T.I64: return this.fixed(8, (d) => d.setBigInt64(0, BigInt(v as number), true));
      case T.F64: return this.fixed(8, (d) => d.setFloat64(0, v as number, true));
      default: throw new Error(`gguf-writer: bad type ${type}`);
    }
  }
  pad(alignment: number) { while (this.chunks.length % alignment !== 0) this.u8(0); }
}

type GgufOpts = { version?: 2 | 3; metadata: MetaEntry[]; tensors: TensorEntry[]; alignment?: number };

/** Encodes a GGUF file. `alignment` is written as general.alignment only when given. */
export function encodeGguf(opts: GgufOpts): Uint8Array {
  const { head, far } = encodeGgufParts(opts);
  if (far.length > 0) throw new Error('gguf-writer: tensors with an explicit offset need encodeGgufParts');
  return head;
}

/**
 * Encodes a GGUF file in parts, for sparse files: `head` (header and the data of tensors without
 * an explicit offset, laid end to end) goes at byte 0; each of `far` at its absolute `position`
 * (data start + the tensor's offset), anywhere after the head.
 */
export function encodeGgufParts(opts: GgufOpts): { head: Uint8Array; far: Array<{ position: number; bytes: Uint8Array }> } {
  const alignment = opts.alignment ?? 32;
  const metadata: MetaEntry[] = opts.alignment !== undefined ? [...opts.metadata, ['general.alignment', T.U32, alignment]] : opts.metadata;
  const o = new Out();
  o.bytes(new TextEncoder().encode('GGUF'));
  o.u32(opts.version ?? 3);
  o.u64(opts.tensors.length);
  o.u64(metadata.length);
  for (const [key, type, value] of metadata) {
    o.str(key);
    o.u32(type);
    if (type === T.ARR) {
      const arr = value as { type: number; values: Array<number | bigint | boolean | string> };
      o.u32(arr.type);
      o.u64(arr.values.length);
      for (const v of arr.values) o.value(arr.type, v);
    } else {
      o.value(type, value as number | bigint | boolean | string);
    }
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of opts.tensors) {
    if (t.offset !== undefined) {
      offsets.push(t.offset);
      continue;
    }
    offsets.push(offset);
    offset += Math.ceil(t.bytes.length / alignment) * alignment;
  }
  opts.tensors.forEach((t, i) => {
    o.str(t.name);
    o.u32(t.ne.length);
    for (const n of t.ne) o.u64(n);
    o.u32(t.type);
    o.u64(offsets[i]!);
  });
  o.pad(alignment);
  const dataStart = o.chunks.length;
  for (const t of opts.tensors) {
    if (t.offset !== undefined) continue;
    o.bytes(t.bytes);
    o.pad(alignment);
  }
  const far = opts.tensors.flatMap((t, i) => (t.offset === undefined ? [] : [{ position: dataStart + offsets[i]!, bytes: t.bytes }]));
  return { head: Uint8Array.from(o.chunks), far };
}

export function f32Bytes(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
}

/** float16 bits of a value exactly representable as a normal float16 (or 0); throws otherwise. */
export function f16Bits(x: number): number {
  if (x === 0) return Object.is(x, -0) ? 0x8000 : 0;
  const sign = x < 0 ? 0x8000 : 0;
  const a = Math.abs(x);
  const e = Math.floor(Math.log2(a));
  const m = a / 2 ** e - 1;
  const frac = m * 1024;
  if (e < -14 || e > 15 || !Number.isInteger(frac)) throw new Error(`f16Bits: ${x} is not an exact normal float16`);
  return sign | ((e + 15) << 10) | frac;
}

export function f16Bytes(values: Float32Array): Uint8Array {
  const out = new Uint16Array(values.length);
  values.forEach((v, i) => {
    out[i] = f16Bits(v);
  });
  return new Uint8Array(out.buffer);
}
