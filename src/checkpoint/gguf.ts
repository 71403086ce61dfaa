// GGUF checkpoints (llama.cpp's single-file format), llama family: one .gguf file is one
// checkpoint, weights and tokenizer together.
//
// File layout (GGUF v2 and v3, little-endian; v1 with 32-bit counts is refused):
//   "GGUF" magic, uint32 version, uint64 tensor count, uint64 metadata count,
//   metadata: (string key, uint32 value type, value)*,
//   tensor infos: (string name, uint32 n_dims, uint64 ne[n_dims], uint32 ggml type, uint64 offset)*,
//   padding to `general.alignment` (default 32), tensor data (offsets relative to its start).
// Strings are uint64 length + UTF-8 bytes. `ne` lists dimensions fastest-varying first: a
// matrix with ne = [in, out] is stored row-major as [out][in] (PyTorch's nn.Linear weight).
//
// Llama tensors map to the contract's names (src/model/config.ts, weights as [in, out]):
//   token_embd.weight -> tok_embeddings [vocab, d]       output.weight -> output [vocab, d] (absent: tied)
//   blk.i.attn_norm.weight -> h.i.attn_norm              blk.i.ffn_norm.weight -> h.i.ffn_norm
//   blk.i.attn_q/k/v/output.weight -> h.i.attn.wq/wk/wv/wo (transposed)
//   blk.i.ffn_gate/up/down.weight -> h.i.mlp.gate/up/down (transposed)
//   output_norm.weight -> norm
// attn_q and attn_k rows are stored in Meta's interleaved RoPE order (llama.cpp's
// convert_hf_to_gguf.py LlamaModel.permute); they are permuted back to Hugging Face's
// rotate_half order (unpermuteRope), so the weights are exactly those of the HF checkpoint.
//
// Reading (readGguf, loadGgufCheckpoint) never holds the whole file: the header is read in growing
// prefixes, then each tensor at its offset into a buffer of its size and decoded to float32, so
// files over 2 GiB read and memory is the float32 weights plus one tensor's raw bytes.
import { promises as fs } from 'node:fs';
import { llamaDims, type ModelConfig } from '../model/config.ts';
import { weightShapes, type NamedWeights, type WeightTensor } from '../model/weights.ts';
import { f16Table, f16ToF32, openForReading, readExactly } from './safetensors.ts';
import { tokenizerHash, weightsHash } from './hash.ts';
import { checkFiniteTensors } from './finite.ts';
import type { CheckpointManifest, LoadedCheckpoint } from './native.ts';
import { ggufTokenizer } from './gguf-tokenizer.ts';
import { isTransposedLlamaWeight, transpose2d } from './hf-llama.ts';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian uint32
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value types (gguf.md). */
export const GgufValueType = {
  UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7,
  STRING: 8, ARRAY: 9, UINT64: 10, INT64: 11, FLOAT64: 12,
} as const;

/** ggml tensor types this reader decodes (to float32). Others are refused by name. */
export const GgmlType = { F32: 0, F16: 1, Q8_0: 8, BF16: 30 } as const;

const GGML_TYPE_NAMES: Record<number, string> = {
  0: 'F32', 1: 'F16', 2: 'Q4_0', 3: 'Q4_1', 6: 'Q5_0', 7: 'Q5_1', 8: 'Q8_0', 9: 'Q8_1', 10: 'Q2_K', 11: 'Q3_K',
  12: 'Q4_K', 13: 'Q5_K', 14: 'Q6_K', 15: 'Q8_K', 16: 'IQ2_XXS', 17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S',
  20: 'IQ4_NL', 21: 'IQ3_S', 22: 'IQ2_S', 23: 'IQ4_XS', 24: 'I8', 25: 'I16', 26: 'I32', 27: 'I64', 28: 'F64',
  29: 'IQ1_M', 30: 'BF16',
};

/** A metadata value: integers as number (bigint when a 64-bit value exceeds 2^53), arrays as JS arrays. */
export type GgufValue = number | bigint | boolean | string | GgufValue[];

