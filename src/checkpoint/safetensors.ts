// safetensors files (Hugging Face's weight format), read and written without a dependency: the
// format is small. Layout, as the reference implementation (huggingface/safetensors) defines it:
//   8 bytes   N, the header's byte length, unsigned 64-bit little-endian
//   N bytes   UTF-8 JSON object: {"__metadata__"?: {string: string},
//             "<tensor name>": {"dtype": "F32"|"F16"|"BF16"|..., "shape": [d0, d1, ...],
//                               "data_offsets": [begin, end]}, ...}
//             (writers pad it with trailing spaces to a multiple of 8 bytes)
//   the rest  the byte buffer; data_offsets are relative to its start, values little-endian,
//             row-major (C order), tensors laid end to end without gaps or overlaps.
// A model too big for one file is sharded: model.safetensors.index.json maps every tensor name to
// its shard ({"metadata": {"total_size": bytes}, "weight_map": {name: "model-00001-of-00002.safetensors"}}).
//
// Reading decodes F32, F16 and BF16 to float32 (F16 and BF16 are exact in float32), reading the
// header and then each tensor by offset (files of any size); writing writes F32 or BF16. Every error names the file and, where there is one, the tensor.
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../util/atomic.ts';
import type { NamedWeights, WeightTensor } from '../model/weights.ts';

export const SAFETENSORS_FILE = 'model.safetensors';
export const SAFETENSORS_INDEX_FILE = 'model.safetensors.index.json';

/** Element types this reader decodes, with their byte sizes. */
const DTYPE_BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };
/** The reference implementation refuses headers above 100 MB; so do we (a corrupt length would otherwise allocate). */
const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsEntry {
  dtype: string;
  shape: number[];
  /** [begin, end) in bytes, relative to the start of the data buffer. */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  /** The header's __metadata__ (string values only), {} when absent. */
  metadata: Record<string, string>;
  /** Tensors in header order. */
  tensors: Map<string, SafetensorsEntry>;
  /** Byte offset of the data buffer in the file: 8 + header length. */
  dataStart: number;
}

