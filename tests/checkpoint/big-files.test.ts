// Checkpoint files larger than Node's 2 GiB readFile limit, and corrupt GGUF headers: the GGUF and
// safetensors readers read the header, then each tensor by offset. The large files are sparse
// (fs.truncate makes a hole; a tensor far into the file is written at its place), so each test
// takes little time and a few kilobytes of real disk. Also: counts and lengths in a crafted GGUF
// header are checked against the bytes left before allocating; Q8_0 rows must be multiples of 32.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  fromGgufLlamaTensors,
  ggufLlamaConfig,
  loadAnyCheckpoint,
  loadGgufCheckpoint,
  openSafetensors,
  parseGgufHeader,
  readGguf,
  readSafetensors,
} from '../../src/checkpoint/index.ts';
import { encodeGguf, encodeGgufParts, f32Bytes, T, type MetaEntry, type TensorEntry } from '../helpers/gguf-writer.ts';

const root = await fs.mkdtemp(path.join(os.tmpdir(), 'lima-bigfiles-'));
after(() => fs.rm(root, { recursive: true, force: true }));

/** Past Node's 2 GiB readFile limit (fs.readFile throws ERR_FS_FILE_TOO_LARGE). */
const BIG = 2 ** 31 + 2 ** 28;

/** Seeded values, multiples of 2^-9 in [-1, 1). */
function seeded(seed: number) {
  let s = seed >>> 0;
  return (n: number) => Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return ((s >>> 22) - 512) / 512;
  });
}

/** Writes `head` at byte 0, makes the file `size` bytes long with a hole, then writes each far part at its position. */
async function writeSparse(file: string, head: Uint8Array, size: number, far: Array<{ position: number; bytes: Uint8Array }> = []): Promise<void> {
  await fs.writeFile(file, head);
  await fs.truncate(file, size);
  const fh = await fs.open(file, 'r+');
  try {
    for (const part of far) await fh.write(part.bytes, 0, part.bytes.length, part.position);
  } finally {
    await fh.close();
  }
  const stat = await fs.stat(file);
  assert.equal(stat.size, size);
  assert.ok(stat.blocks * 512 < 1 << 20, `${file} is sparse (${stat.blocks * 512} bytes on disk)`);
}

/** A one-layer llama GGUF (F32, byte-level SentencePiece vocabulary of 259 tokens); `farOutput` places output.weight at that data offset. */
function tinyLlama(farOutput?: number): { metadata: MetaEntry[]; tensors: TensorEntry[] } {
  const d = 8, heads = 2, kvHeads = 1, hd = 4, ffn = 32, vocab = 259;
  const rnd = seeded(99);
  const tensors: TensorEntry[] = [];
  const put = (name: string, ne: number[], offset?: number) => tensors.push({ name, ne, type: 0, bytes: f32Bytes(rnd(ne.reduce((a, b) => a * b, 1))), offset });
  put('token_embd.weight', [d, vocab]);
  put('blk.0.attn_norm.weight', [d]);
  put('blk.0.attn_q.weight', [d, heads * hd]);
  put('blk.0.attn_k.weight', [d, kvHeads * hd]);
  put('blk.0.attn_v.weight', [d, kvHeads * hd]);
  put('blk.0.attn_output.weight', [heads * hd, d]);
  put('blk.0.ffn_norm.weight', [d]);
  put('blk.0.ffn_gate.weight', [d, ffn]);
  put('blk.0.ffn_up.weight', [d, ffn]);
  put('blk.0.ffn_down.weight', [ffn, d]);
  put('output_norm.weight', [d]);
  put('output.weight', [d, vocab], farOutput);
  const tokens = ['<unk>', '<s>', '</s>', ...Array.from({ length: 256 }, (_, i) => `<0x${i.toString(16).toUpperCase().padStart(2, '0')}>`)];
  const metadata: MetaEntry[] = [
    ['general.architecture', T.STR, 'llama'],
    ['llama.context_length', T.U32, 64],
    ['llama.embedding_length', T.U32, d],
    ['llama.block_count', T.U32, 1],
    ['llama.feed_forward_length', T.U32, ffn],
    ['llama.attention.head_count', T.U32, heads],
    ['llama.attention.head_count_kv', T.U32, kvHeads],
    ['llama.attention.layer_norm_rms_epsilon', T.F32, 1e-5],
    ['tokenizer.ggml.model', T.STR, 'llama'],
    ['tokenizer.ggml.tokens', T.ARR, { type: T.STR, values: tokens }],
    ['tokenizer.ggml.scores', T.ARR, { type: T.F32, values: tokens.map(() => 0) }],
    ['tokenizer.ggml.bos_token_id', T.U32, 1],
    ['tokenizer.ggml.eos_token_id', T.U32, 2],
  ];
  return { metadata, tensors };
}