export interface GgufTensorInfo {
  name: string;
  /** Dimensions as GGUF lists them, fastest-varying first (ne[0] is the row length). */
  ne: number[];
  /** ggml type id (GgmlType). */
  type: number;
  /** Byte offset of the data relative to dataStart. */
  offset: number;
}

export interface GgufHeader {
  version: number;
  metadata: Map<string, GgufValue>;
  /** Each metadata key's value type (GgufValueType; arrays: [ARRAY, element type]). */
  metadataTypes: Map<string, number | [number, number]>;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** Byte offset in the file where tensor data starts. */
  dataStart: number;
}

/** Human name of a ggml type id ('Q4_K', 'type 99' when unknown). */
export function ggmlTypeName(type: number): string {
  return GGML_TYPE_NAMES[type] ?? `type ${type}`;
}

/** Thrown by parseGgufHeader when the header runs past the prefix it was given but not past the file. */
class NeedMoreBytes extends Error {
  constructor(readonly needed: number) {
    super(`the GGUF header needs at least ${needed} bytes of the file`);
  }
}

/** Smallest encoded size of one value of each metadata type (a string is at least its uint64 length). */
const MIN_VALUE_BYTES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 8: 8, 10: 8, 11: 8, 12: 8 };
/** Smallest metadata entry: key length (8) + value type (4) + a 1-byte value. */
const MIN_KV_BYTES = 13;
/** Smallest tensor info: name length (8) + n_dims (4) + one dimension (8) + type (4) + offset (8). */
const MIN_TENSOR_INFO_BYTES = 32;

class Reader {
  pos = 0;
  private readonly view: DataView;
  private readonly utf8 = new TextDecoder('utf-8', { fatal: true });
  /** `bytes` is the file or a prefix of it; `total` is the file's length. */
  constructor(private readonly bytes: Uint8Array, private readonly file: string, readonly total: number) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  /** Bytes of the file after the current position. */
  remaining(): number {
    return this.total - this.pos;
  }
  private need(n: number, what: string): void {
    if (this.pos + n > this.total) {
      throw new Error(`${this.file}: truncated GGUF file: ${what} at byte ${this.pos} needs ${n} bytes, the file has ${this.total}`);
    }
    if (this.pos + n > this.bytes.length) throw new NeedMoreBytes(this.pos + n);
  }
  u8(): number { this.need(1, 'uint8'); return this.view.getUint8(this.pos++); }
  i8(): number { this.need(1, 'int8'); return this.view.getInt8(this.pos++); }
  u16(): number { this.need(2, 'uint16'); const v = this.view.getUint16(this.pos, true); this.pos += 2; return v; }
  i16(): number { this.need(2, 'int16'); const v = this.view.getInt16(this.pos, true); this.pos += 2; return v; }
  u32(): number { this.need(4, 'uint32'); const v = this.view.getUint32(this.pos, true); this.pos += 4; return v; }
  i32(): number { this.need(4, 'int32'); const v = this.view.getInt32(this.pos, true); this.pos += 4; return v; }
  f32(): number { this.need(4, 'float32'); const v = this.view.getFloat32(this.pos, true); this.pos += 4; return v; }
  f64(): number { this.need(8, 'float64'); const v = this.view.getFloat64(this.pos, true); this.pos += 8; return v; }
  u64(): number | bigint { this.need(8, 'uint64'); const v = this.view.getBigUint64(this.pos, true); this.pos += 8; return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v; }
  i64(): number | bigint {
    this.need(8, 'int64');
    const v = this.view.getBigInt64(this.pos, true);
    this.pos += 8;
    return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
  }
  /** A uint64 count or offset that must fit a JS number. */
  size(what: string): number {
    const at = this.pos;
    const v = this.u64();
    if (typeof v !== 'number') throw new Error(`${this.file}: ${what} at byte ${at} is ${v}, too large`);
    return v;
  }
  str(what: string): string {
    const n = this.size(`${what} length`);
    this.need(n, what);
    let s: string;
    try {
      s = this.utf8.decode(this.bytes.subarray(this.pos, this.pos + n));
    } catch {
      throw new Error(`${this.file}: ${what} at byte ${this.pos} is not valid UTF-8`);
    }
    this.pos += n;
    return s;
  }
}