function checkLittleEndian(): void {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('big-endian hosts are not supported');
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * Parses and validates a safetensors header from the file's bytes: the whole file, or its first
 * 8 + N bytes (at least) with `fileSize` the file's length in bytes (default bytes.length).
 * Checks: the length fits the file, the JSON is an object, every entry has a string dtype, a shape
 * of non-negative integers and offsets within the file whose length matches shape x dtype size
 * (for the dtypes we decode), and tensors cover the data buffer without gaps or overlaps.
 * Unknown dtypes are kept here (so a reader can say which tensor has one) and refused on decode.
 * Throws `<file>: ...` (and `tensor <name>: ...`) messages.
 */
export function parseSafetensorsHeader(bytes: Uint8Array, file: string, fileSize: number = bytes.length): SafetensorsHeader {
  if (fileSize < 8) throw new Error(`${file}: truncated safetensors file: ${fileSize} bytes, the header length alone needs 8`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(MAX_HEADER_BYTES)) throw new Error(`${file}: not a safetensors file: header length ${headerLength} bytes is implausible`);
  const n = Number(headerLength);
  if (8 + n > fileSize) throw new Error(`${file}: truncated safetensors file: the header says ${n} bytes, only ${fileSize - 8} follow`);
  if (8 + n > bytes.length) throw new Error(`${file}: parseSafetensorsHeader was given ${bytes.length} bytes, the header needs ${8 + n}`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (err) {
    throw new Error(`${file}: not a safetensors file: the header is not UTF-8 JSON (${(err as Error).message})`);
  }
  if (!isObject(json)) throw new Error(`${file}: safetensors header: expected a JSON object`);
  const dataStart = 8 + n;
  const dataLength = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, SafetensorsEntry>();
  for (const [name, value] of Object.entries(json)) {
    if (name === '__metadata__') {
      if (!isObject(value)) throw new Error(`${file}: safetensors header: __metadata__ must be an object of strings`);
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== 'string') throw new Error(`${file}: safetensors header: __metadata__.${k} must be a string, got ${JSON.stringify(v)}`);
        metadata[k] = v;
      }
      continue;
    }
    const where = `${file}: tensor ${name}`;
    if (!isObject(value)) throw new Error(`${where}: expected {dtype, shape, data_offsets}`);
    const { dtype, shape, data_offsets: offsets } = value;
    if (typeof dtype !== 'string') throw new Error(`${where}: dtype must be a string, got ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new Error(`${where}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0) || offsets[0] > offsets[1]) {
      throw new Error(`${where}: data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (end > dataLength) throw new Error(`${where}: truncated file: data_offsets [${begin}, ${end}] run past the end of the data (${dataLength} bytes)`);
    const size = DTYPE_BYTES[dtype];
    if (size !== undefined) {
      const needed = (shape as number[]).reduce((a, b) => a * b, 1) * size;
      if (end - begin !== needed) throw new Error(`${where}: shape [${shape.join(', ')}] of ${dtype} needs ${needed} bytes, data_offsets [${begin}, ${end}] give ${end - begin}`);
    }
    tensors.set(name, { dtype, shape: shape as number[], dataOffsets: [begin, end] });
  }
  // The reference reader requires the tensors to tile the buffer exactly; a gap or an overlap
  // means a corrupt header.
  const spans = [...tensors].map(([name, t]) => ({ name, begin: t.dataOffsets[0], end: t.dataOffsets[1] })).sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  for (const s of spans) {
    if (s.begin !== covered) {
      throw new Error(`${file}: tensor ${s.name}: data_offsets start at ${s.begin}, the previous tensor ends at ${covered} (${s.begin > covered ? 'gap' : 'overlap'})`);
    }
    covered = s.end;
  }
  if (covered !== dataLength) throw new Error(`${file}: the tensors cover ${covered} bytes of data, the file holds ${dataLength} (trailing bytes)`);
  return { metadata, tensors, dataStart };
}

let f16Values: Float32Array | undefined;

/** The float32 value of every float16 bit pattern (f16ToF32), built on first use (256 KiB). */
export function f16Table(): Float32Array {
  if (!f16Values) {
    f16Values = new Float32Array(65536);
    for (let b = 0; b < 65536; b++) f16Values[b] = f16ToF32(b);
  }
  return f16Values;
}

/** Float32 value of an IEEE 754 half-precision bit pattern (subnormals, infinities and NaN included). */
export function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction === 0 ? sign * Infinity : NaN;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

const DECODED_DTYPES = 'F32, F16 and BF16';

/** Throws unless this reader decodes `entry`'s dtype (before any of its bytes are read). */
function checkDtype(entry: SafetensorsEntry, name: string, file: string): void {
  if (DTYPE_BYTES[entry.dtype] === undefined) throw new Error(`${file}: tensor ${name}: dtype ${entry.dtype} is not supported (${DECODED_DTYPES} are)`);
}

/**
 * Decodes one tensor's raw bytes (`raw`: exactly its data_offsets span, starting at byte 0 of its
 * own ArrayBuffer, so 2-byte aligned) to float32. F32 tensors are read straight into their output
 * (see readTensorAt), so this handles F16 and BF16.
 */
function decodeHalves(raw: Uint8Array, entry: SafetensorsEntry, count: number): Float32Array {
  const out = new Float32Array(count);
  const halves = new Uint16Array(raw.buffer, raw.byteOffset, count);
  if (entry.dtype === 'F16') {
    const table = f16Table();
    for (let i = 0; i < count; i++) out[i] = table[halves[i]!]!;
  } else {
    // bfloat16 is the top half of a float32.
    const words = new Uint32Array(out.buffer);
    for (let i = 0; i < count; i++) words[i] = halves[i]! << 16;
  }
  return out;
}

/** Decodes one tensor of a file held in memory to float32; throws for dtypes other than F32, F16, BF16. */
function decodeTensor(bytes: Uint8Array, header: SafetensorsHeader, name: string, file: string): WeightTensor {
  const entry = header.tensors.get(name);
  if (!entry) throw new Error(`${file}: missing tensor ${name}`);
  checkDtype(entry, name, file);
  const raw = bytes.subarray(header.dataStart + entry.dataOffsets[0], header.dataStart + entry.dataOffsets[1]);
  const count = entry.shape.reduce((a, b) => a * b, 1);
  if (entry.dtype === 'F32') {
    // An aligned copy: the tensor's offset in the file need not be 4-byte aligned.
    const out = new Float32Array(count);
    new Uint8Array(out.buffer).set(raw);
    return { shape: [...entry.shape], data: out };
  }
  const copy = new Uint8Array(raw.length);
  copy.set(raw);
  return { shape: [...entry.shape], data: decodeHalves(copy, entry, count) };
}

/** Largest single read: Node refuses reads of 2 GiB or more, so larger tensors are read in parts. */
const MAX_READ_BYTES = 1 << 30;

/**
 * Fills `into` with the file's bytes from `position` on (several reads when needed). Throws naming
 * `file` and `what` when the file ends first or a read fails.
 */
/** Opens `file` read-only; throws `<file>: cannot read (<code>)` when it cannot (also used by gguf.ts). */
export async function openForReading(file: string): Promise<FileHandle> {
  try {
    return await fs.open(file, 'r');
  } catch (err) {
    throw new Error(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

export async function readExactly(fh: FileHandle, into: Uint8Array, position: number, file: string, what: string): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const length = Math.min(into.length - done, MAX_READ_BYTES);
    let bytesRead: number;
    try {
      ({ bytesRead } = await fh.read(into, done, length, position + done));
    } catch (err) {
      throw new Error(`${file}: ${what}: cannot read ${into.length} bytes at byte ${position} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    if (bytesRead === 0) throw new Error(`${file}: ${what}: the file ends at byte ${position + done}, ${into.length - done} bytes short`);
    done += bytesRead;
  }
}

/**
 * A safetensors file opened for reading one tensor at a time by offset (never the whole file, so
 * files of any size read, and memory holds one tensor's raw bytes at a time). `close()` when done.
 */
export interface SafetensorsReader {
  file: string;
  /** The file's length in bytes. */
  size: number;
  header: SafetensorsHeader;
  /**
   * Reads and decodes tensor `name` to float32: reads exactly its data_offsets span (F32 straight
   * into the result; F16/BF16 into a buffer of the span's size, then decoded). Throws naming the
   * file and tensor for a missing tensor, an unsupported dtype (before reading), a failed read.
   */
  readTensor(name: string): Promise<WeightTensor>;
  close(): Promise<void>;
}

/**
 * Opens a .safetensors file: reads its 8-byte length and the JSON header only, and checks it
 * against the file's size (parseSafetensorsHeader). Throws `<file>: cannot read (<code>)` when
 * the file cannot be opened, else as parseSafetensorsHeader.
 */
export async function openSafetensors(file: string): Promise<SafetensorsReader> {
  checkLittleEndian();
  const fh = await openForReading(file);
  try {
    const size = (await fh.stat()).size;
    if (size < 8) throw new Error(`${file}: truncated safetensors file: ${size} bytes, the header length alone needs 8`);
    const lengthBytes = new Uint8Array(8);
    await readExactly(fh, lengthBytes, 0, file, 'header length');
    const headerLength = new DataView(lengthBytes.buffer).getBigUint64(0, true);
    if (headerLength > BigInt(MAX_HEADER_BYTES)) throw new Error(`${file}: not a safetensors file: header length ${headerLength} bytes is implausible`);
    const n = Number(headerLength);
    if (8 + n > size) throw new Error(`${file}: truncated safetensors file: the header says ${n} bytes, only ${size - 8} follow`);
    const prefix = new Uint8Array(8 + n);
    prefix.set(lengthBytes);
    await readExactly(fh, prefix.subarray(8), 8, file, 'header');
    const header = parseSafetensorsHeader(prefix, file, size);
    const readTensor = async (name: string): Promise<WeightTensor> => {
      const entry = header.tensors.get(name);
      if (!entry) throw new Error(`${file}: missing tensor ${name}`);
      checkDtype(entry, name, file);
      const count = entry.shape.reduce((a, b) => a * b, 1);
      const position = header.dataStart + entry.dataOffsets[0];
      const nbytes = entry.dataOffsets[1] - entry.dataOffsets[0];
      if (entry.dtype === 'F32') {
        const out = new Float32Array(count);
        await readExactly(fh, new Uint8Array(out.buffer), position, file, `tensor ${name}`);
        return { shape: [...entry.shape], data: out };
      }
      const raw = new Uint8Array(nbytes);
      await readExactly(fh, raw, position, file, `tensor ${name}`);
      return { shape: [...entry.shape], data: decodeHalves(raw, entry, count) };
    };
    return { file, size, header, readTensor, close: () => fh.close() };
  } catch (err) {
    await fh.close();
    throw err;
  }
}

export interface SafetensorsContent {
  metadata: Record<string, string>;
  /** Every tensor decoded to float32, in header order. */
  weights: NamedWeights;
  /** Each tensor's dtype as stored. */
  dtypes: Map<string, string>;
}

/** Decodes a whole safetensors file held in memory (see parseSafetensorsHeader for the checks). */
export function decodeSafetensors(bytes: Uint8Array, file: string): SafetensorsContent {
  checkLittleEndian();
  const header = parseSafetensorsHeader(bytes, file);
  const weights: NamedWeights = new Map();
  const dtypes = new Map<string, string>();
  for (const [name, entry] of header.tensors) {
    weights.set(name, decodeTensor(bytes, header, name, file));
    dtypes.set(name, entry.dtype);
  }
  return { metadata: header.metadata, weights, dtypes };
}

/**
 * Reads and decodes one .safetensors file, one tensor at a time by offset (openSafetensors): the
 * file is never held whole, so its size is not limited by Node's 2 GiB readFile limit, and peak
 * memory is the float32 weights plus one tensor's raw bytes. Throws naming the file (and tensor).
 */
export async function readSafetensors(file: string): Promise<SafetensorsContent> {
  const reader = await openSafetensors(file);
  try {
    const weights: NamedWeights = new Map();
    const dtypes = new Map<string, string>();
    for (const [name, entry] of reader.header.tensors) {
      weights.set(name, await reader.readTensor(name));
      dtypes.set(name, entry.dtype);
    }
    return { metadata: reader.header.metadata, weights, dtypes };
  } finally {
    await reader.close();
  }
}

/** Element type written by encodeSafetensors: F32 (exact) or BF16 (rounded to nearest even). */
export type SafetensorsWriteDtype = 'F32' | 'BF16';

/**
 * bfloat16 bits of a float32 value (its top 16 bits), rounded to nearest, ties to even, as
 * torch's float32 -> bfloat16 conversion; NaN stays a (quiet) NaN.
 */
export function f32ToBf16(bits: number): number {
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) return ((bits >>> 16) | 0x40) & 0xffff;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/**
 * The bytes of a safetensors file holding `weights` as F32 (or BF16 with options.dtype), tensors
 * in the map's order, header padded with spaces to a multiple of 8 bytes, as the reference writer
 * does. `metadata` goes to __metadata__ (string values). Throws on a tensor whose value count does
 * not match its shape.
 */
export function encodeSafetensors(weights: NamedWeights, metadata: Record<string, string> = {}, options: { dtype?: SafetensorsWriteDtype } = {}): Uint8Array {
  checkLittleEndian();
  const dtype = options.dtype ?? 'F32';
  const width = dtype === 'BF16' ? 2 : 4;
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of weights) {
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== size) throw new Error(`safetensors: tensor ${name} has ${t.data.length} values, its shape [${t.shape}] needs ${size}`);
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + width * size] };
    offset += width * size;
  }
  let json = JSON.stringify(header);
  const jsonBytes = () => Buffer.byteLength(json, 'utf8');
  while (jsonBytes() % 8 !== 0) json += ' ';
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const t of weights.values()) {
    if (dtype === 'BF16') {
      const words = new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length);
      const halves = new Uint16Array(t.data.length);
      for (let i = 0; i < halves.length; i++) halves[i] = f32ToBf16(words[i]!);
      out.set(new Uint8Array(halves.buffer), at);
      at += halves.byteLength;
    } else {
      out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
      at += t.data.byteLength;
    }
  }
  return out;
}

