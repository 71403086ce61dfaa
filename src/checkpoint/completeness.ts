// How many bytes a weights file needs before it can be read whole (--watch, issue 13): the end
// of its last tensor's data, from its header alone. A trainer that pauses mid-write leaves a file
// whose size and mtime are stable over two polls but that is still short; comparing its size to
// this end tells the two apart without reading the weights.
//
// Parsed here independently of the readers (src/checkpoint/gguf.ts, safetensors.ts), reading
// only the header bytes, in chunks:
// - GGUF (v2, v3): magic, version, counts, metadata (values skipped), tensor infos; data starts
//   at the header's end rounded up to general.alignment (default 32); the end is
//   dataStart + max(offset + byte size) over tensors, the byte size from the ggml type's block
//   size and bytes per block (table below, from ggml.c's type_traits).
// - safetensors: uint64 header length N, N bytes of JSON; the end is 8 + N + the largest
//   data_offsets end.
import { promises as fs } from 'node:fs';

/** What a file's header says about its length. */
export type DataEnd =
  /** The header parsed: the file is complete once its size is at least `end` bytes. */
  | { kind: 'end'; end: number }
  /** The header itself is not all there yet (the file is shorter than it). */
  | { kind: 'short'; needAtLeast: number }
  /** The bytes there are not this format (bad magic, bad JSON, an unknown tensor type). */
  | { kind: 'invalid'; reason: string };

/** ggml type id -> [elements per block, bytes per block] (ggml.c type_traits; removed ids left out). */
const GGML_BLOCKS: Record<number, [number, number]> = {
  0: [1, 4], // F32
  1: [1, 2], // F16
  2: [32, 18], // Q4_0
  3: [32, 20], // Q4_1
  6: [32, 22], // Q5_0
  7: [32, 24], // Q5_1
  8: [32, 34], // Q8_0
  9: [32, 36], // Q8_1
  10: [256, 84], // Q2_K
  11: [256, 110], // Q3_K
  12: [256, 144], // Q4_K
  13: [256, 176], // Q5_K
  14: [256, 210], // Q6_K
  15: [256, 292], // Q8_K
  16: [256, 66], // IQ2_XXS
  17: [256, 74], // IQ2_XS
  18: [256, 98], // IQ3_XXS
  19: [256, 50], // IQ1_S
  20: [32, 18], // IQ4_NL
  21: [256, 110], // IQ3_S
  22: [256, 82], // IQ2_S
  23: [256, 136], // IQ4_XS
  24: [1, 1], // I8
  25: [1, 2], // I16
  26: [1, 4], // I32
  27: [1, 8], // I64
  28: [1, 8], // F64
  29: [256, 56], // IQ1_M
  30: [1, 2], // BF16
  34: [256, 54], // TQ1_0
  35: [256, 66], // TQ2_0
  39: [32, 17], // MXFP4
};

class Short extends Error {
  constructor(readonly needAtLeast: number) {
    super(`short: ${needAtLeast}`);
  }
}

/** Reads a file's bytes on demand, in chunks, from an absolute position; Short past its end. */
class ChunkReader {
  pos = 0;
  private buf = new Uint8Array(0);
  private bufStart = 0;
  constructor(private readonly fh: fs.FileHandle, private readonly size: number) {}

  private async window(n: number): Promise<DataView> {
    if (this.pos + n > this.size) throw new Short(this.pos + n);
    if (this.pos < this.bufStart || this.pos + n > this.bufStart + this.buf.length) {
      const length = Math.min(this.size - this.pos, Math.max(n, 1 << 16));
      const buf = new Uint8Array(length);
      const { bytesRead } = await this.fh.read(buf, 0, length, this.pos);
      if (bytesRead < n) throw new Short(this.pos + n); // truncated since the stat
      this.buf = buf.subarray(0, bytesRead);
      this.bufStart = this.pos;
    }
    return new DataView(this.buf.buffer, this.buf.byteOffset + (this.pos - this.bufStart), n);
  }
  async u32(): Promise<number> {
    const v = (await this.window(4)).getUint32(0, true);
    this.pos += 4;
    return v;
  }
  async u64(): Promise<number> {
    const v = (await this.window(8)).getBigUint64(0, true);
    this.pos += 8;
    // Anything past 2^53 cannot be a length or offset in a file this process can read.
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
  }
  async bytes(n: number): Promise<Uint8Array> {
    const v = await this.window(n);
    this.pos += n;
    return new Uint8Array(v.buffer, v.byteOffset, n);
  }
  /** Skips n bytes (Short when the file ends before them). */
  skip(n: number): void {
    if (this.pos + n > this.size) throw new Short(this.pos + n);
    this.pos += n;
  }
}

const GGUF_SCALAR_BYTES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
const GGUF_STRING = 8;
const GGUF_ARRAY = 9;
const GGUF_UINT32 = 4;