test('GGUF over 2 GiB (sparse): read by offset, a tensor far into the file, same weights and hash as the compact file', async () => {
  const compact = path.join(root, 'compact.gguf');
  await fs.writeFile(compact, encodeGguf(tinyLlama()));
  const expected = await loadAnyCheckpoint(compact);

  // Small tensors at the start, then a hole: the file is > 2 GiB but its tensors are all early.
  const trailing = path.join(root, 'trailing-hole.gguf');
  await writeSparse(trailing, encodeGguf(tinyLlama()), BIG);
  const a = await loadAnyCheckpoint(trailing);
  assert.equal(a.hash, expected.hash);
  assert.equal(a.tokenizerHash, expected.tokenizerHash);

  // output.weight at a data offset past 2 GiB (the reader must seek there).
  const far = 2 ** 31 + 2 ** 20;
  const { head, far: parts } = encodeGgufParts(tinyLlama(far));
  const farFile = path.join(root, 'far-tensor.gguf');
  await writeSparse(farFile, head, BIG, parts);
  const b = await loadGgufCheckpoint(farFile);
  assert.deepEqual(b.model, expected.model);
  assert.deepEqual([...b.weights.keys()], [...expected.weights.keys()]);
  for (const [name, t] of expected.weights) assert.deepEqual(b.weights.get(name), t, name);
  assert.equal(b.hash, expected.hash);

  // The same file cut before the far tensor: the error names the file and the tensor.
  const cut = path.join(root, 'cut.gguf');
  await writeSparse(cut, head, 2 ** 31 + 100);
  await assert.rejects(loadGgufCheckpoint(cut), (err: Error) => err.message.startsWith(`${cut}: tensor output.weight: data [`) && err.message.includes('runs past the end of the file (2147483748 bytes)'));
  await assert.rejects(loadGgufCheckpoint(path.join(root, 'absent.gguf')), (err: Error) => err.message === `${path.join(root, 'absent.gguf')}: cannot read (ENOENT)`);
});

test('GGUF header longer than the first read (1 MiB) is read in growing prefixes; fromGgufLlamaTensors consumes its map', async () => {
  const big = tinyLlama();
  big.metadata.push(['general.description', T.STR, 'x'.repeat(1_500_000)]);
  const file = path.join(root, 'long-header.gguf');
  await fs.writeFile(file, encodeGguf(big));
  const { header, tensors } = await readGguf(file);
  assert.equal((header.metadata.get('general.description') as string).length, 1_500_000);
  assert.ok(header.dataStart > 1 << 20);
  const compact = path.join(root, 'compact2.gguf');
  await fs.writeFile(compact, encodeGguf(tinyLlama()));
  const config = ggufLlamaConfig(header, file, 259, false);
  const weights = fromGgufLlamaTensors(config, tensors, file);
  assert.equal(tensors.size, 0, 'every GGUF tensor was taken out of the map');
  assert.deepEqual(weights, (await loadAnyCheckpoint(compact)).weights);
});

/** A 64-byte GGUF v3 header: the given counts, then one metadata entry written by `entry`, zero-padded. */
function crafted(tensorCount: bigint, kvCount: bigint, entry: (v: DataView, at: number) => void): Uint8Array {
  const bytes = new Uint8Array(64);
  const v = new DataView(bytes.buffer);
  bytes.set(new TextEncoder().encode('GGUF'));
  v.setUint32(4, 3, true);
  v.setBigUint64(8, tensorCount, true);
  v.setBigUint64(16, kvCount, true);
  entry(v, 24);
  return bytes;
}
/** Key "a.b" (8 + 3 bytes) at `at`; returns the position after it. */
function key(v: DataView, at: number): number {
  v.setBigUint64(at, 3n, true);
  new Uint8Array(v.buffer).set(new TextEncoder().encode('a.b'), at + 8);
  return at + 11;
}

test('corrupt GGUF header: counts and lengths larger than the file are errors naming the file and key, not a RangeError', async () => {
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['array length 1e12', crafted(0n, 1n, (v, at) => {
      const p = key(v, at);
      v.setUint32(p, 9, true); // ARRAY
      v.setUint32(p + 4, 0, true); // of UINT8
      v.setBigUint64(p + 8, 10n ** 12n, true);
    }), /^crafted\.gguf: metadata a\.b: array length 1000000000000 needs at least 1000000000000 bytes, only 13 remain in the file \(corrupt header\)$/],
    ['string array length 1e12', crafted(0n, 1n, (v, at) => {
      const p = key(v, at);
      v.setUint32(p, 9, true);
      v.setUint32(p + 4, 8, true); // of STRING: at least 8 bytes each
      v.setBigUint64(p + 8, 10n ** 12n, true);
    }), /^crafted\.gguf: metadata a\.b: array length 1000000000000 needs at least 8000000000000 bytes/],
    ['string length 1e12', crafted(0n, 1n, (v, at) => {
      const p = key(v, at);
      v.setUint32(p, 8, true); // STRING
      v.setBigUint64(p + 4, 10n ** 12n, true);
    }), /^crafted\.gguf: truncated GGUF file: metadata a\.b string at byte 47 needs 1000000000000 bytes, the file has 64$/],
    ['metadata count 1e12', crafted(0n, 10n ** 12n, () => {}), /^crafted\.gguf: metadata count 1000000000000 needs at least 13000000000000 bytes, only 40 remain in the file/],
    ['tensor count 1e12', crafted(10n ** 12n, 0n, () => {}), /^crafted\.gguf: tensor count 1000000000000 needs at least 32000000000000 bytes, only 40 remain after the metadata/],
    ['unknown element type', crafted(0n, 1n, (v, at) => {
      const p = key(v, at);
      v.setUint32(p, 9, true);
      v.setUint32(p + 4, 77, true);
    }), /^crafted\.gguf: metadata a\.b: unknown array element type 77$/],
  ];
  for (const [label, bytes, pattern] of cases) {
    assert.equal(bytes.length, 64);
    assert.throws(() => parseGgufHeader(bytes, 'crafted.gguf'), (err: Error) => !(err instanceof RangeError) && pattern.test(err.message), label);
  }
  // Through the file reader too: the message names the file's path.
  const file = path.join(root, 'crafted.gguf');
  await fs.writeFile(file, cases[0]![1]);
  await assert.rejects(loadGgufCheckpoint(file), (err: Error) => err.message.startsWith(`${file}: metadata a.b: array length 1000000000000`));
});