function readValue(r: Reader, type: number, key: string, file: string): GgufValue {
  switch (type) {
    case GgufValueType.UINT8: return r.u8();
    case GgufValueType.INT8: return r.i8();
    case GgufValueType.UINT16: return r.u16();
    case GgufValueType.INT16: return r.i16();
    case GgufValueType.UINT32: return r.u32();
    case GgufValueType.INT32: return r.i32();
    case GgufValueType.FLOAT32: return r.f32();
    case GgufValueType.BOOL: {
      const b = r.u8();
      if (b > 1) throw new Error(`${file}: metadata ${key}: bool byte is ${b}, not 0 or 1`);
      return b === 1;
    }
    case GgufValueType.STRING: return r.str(`metadata ${key} string`);
    case GgufValueType.UINT64: return r.u64();
    case GgufValueType.INT64: return r.i64();
    case GgufValueType.FLOAT64: return r.f64();
    case GgufValueType.ARRAY: {
      const elementType = r.u32();
      if (elementType === GgufValueType.ARRAY) throw new Error(`${file}: metadata ${key}: nested arrays are not supported`);
      const minBytes = MIN_VALUE_BYTES[elementType];
      if (minBytes === undefined) throw new Error(`${file}: metadata ${key}: unknown array element type ${elementType}`);
      const n = r.size(`metadata ${key} array length`);
      // A corrupt length must not allocate: every element takes at least minBytes of the file.
      if (n * minBytes > r.remaining()) {
        throw new Error(`${file}: metadata ${key}: array length ${n} needs at least ${n * minBytes} bytes, only ${r.remaining()} remain in the file (corrupt header)`);
      }
      const out: GgufValue[] = new Array(n);
      for (let i = 0; i < n; i++) out[i] = readValue(r, elementType, `${key}[${i}]`, file);
      return out;
    }
    default:
      throw new Error(`${file}: metadata ${key}: unknown value type ${type}`);
  }
}

/**
 * Parses a GGUF file's header: metadata, tensor infos and where tensor data starts. `bytes` is the
 * whole file, or a prefix holding the header with `fileSize` the file's length (default
 * bytes.length). Throws naming `file` and the byte offset or key for a bad magic, an unsupported
 * version (only 2 and 3), truncation, a bad value, or a count or length larger than the rest of the
 * file could hold (checked before anything is allocated). A prefix too short for the header throws
 * NeedMoreBytes (readGguf reads more of the file and retries).
 */