/** Writes `weights` as one safetensors file (F32, or BF16 with options.dtype), atomically (temp file + rename). */
export async function writeSafetensors(file: string, weights: NamedWeights, metadata: Record<string, string> = {}, options: { dtype?: SafetensorsWriteDtype } = {}): Promise<void> {
  await writeFileAtomic(file, encodeSafetensors(weights, metadata, options));
}

/** Shard file name as transformers writes it: model-00001-of-00003.safetensors. */
export function shardName(index: number, count: number): string {
  return `model-${String(index + 1).padStart(5, '0')}-of-${String(count).padStart(5, '0')}.safetensors`;
}

/**
 * Writes `weights` into `dir` as F32 shards of at most `maxShardBytes` of data each (a single
 * larger tensor gets its own shard), plus model.safetensors.index.json; or as one
 * model.safetensors (no index) when everything fits in one shard. Each file is written atomically.
 * Returns the file names written.
 */
export async function writeSafetensorsSharded(dir: string, weights: NamedWeights, maxShardBytes: number, metadata: Record<string, string> = { format: 'pt' }): Promise<string[]> {
  const shards: NamedWeights[] = [];
  let current: NamedWeights = new Map();
  let bytes = 0;
  for (const [name, t] of weights) {
    if (current.size > 0 && bytes + t.data.byteLength > maxShardBytes) {
      shards.push(current);
      current = new Map();
      bytes = 0;
    }
    current.set(name, t);
    bytes += t.data.byteLength;
  }
  shards.push(current);
  if (shards.length === 1) {
    await writeSafetensors(path.join(dir, SAFETENSORS_FILE), weights, metadata);
    return [SAFETENSORS_FILE];
  }
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  const names: string[] = [];
  for (const [i, shard] of shards.entries()) {
    const name = shardName(i, shards.length);
    await writeSafetensors(path.join(dir, name), shard, metadata);
    for (const [tensor, t] of shard) {
      weightMap[tensor] = name;
      totalSize += t.data.byteLength;
    }
    names.push(name);
  }
  await writeFileAtomic(path.join(dir, SAFETENSORS_INDEX_FILE), JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2) + '\n');
  return [...names, SAFETENSORS_INDEX_FILE];
}