test('Q8_0: the row length ne[0] must be a multiple of 32, not just the element count', async () => {
  const block = new Uint8Array(34); // one block: 32 values
  const bad = encodeGguf({ metadata: [], tensors: [{ name: 'q', ne: [16, 2], type: 8, bytes: block }] });
  const header = parseGgufHeader(bad, 'q8.gguf');
  assert.equal(header.tensors[0]!.ne.reduce((a, b) => a * b, 1), 32, 'the element count alone is a multiple of 32');
  const file = path.join(root, 'q8.gguf');
  await fs.writeFile(file, bad);
  await assert.rejects(readGguf(file), (err: Error) => err.message === `${file}: tensor q: Q8_0 tensor rows have 16 values (ne[0]), not a multiple of the block size 32`);
  const good = path.join(root, 'q8-good.gguf');
  await fs.writeFile(good, encodeGguf({ metadata: [], tensors: [{ name: 'q', ne: [32, 1], type: 8, bytes: block }] }));
  assert.deepEqual((await readGguf(good)).tensors.get('q')!.shape, [1, 32]);
});

/** A safetensors header (padded to 8 bytes) and its 8-byte length, for tensors at the given offsets. */
function safetensorsHead(entries: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>): Uint8Array {
  let json = JSON.stringify(entries);
  while (json.length % 8 !== 0) json += ' ';
  const out = new Uint8Array(8 + json.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(new TextEncoder().encode(json), 8);
  return out;
}

test('safetensors over 2 GiB (sparse): header checked against the file size, tensors read by offset', async () => {
  // a (F32, at the start), big (U8, the 2 GiB middle), z (F32, at the end): the tensors tile the data.
  const n = 2 ** 31 + 2 ** 20;
  const entries = {
    a: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] as [number, number] },
    z: { dtype: 'F32', shape: [4], data_offsets: [16 + n, 32 + n] as [number, number] },
    big: { dtype: 'U8', shape: [n], data_offsets: [16, 16 + n] as [number, number] },
  };
  const head = safetensorsHead(entries);
  const a = Float32Array.from([1.5, -2, 0.25, 3]);
  const z = Float32Array.from([-7, 8.5, 1e-3, 42]);
  const file = path.join(root, 'big.safetensors');
  const size = head.length + 32 + n;
  await writeSparse(file, Uint8Array.from([...head, ...f32Bytes(a)]), size, [{ position: head.length + 16 + n, bytes: f32Bytes(z) }]);

  const reader = await openSafetensors(file);
  try {
    assert.equal(reader.size, size);
    assert.deepEqual([...reader.header.tensors.keys()], ['a', 'z', 'big']);
    assert.deepEqual(await reader.readTensor('a'), { shape: [2, 2], data: a });
    assert.deepEqual(await reader.readTensor('z'), { shape: [4], data: z });
    await assert.rejects(reader.readTensor('big'), (err: Error) => err.message === `${file}: tensor big: dtype U8 is not supported (F32, F16 and BF16 are)`);
    await assert.rejects(reader.readTensor('nope'), (err: Error) => err.message === `${file}: missing tensor nope`);
  } finally {
    await reader.close();
  }
  // readSafetensors gets past the header and the first tensors (no ERR_FS_FILE_TOO_LARGE) and
  // stops at the tensor it cannot decode, naming the file and the tensor.
  await assert.rejects(readSafetensors(file), (err: Error) => err.message === `${file}: tensor big: dtype U8 is not supported (F32, F16 and BF16 are)`);

  // Cut short: the header's offsets are checked against the real size.
  const cut = path.join(root, 'cut.safetensors');
  await writeSparse(cut, head, size - 8);
  await assert.rejects(openSafetensors(cut), (err: Error) => err.message.startsWith(`${cut}: tensor z: truncated file: data_offsets [${16 + n}, ${32 + n}] run past the end of the data`));

  await assert.rejects(readSafetensors(path.join(root, 'absent.safetensors')), /absent\.safetensors: cannot read \(ENOENT\)/);
});