export function parseGgufHeader(bytes: Uint8Array, file: string, fileSize: number = bytes.length): GgufHeader {
  const r = new Reader(bytes, file, fileSize);
  const magic = r.u32();
  if (magic !== GGUF_MAGIC) throw new Error(`${file}: not a GGUF file (magic 0x${magic.toString(16)}, expected "GGUF")`);
  const version = r.u32();
  if (version !== 2 && version !== 3) throw new Error(`${file}: GGUF version ${version} is not supported (2 and 3 are)`);
  const tensorCount = r.size('tensor count');
  const kvCount = r.size('metadata count');
  if (kvCount * MIN_KV_BYTES > r.remaining()) {
    throw new Error(`${file}: metadata count ${kvCount} needs at least ${kvCount * MIN_KV_BYTES} bytes, only ${r.remaining()} remain in the file (corrupt header)`);
  }
  const metadata = new Map<string, GgufValue>();
  const metadataTypes = new Map<string, number | [number, number]>();
  for (let i = 0; i < kvCount; i++) {
    const key = r.str(`metadata key ${i}`);
    const type = r.u32();
    if (type === GgufValueType.ARRAY) {
      const save = r.pos;
      const elementType = r.u32();
      r.pos = save;
      metadataTypes.set(key, [type, elementType]);
    } else {
      metadataTypes.set(key, type);
    }
    if (metadata.has(key)) throw new Error(`${file}: metadata key ${key} appears twice`);
    metadata.set(key, readValue(r, type, key, file));
  }
  const alignmentValue = metadata.get('general.alignment');
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  if (alignmentValue !== undefined) {
    if (typeof alignmentValue !== 'number' || !Number.isInteger(alignmentValue) || alignmentValue <= 0 || (alignmentValue & (alignmentValue - 1)) !== 0) {
      throw new Error(`${file}: metadata general.alignment must be a positive power of two, got ${String(alignmentValue)}`);
    }
    alignment = alignmentValue;
  }
  if (tensorCount * MIN_TENSOR_INFO_BYTES > r.remaining()) {
    throw new Error(`${file}: tensor count ${tensorCount} needs at least ${tensorCount * MIN_TENSOR_INFO_BYTES} bytes, only ${r.remaining()} remain after the metadata (corrupt header)`);
  }
  const tensors: GgufTensorInfo[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const name = r.str(`tensor name ${i}`);
    const nDims = r.u32();
    if (nDims < 1 || nDims > 4) throw new Error(`${file}: tensor ${name}: ${nDims} dimensions (1 to 4 are allowed)`);
    const ne: number[] = [];
    for (let d = 0; d < nDims; d++) ne.push(r.size(`tensor ${name} dimension ${d}`));
    const type = r.u32();
    const offset = r.size(`tensor ${name} offset`);
    if (offset % alignment !== 0) throw new Error(`${file}: tensor ${name}: offset ${offset} is not a multiple of general.alignment ${alignment}`);
    if (seen.has(name)) throw new Error(`${file}: tensor ${name} appears twice`);
    seen.add(name);
    tensors.push({ name, ne, type, offset });
  }
  const dataStart = Math.ceil(r.pos / alignment) * alignment;
  return { version, metadata, metadataTypes, tensors, alignment, dataStart };
}

/**
 * Bytes a tensor of `type` with dimensions `ne` occupies; throws for types not decoded here and for
 * a Q8_0 tensor whose row length ne[0] is not a multiple of its block size 32 (as ggml requires:
 * blocks never straddle rows).
 */
export function ggmlTensorBytes(type: number, ne: number[], where: string): number {
  const count = ne.reduce((a, b) => a * b, 1);
  switch (type) {
    case GgmlType.F32: return count * 4;
    case GgmlType.F16:
    case GgmlType.BF16: return count * 2;
    case GgmlType.Q8_0:
      if (ne[0]! % 32 !== 0) throw new Error(`${where}: Q8_0 tensor rows have ${ne[0]} values (ne[0]), not a multiple of the block size 32`);
      return (count / 32) * 34;
    default:
      throw new Error(`${where}: tensor type ${ggmlTypeName(type)} is not supported (F32, F16, BF16 and Q8_0 are)`);
  }
}

/**
 * Decodes one tensor to float32 in GGUF's own order (row-major with ne reversed, i.e. shape
 * [ne[n-1], ..., ne[0]]) from the file's bytes in memory. Q8_0 blocks (float16 scale + 32 int8)
 * are dequantised as ggml does (value = scale * q, computed in float32). Throws naming `file` and
 * the tensor when its data runs past the end of the file or its type is not decoded.
 */
export function decodeGgufTensor(bytes: Uint8Array, header: GgufHeader, info: GgufTensorInfo, file: string): WeightTensor {
  const { start, nbytes } = tensorSpan(header, info, file, bytes.length);
  // An aligned copy (Node's Buffer#slice would return a view, not a copy).
  const copy = new Uint8Array(nbytes);
  copy.set(bytes.subarray(start, start + nbytes));
  return decodeRaw(copy, info);
}

/** Where a tensor's data lies in the file; throws naming the file and tensor when it runs past `fileSize` or its type is not decoded. */
function tensorSpan(header: GgufHeader, info: GgufTensorInfo, file: string, fileSize: number): { start: number; nbytes: number } {
  const where = `${file}: tensor ${info.name}`;
  const nbytes = ggmlTensorBytes(info.type, info.ne, where);
  const start = header.dataStart + info.offset;
  if (start + nbytes > fileSize) throw new Error(`${where}: data [${start}, ${start + nbytes}) runs past the end of the file (${fileSize} bytes)`);
  return { start, nbytes };
}