async function ggufEnd(r: ChunkReader): Promise<DataEnd> {
  const magic = await r.u32();
  if (magic !== 0x46554747) return { kind: 'invalid', reason: `not a GGUF file (magic 0x${magic.toString(16)})` };
  const version = await r.u32();
  if (version !== 2 && version !== 3) return { kind: 'invalid', reason: `GGUF version ${version} (2 and 3 are read)` };
  const tensorCount = await r.u64();
  const kvCount = await r.u64();
  let alignment = 32;
  const skipValue = async (type: number): Promise<DataEnd | undefined> => {
    if (type === GGUF_STRING) r.skip(await r.u64());
    else if (GGUF_SCALAR_BYTES[type] !== undefined) r.skip(GGUF_SCALAR_BYTES[type]!);
    else return { kind: 'invalid', reason: `metadata value type ${type} at byte ${r.pos - 4}` };
    return undefined;
  };
  for (let i = 0; i < kvCount; i++) {
    const key = new TextDecoder().decode(await r.bytes(await r.u64()));
    const type = await r.u32();
    if (key === 'general.alignment' && type === GGUF_UINT32) {
      alignment = await r.u32();
      if (alignment <= 0 || (alignment & (alignment - 1)) !== 0) return { kind: 'invalid', reason: `general.alignment ${alignment} is not a power of two` };
    } else if (type === GGUF_ARRAY) {
      const elementType = await r.u32();
      const n = await r.u64();
      if (elementType === GGUF_STRING) {
        for (let j = 0; j < n; j++) r.skip(await r.u64());
      } else if (GGUF_SCALAR_BYTES[elementType] !== undefined) {
        r.skip(n * GGUF_SCALAR_BYTES[elementType]!);
      } else {
        return { kind: 'invalid', reason: `metadata ${key}: array element type ${elementType}` };
      }
    } else {
      const bad = await skipValue(type);
      if (bad) return { kind: 'invalid', reason: `metadata ${key}: ${bad.kind === 'invalid' ? bad.reason : ''}` };
    }
  }
  let lastEnd = 0;
  for (let i = 0; i < tensorCount; i++) {
    const name = new TextDecoder().decode(await r.bytes(await r.u64()));
    const nDims = await r.u32();
    if (nDims < 1 || nDims > 4) return { kind: 'invalid', reason: `tensor ${name}: ${nDims} dimensions` };
    let elements = 1;
    for (let d = 0; d < nDims; d++) elements *= await r.u64();
    const type = await r.u32();
    const offset = await r.u64();
    const block = GGML_BLOCKS[type];
    if (!block) return { kind: 'invalid', reason: `tensor ${name}: unknown ggml type ${type}` };
    lastEnd = Math.max(lastEnd, offset + Math.ceil(elements / block[0]) * block[1]);
  }
  const dataStart = Math.ceil(r.pos / alignment) * alignment;
  return { kind: 'end', end: dataStart + lastEnd };
}

async function safetensorsEnd(r: ChunkReader): Promise<DataEnd> {
  const n = await r.u64();
  if (n > 100_000_000) return { kind: 'invalid', reason: `safetensors header length ${n} is implausible` };
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(await r.bytes(n)));
  } catch (err) {
    if (err instanceof Short) throw err;
    return { kind: 'invalid', reason: `safetensors header is not JSON (${(err as Error).message})` };
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) return { kind: 'invalid', reason: 'safetensors header is not a JSON object' };
  let lastEnd = 0;
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') continue;
    const offsets = (entry as { data_offsets?: unknown } | null)?.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || typeof offsets[1] !== 'number') return { kind: 'invalid', reason: `safetensors tensor ${name}: no data_offsets [begin, end]` };
    lastEnd = Math.max(lastEnd, offsets[1]);
  }
  return { kind: 'end', end: 8 + n + lastEnd };
}

/**
 * The byte length a GGUF (`format` 'gguf') or safetensors file must reach to hold all its tensor
 * data, read from its header only (a few reads of 64 KiB; a GGUF tokenizer's vocabulary is
 * skipped, not decoded). A missing file is { kind: 'short', needAtLeast: 1 }. Never throws for
 * a file being written; other I/O errors (permissions) propagate.
 */
export async function weightsDataEnd(file: string, format: 'gguf' | 'safetensors'): Promise<DataEnd & { size: number }> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'short', needAtLeast: 1, size: 0 };
    throw err;
  }
  try {
    const size = (await fh.stat()).size;
    const r = new ChunkReader(fh, size);
    try {
      return { ...(format === 'gguf' ? await ggufEnd(r) : await safetensorsEnd(r)), size };
    } catch (err) {
      if (err instanceof Short) return { kind: 'short', needAtLeast: err.needAtLeast, size };
      throw err;
    }
  } finally {
    await fh.close();
  }
}

/**
 * Whether a weights file is all there, for the watch's status: undefined when complete, else
 * what it waits for ("12345 of 67890 bytes", "its header (100 bytes so far)", or why its bytes
 * are not that format yet).
 */
export async function weightsWaitingFor(file: string, format: 'gguf' | 'safetensors'): Promise<string | undefined> {
  const d = await weightsDataEnd(file, format);
  if (d.kind === 'end') return d.size >= d.end ? undefined : `${d.size} of ${d.end} bytes`;
  if (d.kind === 'short') return d.size === 0 ? 'its bytes' : `its header (${d.size} bytes so far)`;
  return `a valid file (${d.reason})`;
}