export interface SafetensorsDirContent {
  weights: NamedWeights;
  dtypes: Map<string, string>;
  /** The file each tensor came from (for error messages naming the file and tensor). */
  fileOf: Map<string, string>;
  /** The weight files read (one model.safetensors, or the index and its shards). */
  files: string[];
}

/**
 * Reads a model folder's weights: model.safetensors.index.json and the shards it names when the
 * index exists, else model.safetensors. With an index, every tensor must be in the shard the
 * index names, and every shard tensor must be in the index. Throws naming the file (and tensor).
 */
export async function readSafetensorsDir(dir: string): Promise<SafetensorsDirContent> {
  const indexPath = path.join(dir, SAFETENSORS_INDEX_FILE);
  let indexText: string | undefined;
  try {
    indexText = await fs.readFile(indexPath, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`${indexPath}: cannot read (${(err as Error).message})`);
  }
  const weights: NamedWeights = new Map();
  const dtypes = new Map<string, string>();
  const fileOf = new Map<string, string>();
  if (indexText === undefined) {
    const file = path.join(dir, SAFETENSORS_FILE);
    try {
      await fs.access(file);
    } catch {
      throw new Error(`${dir}: no ${SAFETENSORS_FILE} and no ${SAFETENSORS_INDEX_FILE}`);
    }
    const content = await readSafetensors(file);
    for (const [name, t] of content.weights) {
      weights.set(name, t);
      dtypes.set(name, content.dtypes.get(name)!);
      fileOf.set(name, file);
    }
    return { weights, dtypes, fileOf, files: [file] };
  }
  let index: unknown;
  try {
    index = JSON.parse(indexText);
  } catch (err) {
    throw new Error(`${indexPath}: not JSON (${(err as Error).message})`);
  }
  const weightMap = isObject(index) ? index.weight_map : undefined;
  if (!isObject(weightMap)) throw new Error(`${indexPath}: weight_map: expected an object {tensor: shard file}`);
  const byShard = new Map<string, string[]>();
  for (const [name, shard] of Object.entries(weightMap)) {
    if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\') || shard === '..') {
      throw new Error(`${indexPath}: weight_map[${JSON.stringify(name)}]: expected a file name in the same folder, got ${JSON.stringify(shard)}`);
    }
    byShard.set(shard, [...(byShard.get(shard) ?? []), name]);
  }
  const files = [indexPath];
  for (const [shard, names] of [...byShard].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const file = path.join(dir, shard);
    const content = await readSafetensors(file);
    for (const name of names) {
      const t = content.weights.get(name);
      if (!t) throw new Error(`${file}: missing tensor ${name} (${SAFETENSORS_INDEX_FILE} places it in this shard)`);
      weights.set(name, t);
      dtypes.set(name, content.dtypes.get(name)!);
      fileOf.set(name, file);
    }
    for (const name of content.weights.keys()) {
      if (!fileOf.has(name) || fileOf.get(name) !== file) throw new Error(`${file}: tensor ${name} is not in ${SAFETENSORS_INDEX_FILE}'s weight_map for this shard`);
    }
    files.push(file);
  }
  return { weights, dtypes, fileOf, files };
}