/** Float32 values of one tensor from its raw bytes (`raw` starts at byte 0 of its own buffer, so aligned). */
function decodeRaw(raw: Uint8Array, info: GgufTensorInfo): WeightTensor {
  const count = info.ne.reduce((a, b) => a * b, 1);
  let out: Float32Array;
  switch (info.type) {
    case GgmlType.F32:
      out = new Float32Array(raw.buffer, raw.byteOffset, count);
      break;
    case GgmlType.F16: {
      out = new Float32Array(count);
      const halves = new Uint16Array(raw.buffer, raw.byteOffset, count);
      const table = f16Table();
      for (let i = 0; i < count; i++) out[i] = table[halves[i]!]!;
      break;
    }
    case GgmlType.BF16: {
      out = new Float32Array(count);
      const halves = new Uint16Array(raw.buffer, raw.byteOffset, count);
      const words = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) words[i] = halves[i]! << 16;
      break;
    }
    case GgmlType.Q8_0: {
      out = new Float32Array(count);
      const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      for (let b = 0; b < count / 32; b++) {
        const scale = Math.fround(f16ToF32(view.getUint16(b * 34, true)));
        for (let j = 0; j < 32; j++) out[b * 32 + j] = scale * view.getInt8(b * 34 + 2 + j);
      }
      break;
    }
    default:
      throw new Error(`tensor ${info.name}: type ${ggmlTypeName(info.type)} is not decoded`); // unreachable: tensorSpan refuses it
  }
  return { shape: [...info.ne].reverse(), data: out };
}

/** A GGUF file read whole: header and every tensor decoded to float32 (GGUF order, see decodeGgufTensor). */
export interface GgufFile {
  header: GgufHeader;
  tensors: Map<string, WeightTensor>;
}

/** First read of a GGUF header; doubled (or grown to what the parser asks) until the header fits. */
const GGUF_HEADER_FIRST_READ = 1 << 20;

/** A GGUF file opened for reading: its header, and one tensor at a time by offset. */
interface GgufReader {
  header: GgufHeader;
  size: number;
  /** Reads exactly the tensor's bytes (F32 straight into the result) and decodes them to float32. */
  readTensor(info: GgufTensorInfo): Promise<WeightTensor>;
  close(): Promise<void>;
}

async function openGguf(file: string): Promise<GgufReader> {
  const fh = await openForReading(file);
  try {
    const size = (await fh.stat()).size;
    let prefix = new Uint8Array(Math.min(size, GGUF_HEADER_FIRST_READ));
    await readExactly(fh, prefix, 0, file, 'GGUF header');
    let header: GgufHeader | undefined;
    while (!header) {
      try {
        header = parseGgufHeader(prefix, file, size);
      } catch (err) {
        if (!(err instanceof NeedMoreBytes)) throw err;
        const longer = new Uint8Array(Math.min(size, Math.max(err.needed, 2 * prefix.length)));
        longer.set(prefix);
        await readExactly(fh, longer.subarray(prefix.length), prefix.length, file, 'GGUF header');
        prefix = longer;
      }
    }
    const h = header;
    const readTensor = async (info: GgufTensorInfo): Promise<WeightTensor> => {
      const { start, nbytes } = tensorSpan(h, info, file, size);
      const raw = new Uint8Array(nbytes);
      await readExactly(fh, raw, start, file, `tensor ${info.name}`);
      return decodeRaw(raw, info);
    };
    return { header: h, size, readTensor, close: () => fh.close() };
  } catch (err) {
    await fh.close();
    throw err;
  }
}

/**
 * Reads a GGUF file: its header (read in growing prefixes, never the whole file), then each tensor
 * by offset, decoded to float32 one at a time. Files of any size read (no 2 GiB readFile limit);
 * peak memory is the float32 weights plus one tensor's raw bytes. Throws naming `file` (and the
 * key or tensor).
 */
export async function readGguf(file: string): Promise<GgufFile> {
  const reader = await openGguf(file);
  try {
    const tensors = new Map<string, WeightTensor>();
    for (const info of reader.header.tensors) tensors.set(info.name, await reader.readTensor(info));
    return { header: reader.header, tensors };
  } finally {
    await reader.close();
  }
}

/**
 * Meta/GGUF interleaved RoPE row order -> Hugging Face rotate_half order, for a row-major matrix
 * [rows][cols] with rows = nHead * headDim. Within head h, GGUF row h*headDim + 2j + s holds HF
 * row h*headDim + s*headDim/2 + j (s in {0, 1}, j < headDim/2): the inverse of llama.cpp's
 * convert_hf_to_gguf.py LlamaModel.permute (and transformers' ggml reverse_permute). Returns a new array.
 */
export function unpermuteRope(data: Float32Array, rows: number, cols: number, nHead: number): Float32Array {
  return permuteRows(data, rows, cols, nHead, false);
}

/** HF rotate_half order -> Meta/GGUF interleaved order: LlamaModel.permute. The inverse of unpermuteRope. */
export function permuteRope(data: Float32Array, rows: number, cols: number, nHead: number): Float32Array {
  return permuteRows(data, rows, cols, nHead, true);
}

function permuteRows(data: Float32Array, rows: number, cols: number, nHead: number, toGguf: boolean): Float32Array {
  if (data.length !== rows * cols) throw new Error(`permuteRope: ${data.length} values, expected ${rows}x${cols}`);
  if (rows % (2 * nHead) !== 0) throw new Error(`permuteRope: ${rows} rows is not a multiple of 2 * ${nHead} heads`);
  const headDim = rows / nHead;
  const half = headDim / 2;
  const out = new Float32Array(data.length);
  for (let h = 0; h < nHead; h++) {
    for (let s = 0; s < 2; s++) {
      for (let j = 0; j < half; j++) {
        const hfRow = h * headDim + s * half + j;
        const ggufRow = h * headDim + 2 * j + s;
        const [from, to] = toGguf ? [hfRow, ggufRow] : [ggufRow, hfRow];
        out.set(data.subarray(from * cols, (from + 1) * cols), to * cols);
      }
    }
  }
  return out;
}

/** The GGUF (llama.cpp) name of one of our llama tensors (weights.ts's llama layout). */
function ggufLlamaName(ours: string): string {
  const fixed: Record<string, string> = { tok_embeddings: 'token_embd.weight', norm: 'output_norm.weight', output: 'output.weight' };
  if (fixed[ours]) return fixed[ours]!;
  const m = /^h\.(\d+)\.(.+)$/.exec(ours)!;
  const inner: Record<string, string> = {
    attn_norm: 'attn_norm',
    'attn.wq': 'attn_q',
    'attn.wk': 'attn_k',
    'attn.wv': 'attn_v',
    'attn.wo': 'attn_output',
    ffn_norm: 'ffn_norm',
    'mlp.gate': 'ffn_gate',
    'mlp.up': 'ffn_up',
    'mlp.down': 'ffn_down',
  };
  return `blk.${m[1]}.${inner[m[2]!]}.weight`;
}

/** [rows][cols] row-major -> [cols][rows] (hf-llama.ts's transpose2d). */
function transpose(data: Float32Array, rows: number, cols: number): Float32Array {
  return transpose2d({ shape: [rows, cols], data }).data;
}

/** The shortest decimal that is the same float32 (GGUF stores 1e-5 as 9.99999974737875e-6). */
function shortestF32(x: number): number {
  for (let p = 1; p <= 9; p++) {
    const n = Number(x.toPrecision(p));
    if (Math.fround(n) === Math.fround(x)) return n;
  }
  return x;
}

function meta(header: GgufHeader, file: string) {
  const get = (key: string) => header.metadata.get(key);
  const int = (key: string, fallback?: number): number => {
    const v = get(key);
    if (v === undefined) {
      if (fallback !== undefined) return fallback;
      throw new Error(`${file}: metadata ${key} is missing`);
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new Error(`${file}: metadata ${key} must be a positive integer, got ${String(v)}`);
    return v;
  };
  const float = (key: string, fallback?: number): number => {
    const v = get(key);
    if (v === undefined) {
      if (fallback !== undefined) return fallback;
      throw new Error(`${file}: metadata ${key} is missing`);
    }
    if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) throw new Error(`${file}: metadata ${key} must be a positive number, got ${String(v)}`);
    const t = header.metadataTypes.get(key);
    return t === GgufValueType.FLOAT32 ? shortestF32(v) : v;
  };
  return { get, int, float };
}

/**
 * The model config of a llama-architecture GGUF (the contract's llama ModelConfig). Refuses,
 * naming the file and key: another architecture, missing keys, RoPE scaling, mixture of experts,
 * rope.dimension_count != headDim, key and value head sizes that differ.
 */
export function ggufLlamaConfig(header: GgufHeader, file: string, vocab: number, tiedEmbeddings: boolean): ModelConfig {
  const m = meta(header, file);
  const arch = m.get('general.architecture');
  if (arch !== 'llama') throw new Error(`${file}: metadata general.architecture is ${JSON.stringify(arch)}; only "llama" is supported`);
  const p = 'llama.';
  const dModel = m.int(`${p}embedding_length`);
  const heads = m.int(`${p}attention.head_count`);
  const kvHeads = m.int(`${p}attention.head_count_kv`, heads);
  if (heads % kvHeads !== 0) throw new Error(`${file}: metadata ${p}attention.head_count_kv (${kvHeads}) must divide ${p}attention.head_count (${heads})`);
  const headDim = m.int(`${p}attention.key_length`, dModel / heads);
  if (!Number.isInteger(headDim)) throw new Error(`${file}: metadata ${p}attention.head_count (${heads}) must divide ${p}embedding_length (${dModel})`);
  const valueLength = m.int(`${p}attention.value_length`, headDim);
  if (valueLength !== headDim) throw new Error(`${file}: metadata ${p}attention.value_length (${valueLength}) differs from key_length (${headDim}); not supported`);
  const ropeDims = m.int(`${p}rope.dimension_count`, headDim);
  if (ropeDims !== headDim) throw new Error(`${file}: metadata ${p}rope.dimension_count is ${ropeDims}, the head size is ${headDim}; partial rotary embeddings are not supported`);
  const scaling = m.get(`${p}rope.scaling.type`);
  if (scaling !== undefined && scaling !== 'none') throw new Error(`${file}: metadata ${p}rope.scaling.type is ${JSON.stringify(scaling)}; RoPE scaling is not supported`);
  const linear = m.get(`${p}rope.scale_linear`);
  if (linear !== undefined && linear !== 1) throw new Error(`${file}: metadata ${p}rope.scale_linear is ${String(linear)}; RoPE scaling is not supported`);
  const factor = m.get(`${p}rope.scaling.factor`);
  if (factor !== undefined && factor !== 1 && factor !== 0) {
    throw new Error(`${file}: metadata ${p}rope.scaling.factor is ${String(factor)}; RoPE scaling is not supported`);
  }
  const experts = m.get(`${p}expert_count`);
  if (experts !== undefined && experts !== 0) throw new Error(`${file}: metadata ${p}expert_count is ${String(experts)}; mixture-of-experts models are not supported`);
  return {
    arch: 'llama',
    vocab,
    context: m.int(`${p}context_length`),
    dModel,
    layers: m.int(`${p}block_count`),
    heads,
    kvHeads,
    headDim,
    ffnHidden: m.int(`${p}feed_forward_length`),
    ropeTheta: m.float(`${p}rope.freq_base`, 10000),
    normEps: m.float(`${p}attention.layer_norm_rms_epsilon`),
    tiedEmbeddings,
  };
}

/**
 * Maps a llama GGUF's tensors (GGUF order, as readGguf decodes them) to the contract's names and
 * [in, out] layout, with attn_q/attn_k rows back in HF rotate_half order. `config` is a llama
 * ModelConfig (ggufLlamaConfig's). Every expected tensor must be present with its expected shape
 * and no other tensor may be (rope_freqs.weight, a constant some converters add, is refused too as
 * it implies RoPE scaling). Consumes `tensors`: each one is deleted from the map as it is taken,
 * so a matrix's GGUF copy can be freed once transposed (the decoded and the converted weights
 * are never all held at once); on success the map is empty. Throws naming the file and tensor.
 */
export function fromGgufLlamaTensors(config: ModelConfig, tensors: Map<string, WeightTensor>, file: string): NamedWeights {
  const { heads, layers } = config;
  const { kvHeads } = llamaDims(config);
  const take = (name: string, shape: number[]): Float32Array => {
    const t = tensors.get(name);
    if (!t) throw new Error(`${file}: tensor ${name} is missing`);
    if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i])) {
      throw new Error(`${file}: tensor ${name} has GGUF dimensions [${[...t.shape].reverse()}], expected [${[...shape].reverse()}]`);
    }
    tensors.delete(name);
    return t.data;
  };
  // The layout's own list of tensors (weights.ts), each read under its GGUF name: projections are
  // stored [out][in] as in HF, and q/k rows in Meta's interleaved RoPE order.
  const out: NamedWeights = new Map();
  for (const [name, shape] of weightShapes(config)) {
    const transposed = isTransposedLlamaWeight(name);
    const [rows, cols] = transposed ? [shape[1]!, shape[0]!] : [shape[0]!, shape[1]!];
    let data = take(ggufLlamaName(name), transposed ? [rows, cols] : shape);
    if (/\.attn\.wq$/.test(name)) data = unpermuteRope(data, rows, cols, heads);
    if (/\.attn\.wk$/.test(name)) data = unpermuteRope(data, rows, cols, kvHeads);
    out.set(name, { shape, data: transposed ? transpose(data, rows, cols) : data });
  }
  const extra = [...tensors.keys()];
  if (extra.length > 0) throw new Error(`${file}: unexpected tensor ${extra[0]}${extra.length > 1 ? ` (and ${extra.length - 1} more)` : ''} for a ${layers}-layer llama`);
  return out;
}

/**
 * Loads a llama GGUF file as a LoadedCheckpoint: config from metadata (ggufLlamaConfig), weights
 * decoded to float32 in the contract's layout (fromGgufLlamaTensors), tokenizer as the equivalent
 * Hugging Face tokenizer.json object (gguf-tokenizer.ts). The manifest is synthesised: backend
 * "gguf", epoch 0, step 0, trainLoss NaN, files {}, time = the file's modification time, extra =
 * {format: 'gguf', version, tensorTypes, tokenizerConfig} (tokenizerConfig: bos/eos/unk/pad tokens,
 * add_bos_token, chat_template when the file has one). dir is the file path. Throws naming the
 * file and the key or tensor at fault.
 */
export async function loadGgufCheckpoint(file: string): Promise<LoadedCheckpoint> {
  const { header, tensors } = await readGguf(file);
  checkFiniteTensors(tensors, () => file);
  const { json: tokenizer, config: tokenizerConfig, vocabSize } = ggufTokenizer(header.metadata, file);
  const config = ggufLlamaConfig(header, file, vocabSize, !tensors.has('output.weight'));
  const weights = fromGgufLlamaTensors(config, tensors, file);
  const hash = weightsHash(config, weights);
  const stat = await fs.stat(file);
  const manifest: CheckpointManifest = {
    epoch: 0,
    step: 0,
    trainLoss: NaN,
    dataHash: '',
    configHash: '',
    backend: 'gguf',
    files: {},
    weightsHash: hash,
    time: stat.mtime.toISOString(),
    extra: {
      format: 'gguf',
      version: header.version,
      tensorTypes: [...new Set(header.tensors.map((t) => ggmlTypeName(t.type)))].sort(),
      tokenizerConfig,
    },
  };
  return { dir: file, manifest, model: config, weights, tokenizer, hash, tokenizerHash: tokenizerHash(tokenizer) };
}
